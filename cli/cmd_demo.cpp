// kvlab demo: the main job. A guided tour that runs real commands on built-in examples, offline.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "session/builtin_models.hpp"

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

// The tour. The memory half runs on model shapes (no weights); the engine half on the trained
// models kvlab ships (models/, `kvlab models`), so the text reads, LCKV's passes converge on real
// activations, Squeeze clusters real layers and the passkey is really retrieved (or lost).
std::vector<Step> demo_steps() {
  const std::string prompt = "The trouble with computers is that";
  const std::string story =
      "The best way to predict the future is to invent it. A computer is like a bicycle for the "
      "mind: it takes you further than you could walk, but you still have to pedal.";
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
      {"Three tiny models, trained here on the fortunes",
       "kvlab trains small models itself (kvlab train, docs/training.md). These ship with it,\n"
       "one per family: any command takes the name as --model.",
       {"models"}},
      {"Generation with the standard model",
       "6 layers, 4 heads: every layer keeps its own K/V (6,144 B/token in float32).",
       {"generate", "--model", "tiny-standard", "--prompt", prompt, "--max-new", "40"}},
      {"... and with a model trained with MQA + CLA2",
       "One KV head, and layers 1, 3, 5 read the K/V of layers 0, 2, 4: 1/8 of the standard\n"
       "model's KV (768 B/token). Compare the KV held lines (and kvlab models' losses).",
       {"generate", "--model", "tiny-cla2-mqa", "--prompt", prompt, "--max-new", "40"}},
      {"LCKV's iterative prefill on a trained lckv:2 model, pass by pass",
       "Layers 1..4 read layer 4's K/V, which starts at zero. Pass r makes tokens 0..r-1 exact,\n"
       "and the change between passes shrinks; --exact compares each pass with token-by-token\n"
       "encoding (the model was trained with 3 + 1 passes).",
       {"trace-prefill", "--model", "tiny-lckv2", "--prompt", story, "--passes", "12", "--exact",
        "--precision", "f64"}},
      {"SqueezeAttention: which layers matter for this prompt",
       "Importance = 1 - cos(residual before, after each attention layer). k-means puts the\n"
       "layers in 3 clusters; the least important cluster gets the smaller budget f3.",
       {"squeeze", "--model", "tiny-standard", "--prompt", story, "--squeeze", "0.5,0.2"}},
      {"Passkey retrieval with the whole cache",
       "A five-digit key hidden in filler text, asked for at the end (96-token contexts).",
       {"eval", "--model", "tiny-standard", "--task", "passkey", "--length", "96", "--n", "20"}},
      {"... and with StreamingLLM keeping 24 tokens per layer",
       "4 attention sinks + the 20 most recent tokens: the key has been evicted before the\n"
       "question, so the model can only guess (1 digit in 10 by chance).",
       {"eval", "--model", "tiny-standard", "--task", "passkey", "--length", "96", "--n", "20",
        "--policy", "streaming", "--budget", "24"}},
      {"... and with H2O at the same 24 tokens",
       "Recent tokens plus the heaviest hitters by accumulated attention, chosen per KV head:\n"
       "what attention kept looking at survives, and that is sometimes the key.",
       {"eval", "--model", "tiny-standard", "--task", "passkey", "--length", "96", "--n", "20",
        "--policy", "h2o", "--budget", "24"}},
  };
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "A guided tour of kvlab on built-in examples (offline)");
  cmd->callback([] {
    for (const char* name : {"tiny-standard", "tiny-cla2-mqa", "tiny-lckv2"}) {
      if (resolve_model(name) == name) {
        fail("built-in model", name,
             "is not in " + models_dir() +
                 " (set KVLAB_MODELS, or train it: scripts/train-models.sh, docs/training.md)");
      }
    }
    std::printf("kvlab demo: how cross-layer KV sharing shrinks the KV cache.\n");
    int i = 1;
    for (const auto& s : demo_steps()) run_step(s, i++);
    std::printf(
        "\nThat was the tour. Every step is a command you can run yourself; see\n"
        "`kvlab --help` and `kvlab <command> --help`. To watch a plan while a model runs, open\n"
        "the live window: `kvlab viz --model tiny-lckv2` (docs/visualizer.md).\n");
  });
}

}  // namespace kvlab::cli
