// kvlab forward: the logits (T, V) of a prefill, as a NumPy .npy file any tool can compare.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/model_io.hpp"
#include "core/error.hpp"
#include "core/formats/npy.hpp"

namespace kvlab::cli {
namespace {

struct ForwardOptions {
  ScheduleFlags schedule;
  std::string tokenizer;
  std::string model, prompt, tokens, precision = "f32", plan, out;
  int threads = 1;
  bool force_nodiag = false;
};

template <typename S>
void run_forward_as(const ForwardOptions& o) {
  auto m = load_model<S>(o.model, o.tokenizer);
  const int V = m.weights.config.vocab_size;
  const std::vector<int> toks =
      o.tokens.empty() ? m.tokenizer->encode(o.prompt, true) : parse_token_list(o.tokens, V);
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.force_nodiag = o.force_nodiag;
  eo.schedule = to_schedule(o.schedule);
  eo.plan = plan_option(o.plan, m.weights.config.num_hidden_layers);
  ref::Engine<S> engine(m.weights, eo);
  const std::vector<S> logits = engine.prefill(toks, /*all_logits=*/true);
  write_npy(o.out, std::span<const S>(logits), {static_cast<int64_t>(toks.size()), V});
  std::printf("wrote %s: logits [%zu, %d] (%s), plan %s\n", o.out.c_str(), toks.size(), V,
              o.precision.c_str(), engine.plan().to_string().c_str());
}

void run_forward(const ForwardOptions& o) {
  if (o.prompt.empty() == o.tokens.empty()) {
    fail("--prompt/--tokens", o.prompt.empty() ? "(none)" : "(both)",
         "give exactly one of --prompt TEXT and --tokens 1,2,3");
  }
  if (o.precision == "f32") {
    run_forward_as<float>(o);
  } else if (o.precision == "f64") {
    run_forward_as<double>(o);
  } else {
    fail("--precision", o.precision, "must be f32 or f64");
  }
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  auto* cmd = app.add_subcommand("forward", "Write the prefill logits [T, V] to a .npy file");
  cmd->add_option("--model", o->model,
                  "Checkpoint: a kvlab or Hugging Face directory, or a llama2.c .bin")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: the checkpoint's own)");
  cmd->add_option("--prompt", o->prompt, "Prompt text (byte tokenizer, BOS first)");
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,2,3");
  cmd->add_option("--precision", o->precision, "f32 or f64")->capture_default_str();
  cmd->add_option("--plan", o->plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  cmd->add_flag("--force-nodiag", o->force_nodiag, "Mask the diagonal in every layer");
  cmd->add_option("--out", o->out, "Output .npy file")->required();
  add_schedule_options(cmd, o->schedule);
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace kvlab::cli
