// kvlab demo: the main job. A guided tour that runs real commands on built-in examples, offline.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace kvlab::cli {
namespace {

struct Step {
  std::string title;
  std::string why;
  std::vector<std::string> args;  // after "kvlab"
};

// Runs one command line through a fresh application, exactly as if typed.
void run_step(const Step& s, int index) {
  std::printf("\n=== %d. %s\n%s\n\n$ kvlab", index, s.title.c_str(), s.why.c_str());
  for (const auto& a : s.args) std::printf(" %s", a.c_str());
  std::printf("\n\n");
  std::fflush(stdout);
  CLI::App app;
  add_work_commands(app);
  std::vector<std::string> argv(s.args.rbegin(), s.args.rend());  // CLI11 takes them reversed
  app.parse(argv);
  std::fflush(stdout);
}

const std::vector<Step>& demo_steps() {
  static const std::vector<Step> steps = {
      {"A standard model keeps K/V for every layer",
       "TinyLlama-1.1B: 22 layers, 4 KV heads of dim 64. In 16-bit every token costs 22528 bytes.",
       {"plan", "standard", "--model", "tinyllama-1.1b"}},
      {"Cross-Layer Attention (CLA2): pairs of adjacent layers share one K/V",
       "The CLA paper's 1B MQA shape: 10240 B/token standard, 5120 with cla:2.",
       {"plan", "cla:2", "--model", "cla-1b"}},
      {"Layer-Condensed KV (LCKV): most layers read the K/V of one high layer",
       "lckv:2 keeps layers 0 and 21 as warm-up layers; layers 1..20 read layer 20's K/V.\n"
       "Layers 1..19 read *upward*, so the prompt is encoded iteratively (a cyclic block).",
       {"plan", "lckv:2", "--model", "tinyllama-1.1b"}},
      {"YOCO-like: sliding-window bottom half, one global KV layer on top",
       "Sliding banks hold only the window, so long prompts cost little below layer L/2.",
       {"plan", "yoco", "--model", "stories110m", "--prompt", "1024"}},
      {"The simulator: CLA2 on Llama-2-7B fits about twice the batch on one A100 80GB",
       "Half the KV layers, half the K/V per token: twice the sequences fit beside the weights.\n"
       "But every reader still reads its bank: the K/V read per decode step does not shrink.",
       {"simulate", "--model", "llama-2-7b", "--plan", "cla:2", "--gpu", "a100-80gb", "--prompt",
        "2048", "--gen", "256"}},
      {"The price of LCKV: the prompt is encoded in m + b = 9 passes over the cyclic block",
       "lckv:2 on TinyLlama stores 3 of 22 layers' K/V, but layers 1..20 run 9 times in prefill:\n"
       "182 layer passes instead of 22 (token by token for prompts of at most 9 tokens).",
       {"simulate", "--model", "tinyllama-1.1b", "--plan", "lckv:2", "--gpu", "a100-80gb",
        "--prompt", "1024", "--gen", "256", "--batch", "16"}},
  };
  return steps;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "A guided tour of kvlab on built-in examples (offline)");
  cmd->callback([] {
    std::printf("kvlab demo: how cross-layer KV sharing shrinks the KV cache.\n");
    const std::vector<Step> steps = demo_steps();
    int i = 1;
    for (const auto& s : steps) run_step(s, i++);
    std::printf("\nThat was the tour. Try `kvlab plan --help` and `kvlab simulate --help`.\n");
  });
}

}  // namespace kvlab::cli
