// kvlab generate: run a checkpoint under any plan and print the continuation.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct GenerateArgs {
  RunArgs run;
  GenerateOptions gen;
  std::string telemetry;
  bool h2o_scores = false, kept = false;
};

void run_generate(const GenerateArgs& o) {
  o.gen.validate();
  if (o.h2o_scores && o.telemetry.empty()) {
    fail("--h2o-scores", "true", "needs --telemetry FILE to write the scores to");
  }
  if (o.kept && o.telemetry.empty()) {
    fail("--kept", "true", "needs --telemetry FILE to write the kept positions to");
  }
  Session session = load_session(o.run);
  std::unique_ptr<JsonlObserver> tele;
  if (!o.telemetry.empty()) {
    tele = std::make_unique<JsonlObserver>(o.telemetry);
    // --h2o-scores: the costly kind too (scores per held cell, per bank and KV head).
    EventMask kinds = kDefaultEvents;
    if (o.h2o_scores) kinds = kinds | EventKind::h2o_scores;
    if (o.kept) kinds = kinds | EventKind::kept;
    session.subscribe(tele.get(), kinds);
  }
  const std::vector<int> prompt = session.encode(o.run.prompt);
  std::printf("%s", printable(o.run.prompt).c_str());
  std::fflush(stdout);
  set_stdout_mid_line(true);
  const GenerateResult r = session.generate(prompt, o.gen, [&](int tok) {
    std::printf("%s", printable(session.token_text(tok)).c_str());
    std::fflush(stdout);
    return true;
  });
  const std::string dtype = dtype_name(session.kv_dtype());
  const std::string note = kv_dtype_note(session, /*with_memory=*/true);
  std::fprintf(
      stderr,
      "\n[kvlab] plan %s | prompt %zu tokens in %.3f s | %zu new tokens, %.1f tokens/s | "
      "KV held %s of %s allocated at %s%s\n",
      session.plan().to_string().c_str(), prompt.size(), r.prefill_seconds, r.tokens.size(),
      r.tokens_per_second(), human_bytes(static_cast<double>(session.kv_bytes_held())).c_str(),
      human_bytes(static_cast<double>(session.kv_bytes_allocated())).c_str(), dtype.c_str(),
      note.empty() ? " (the precision: K/V are held as computed; --dtype f16 rounds them)"
                   : note.c_str());
  std::printf("\n");
  set_stdout_mid_line(false);
  if (session.h2o_score_bytes() > 0) {
    std::fprintf(stderr,
                 "[kvlab] H2O scores %s beside the K/V (a score and a count per held cell, f64 "
                 "each)\n",
                 human_bytes(static_cast<double>(session.h2o_score_bytes())).c_str());
  }
  if (r.context_full) {
    std::fprintf(stderr, "[kvlab] stopped after %zu new tokens: the context (%d tokens) is full\n",
                 r.tokens.size(), session.context());
  }
  if (tele) tele->close();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint under a KV plan");
  add_run_options(
      cmd, o->run,
      kContext | kPolicy | kBudget | kPositions | kSchedule | kTokenByToken | kSqueeze | kDtype);
  cmd->add_option("--prompt", o->run.prompt, "Prompt text")->required();
  cmd->add_option("--max-new", o->gen.max_new, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->gen.temperature, "0 = greedy (deterministic)")
      ->capture_default_str();
  cmd->add_option("--top-p", o->gen.top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->gen.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--telemetry", o->telemetry, "Write telemetry events as JSON lines");
  cmd->add_flag("--h2o-scores", o->h2o_scores, "Write H2O scores per bank and head to --telemetry");
  cmd->add_flag("--kept", o->kept,
                "Write the positions each bank and KV head kept (any policy, Squeeze budgets "
                "too) to --telemetry after the prefill and every step");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace kvlab::cli
