// kvlab generate: run a checkpoint under any plan and print the continuation.
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/model_io.hpp"
#include "core/error.hpp"
#include "reference/sampling.hpp"

namespace kvlab::cli {
namespace {

struct GenerateOptions {
  std::string policy = "full", budget, positions = "absolute";
  bool h2o_scores = false;
  ScheduleFlags schedule;
  std::string tokenizer;
  std::string model, prompt, plan, telemetry;
  int max_new = 64;
  double temperature = 0.0;
  double top_p = 1.0;
  long long seed = 0;
  int threads = 1;
  int context = 0;
};

void run_generate(const GenerateOptions& o) {
  if (o.max_new < 0 || o.max_new > (1 << 20)) {
    fail("--max-new", std::to_string(o.max_new), "must be in [0, 1048576]");
  }
  if (!(o.temperature >= 0) || o.temperature > 100) {
    fail("--temperature", std::to_string(o.temperature), "must be in [0, 100] (0 = greedy)");
  }
  if (!(o.top_p > 0) || o.top_p > 1) fail("--top-p", std::to_string(o.top_p), "must be in (0, 1]");
  if (o.seed < 0) fail("--seed", std::to_string(o.seed), "must be >= 0");
  auto m = load_model<float>(o.model, o.tokenizer);
  const int max_pos = m.weights.config.max_position_embeddings;
  if (o.context < 0 || o.context > max_pos) {
    fail("--context", std::to_string(o.context),
         "must be in [1, " + std::to_string(max_pos) +
             "] (max_position_embeddings), or 0 for the model's");
  }
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.context = o.context;
  eo.schedule = to_schedule(o.schedule);
  eo.policy = policy_option(o.policy, o.positions);
  if (!o.budget.empty()) eo.budget = ref::BudgetSpec::parse(o.budget);
  if (o.h2o_scores && o.telemetry.empty()) {
    fail("--h2o-scores", "true", "needs --telemetry FILE to write the scores to");
  }
  eo.plan = plan_option(o.plan, m.weights.config.num_hidden_layers);
  ref::Engine<float> engine(m.weights, eo);
  std::unique_ptr<JsonlObserver> tele;
  if (!o.telemetry.empty()) {
    tele = std::make_unique<JsonlObserver>(o.telemetry);
    engine.add_observer(tele.get());
    engine.emit_h2o_scores(o.h2o_scores);
  }
  const std::vector<int> prompt = m.tokenizer->encode(o.prompt, /*add_bos=*/true);
  ref::Sampler sampler(o.temperature, o.top_p, static_cast<std::uint64_t>(o.seed));

  std::printf("%s", printable(o.prompt).c_str());
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = engine.prefill(prompt);
  const auto t1 = std::chrono::steady_clock::now();
  int generated = 0;
  for (; generated < o.max_new; ++generated) {
    const int tok = sampler.next(logits);
    if (tok == m.tokenizer->eos_id()) break;
    // Ids past the tokenizer's vocabulary (a model vocabulary padded beyond it) have no text.
    const std::string text = tok < m.tokenizer->vocab_size()
                                 ? printable(m.tokenizer->decode_token(tok))
                                 : std::string("<").append(std::to_string(tok)).append(">");
    std::printf("%s", text.c_str());
    std::fflush(stdout);
    if (generated + 1 == o.max_new || engine.position() >= engine.context()) {
      ++generated;
      break;
    }
    logits = engine.decode(tok);
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr,
               "\n[kvlab] plan %s | prompt %zu tokens in %.3f s | %d new tokens, %.1f tokens/s | "
               "KV held %s of %s allocated\n",
               engine.plan().to_string().c_str(), prompt.size(), prefill_s, generated,
               decode_s > 0 ? generated / decode_s : 0.0,
               human_bytes(static_cast<double>(engine.kv().bytes_held())).c_str(),
               human_bytes(static_cast<double>(engine.kv().bytes_allocated())).c_str());
  std::printf("\n");
  if (tele) tele->close();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint under a KV plan");
  cmd->add_option("--model", o->model,
                  "Checkpoint: a kvlab or Hugging Face directory, or a llama2.c .bin")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: the checkpoint's own)");
  cmd->add_option("--prompt", o->prompt, "Prompt text")->required();
  cmd->add_option("--max-new", o->max_new, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 = greedy (deterministic)")
      ->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--plan", o->plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--telemetry", o->telemetry, "Write telemetry events as JSON lines");
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  cmd->add_option("--context", o->context, "Max sequence length (default: the model's)");
  cmd->add_option("--policy", o->policy,
                  "What each KV bank keeps: full, window[:W], streaming[:S], "
                  "h2o[:R][,norm=count]")
      ->capture_default_str();
  cmd->add_option("--budget", o->budget, "Tokens per bank, or a fraction of the prompt");
  cmd->add_option("--positions", o->positions, "Key positions: absolute or cache")
      ->capture_default_str();
  cmd->add_flag("--h2o-scores", o->h2o_scores, "Write H2O scores per bank and head to --telemetry");
  add_schedule_options(cmd, o->schedule);
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace kvlab::cli
