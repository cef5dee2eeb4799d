// kvlab eval: a task (passkey, mqar, ppl) under a plan, a sequence policy and a budget.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval_options.hpp"

namespace kvlab::cli {

void add_eval_options(CLI::App* cmd, RunArgs& run, EvalSetup& s, unsigned which) {
  add_run_options(cmd, run, kPositions | kSqueeze | which);
  cmd->add_option("--task", s.task, "passkey, mqar or ppl")->capture_default_str();
  cmd->add_option("--text-file", s.text_file, "Text for the ppl task");
  cmd->add_option("--n", s.n, "Examples")->capture_default_str();
  cmd->add_option("--length", s.length, "Context tokens per example (default: min(256, ctx/2))");
  cmd->add_option("--pairs", s.pairs, "mqar: key/value pairs")->capture_default_str();
  cmd->add_option("--queries", s.queries, "mqar: pairs asked again")->capture_default_str();
  cmd->add_option("--seed", s.seed, "Task seed")->capture_default_str();
}

namespace {

struct EvalArgs {
  RunArgs run;
  EvalSetup setup;
  bool json = false;
};

void run_eval_command(const EvalArgs& o) {
  Session session = load_session(o.run);
  const EvalResult r = session.eval(o.setup);
  if (o.json) {
    std::cout << nlohmann::json{{"task", o.setup.task},
                                {"policy", o.run.policy},
                                {"budget", o.run.budget},
                                {"squeeze", o.run.squeeze},
                                {"correct", r.correct},
                                {"scored", r.scored},
                                {"accuracy", r.accuracy()},
                                {"perplexity", r.perplexity()},
                                {"kv_bytes_held", r.kv_bytes_held},
                                {"kv_bytes_full", r.kv_bytes_full}}
                     .dump(2)
              << "\n";
    return;
  }
  std::printf("task %s, %d examples, policy %s, budget %s%s\n", o.setup.task.c_str(), o.setup.n,
              o.run.policy.c_str(), o.run.budget.empty() ? "(all)" : o.run.budget.c_str(),
              o.run.squeeze.empty() ? "" : (", squeeze " + o.run.squeeze).c_str());
  std::printf("accuracy %.3f (%d of %d)   perplexity %.4g\n", r.accuracy(), r.correct, r.scored,
              r.perplexity());
  if (!o.run.squeeze.empty() && o.run.policy.rfind("streaming", 0) == 0) {
    std::printf("note: a streaming budget includes its sink tokens\n");
  }
  std::printf("KV held when the questions begin: %s of %s without eviction (%.1f%%)\n",
              human_bytes(r.kv_bytes_held).c_str(), human_bytes(r.kv_bytes_full).c_str(),
              100.0 * r.kv_bytes_held / std::max(1.0, r.kv_bytes_full));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Run a task under a plan, a policy and a KV budget");
  add_eval_options(cmd, o->run, o->setup, kPolicy | kBudget);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_eval_command(*o); });
}

}  // namespace kvlab::cli
