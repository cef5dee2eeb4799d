// kvlab eval: a task (passkey, mqar, ppl) under a plan, a sequence policy and a budget.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval_options.hpp"
#include "cli/run_options.hpp"
#include "core/formats/atomic_file.hpp"

namespace kvlab::cli {

nlohmann::json eval_result_json(const std::string& task, const std::string& plan,
                                const std::string& map, const std::string& policy,
                                const std::string& budget, const std::string& squeeze,
                                const EvalResult& r, const std::string& kv_dtype) {
  return {{"task", task},
          {"plan", plan},
          {"map", map},
          {"policy", policy},
          {"budget", budget},
          {"squeeze", squeeze},
          {"correct", r.correct},
          {"scored", r.scored},
          {"accuracy", r.accuracy()},
          {"perplexity", r.perplexity()},
          {"kv_bytes_held", r.kv_bytes_held},
          {"kv_bytes_full", r.kv_bytes_full},
          {"kv_dtype", kv_dtype}};
}

void add_eval_options(CLI::App* cmd, RunArgs& run, EvalSetup& s, unsigned which) {
  add_run_options(cmd, run, kPositions | kSqueeze | kDtype | which);
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
  std::string out;  // --out: the JSON result also goes to this file
};

// `text` with its middle replaced by "[... N bytes ...]" when longer than 2 * keep bytes (cut at
// UTF-8 character boundaries).
std::string shorten_middle(const std::string& text, std::size_t keep) {
  if (text.size() <= 2 * keep + 32) return text;
  auto boundary = [&](std::size_t at) {
    while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    return at;
  };
  const std::size_t head = boundary(keep), tail = boundary(text.size() - keep);
  return text.substr(0, head) + " [... " + std::to_string(tail - head) + " bytes ...] " +
         text.substr(tail);
}

// On one line: newlines and tabs escaped too.
std::string one_line(const std::string& text) {
  return printable_text(text, /*one_line=*/true);
}

std::string ids_text(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

void run_eval_command(const EvalArgs& o) {
  if (!o.out.empty()) check_output_directory("--out", o.out);
  Session session = load_session(o.run);
  const EvalResult r = session.eval(o.setup);
  const std::string plan = session.plan_spec(), map = session.plan().to_string();
  const std::string dtype = dtype_name(session.kv_dtype());
  if (o.json || !o.out.empty()) {
    nlohmann::json shown = nlohmann::json::array();
    for (const EvalExample& e : r.shown) {
      shown.push_back({{"prompt", session.decode(e.prompt)},
                       {"prompt_tokens", e.prompt.size()},
                       {"expected", e.expected},
                       {"expected_text", session.decode(e.expected)},
                       {"produced", e.produced},
                       {"produced_text", session.decode(e.produced)},
                       {"correct", e.correct}});
    }
    nlohmann::json result = eval_result_json(o.setup.task, plan, map, o.run.policy, o.run.budget,
                                             o.run.squeeze, r, dtype);
    result["examples"] = shown;
    // decoded task tokens need not be valid UTF-8 (mqar's random ids)
    const std::string text =
        result.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (!o.out.empty()) {
      write_file_atomic(o.out, [&](std::ostream& out) { out << text; });
    }
    if (o.json) {
      std::cout << text;
      return;
    }
  }
  std::printf("task %s, %d examples, plan %s (%s), policy %s, budget %s%s\n", o.setup.task.c_str(),
              o.setup.n, plan.c_str(), map.c_str(), o.run.policy.c_str(),
              o.run.budget.empty() ? "(all)" : o.run.budget.c_str(),
              o.run.squeeze.empty() ? "" : (", squeeze " + o.run.squeeze).c_str());
  for (std::size_t i = 0; i < r.shown.size(); ++i) {
    const EvalExample& e = r.shown[i];
    std::printf("example %zu: %zu prompt tokens, %d of %zu answer tokens right\n", i + 1,
                e.prompt.size(), e.correct, e.expected.size());
    std::printf("  prompt:   %s\n", one_line(shorten_middle(session.decode(e.prompt), 80)).c_str());
    std::printf("  expected: %s  [%s]\n",
                one_line(shorten_middle(session.decode(e.expected), 60)).c_str(),
                shorten_middle(ids_text(e.expected), 60).c_str());
    std::printf("  produced: %s  [%s]\n",
                one_line(shorten_middle(session.decode(e.produced), 60)).c_str(),
                shorten_middle(ids_text(e.produced), 60).c_str());
  }
  std::printf("accuracy %.3f (%d of %d)   perplexity %.4g\n", r.accuracy(), r.correct, r.scored,
              r.perplexity());
  if (!o.run.squeeze.empty() && o.run.policy.rfind("streaming", 0) == 0) {
    std::printf("note: a streaming budget includes its sink tokens\n");
  }
  std::printf("KV held when the questions begin: %s of %s without eviction (%.1f%%), at %s%s\n",
              human_bytes(r.kv_bytes_held).c_str(), human_bytes(r.kv_bytes_full).c_str(),
              100.0 * r.kv_bytes_held / std::max(1.0, r.kv_bytes_full), dtype.c_str(),
              kv_dtype_note(session).c_str());
  if (!o.out.empty()) std::printf("wrote %s\n", o.out.c_str());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Run a task under a plan, a policy and a KV budget");
  add_eval_options(cmd, o->run, o->setup, kPolicy | kBudget);
  cmd->add_option("--show", o->setup.show,
                  "Print the first N examples: the decoded prompt up to the answer (its middle cut "
                  "when long), the expected answer and the model's greedy answer (each token given "
                  "the true ones before it)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_option("--out", o->out, "Also write the result as JSON (as --json prints it) to FILE");
  cmd->callback([o] { run_eval_command(*o); });
}

}  // namespace kvlab::cli
