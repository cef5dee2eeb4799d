// kvlab demo: the main job. A guided tour that runs real commands on built-in examples, offline.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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
  for (const auto& a : s.args) {
    std::printf(a.find(' ') == std::string::npos ? " %s" : " \"%s\"", a.c_str());
  }
  std::printf("\n\n");
  std::fflush(stdout);
  std::fflush(stderr);
  CLI::App app;
  add_work_commands(app);
  std::vector<std::string> argv(s.args.rbegin(), s.args.rend());  // CLI11 takes them reversed
  app.parse(argv);
  std::fflush(stdout);
}

// The tour; `dir` is a scratch directory for the checkpoints the later steps make.
std::vector<Step> demo_steps(const std::string& dir) {
  const std::string lckv = dir + "/stories15m-lckv2", standard = dir + "/stories15m-standard";
  const std::string prompt = "Once upon a time, a little robot found a map.";
  return {
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
      {"The reference engine: a small model with the LCKV plan",
       "Random weights in the stories15M shape (6 layers); only the KV layers get W_K and W_V.",
       {"init", "--model", "stories15m", "--plan", "lckv:2", "--seed", "1", "-o", lckv}},
      {"LCKV's iterative prefill, pass by pass",
       "The target's K/V start at zero. Pass r makes tokens 0..r-1 exact, and the change between\n"
       "passes shrinks geometrically; --exact compares every pass with token-by-token encoding.",
       {"trace-prefill", "--model", lckv, "--prompt", prompt, "--passes", "12", "--exact",
        "--precision", "f64"}},
      {"A standard checkpoint",
       "The same shape with W_K and W_V in every layer.",
       {"init", "--model", "stories15m", "--plan", "standard", "--seed", "1", "-o", standard}},
      {"Generation under the standard plan",
       "Random weights, so the text is noise: watch the KV held line (all 6 layers' K/V).",
       {"generate", "--model", standard, "--prompt", prompt, "--max-new", "24"}},
      {"... and the same checkpoint run with CLA2 after the fact",
       "Post-hoc sharing: layers 1, 3, 5 read the K/V of layers 0, 2, 4. Half the KV is held.",
       {"generate", "--model", standard, "--prompt", prompt, "--max-new", "24", "--plan", "cla:2"}},
      {"SqueezeAttention: which layers matter for this prompt",
       "Importance s_l = how little each attention layer changes the residual stream; k-means "
       "puts\n"
       "the layers in 3 clusters and the least important cluster gets a smaller KV budget.",
       {"squeeze", "--model", standard, "--prompt", prompt, "--f0", "0.5", "--f3", "0.2"}},
      {"H2O eviction: keep half the prompt's tokens per bank",
       "Recent tokens plus the heaviest hitters by accumulated attention, chosen per KV head.",
       {"generate", "--model", standard, "--prompt", prompt, "--max-new", "24", "--policy", "h2o",
        "--budget", "0.5"}},
  };
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "A guided tour of kvlab on built-in examples (offline)");
  cmd->callback([] {
    std::printf("kvlab demo: how cross-layer KV sharing shrinks the KV cache.\n");
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("kvlab-demo-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    int i = 1;
    try {
      for (const auto& s : demo_steps(dir.string())) run_step(s, i++);
    } catch (...) {
      fs::remove_all(dir);
      throw;
    }
    fs::remove_all(dir);
    std::printf(
        "\nThat was the tour. Every step is a command you can run yourself; see\n"
        "`kvlab --help` and `kvlab <command> --help`.\n");
  });
}

}  // namespace kvlab::cli
