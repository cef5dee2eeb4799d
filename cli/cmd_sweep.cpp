// kvlab sweep: a task over policies x budgets, as a CSV file and a readable table (accuracy or
// perplexity against KV bytes).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval_options.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "reference/policies.hpp"

namespace kvlab::cli {
namespace {

struct SweepArgs {
  RunArgs run;
  EvalSetup setup;
  std::string policies = "window,streaming,h2o", budgets = "10%,25%,50%,100%", out;
  bool budgets_given = false, json = false;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

// A number for the table and the CSV: plain when moderate, scientific when large or tiny.
std::string number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

struct Row {
  std::string policy, budget;
};

void run_sweep(const SweepArgs& o) {
  // Policies are separated by ';' when one carries a comma option (h2o,norm=count); budgets by ','.
  const std::vector<std::string> policies =
      split(o.policies, o.policies.find(';') != std::string::npos ? ';' : ',');
  if (policies.empty()) fail("--policies", o.policies, "give at least one policy");
  const bool squeeze = !o.run.squeeze.empty();
  if (squeeze && o.budgets_given) {
    fail("--budgets", o.budgets,
         "--squeeze sets every bank's budget: sweep the policies with --squeeze, or the budgets "
         "without it");
  }
  // With --squeeze, one row per policy, its budgets SqueezeAttention's.
  const std::vector<std::string> budgets =
      squeeze ? std::vector<std::string>{""} : split(o.budgets, ',');
  if (budgets.empty()) fail("--budgets", o.budgets, "give at least one budget");
  std::vector<Row> rows;
  for (const auto& p : policies) {
    for (const auto& b : budgets) rows.push_back({p, b});
  }

  // The whole sweep is checked before anything runs: every policy and budget against the model
  // and against the task's prompt length (a percentage too small for it), and the output's
  // directory. A bad item late in the list is one named error, not a partial table.
  if (!o.out.empty()) check_output_directory("--out", o.out);
  SessionOptions so = o.run.session_options();
  const RunOptions base = so.run;
  so.run.squeeze = {};  // loaded under the default policy (full); each row configures its own
  Session session = load_session(so);
  for (const Row& row : rows) {
    RunOptions run = base;
    run.policy = row.policy;
    run.budget = row.budget;
    session.configure(run);
    const ref::PolicySpec policy = ref::PolicySpec::parse(row.policy);
    if (!row.budget.empty() || squeeze) {
      if (policy.kind == ref::SequencePolicy::full) {
        fail("--policies", row.policy,
             "full keeps every token: a budget or --squeeze needs an evicting policy");
      }
    }
    session.check_eval(o.setup);  // the task, and this budget against every prompt
  }

  const EvalSetup& s = o.setup;
  const std::string plan = o.run.plan.empty() ? session.plan_spec() : o.run.plan;
  const std::string dtype = dtype_name(session.kv_dtype());
  std::string csv =
      "task,plan,map,policy,budget,squeeze,examples,correct,scored,accuracy,perplexity,"
      "kv_bytes_held,kv_bytes_full,kv_dtype\n";
  nlohmann::json json = nlohmann::json::array();
  bool header = false;  // printed with the first row: an error in the first run prints nothing else
  for (const Row& row : rows) {
    RunOptions run = base;
    run.policy = row.policy;
    run.budget = row.budget;
    session.configure(run);
    const EvalResult r = session.eval(s);
    const std::string budget = squeeze ? "squeeze" : row.budget;
    // A policy with an option (h2o,norm=count) is quoted: it holds the CSV's separator.
    const std::string policy_field =
        row.policy.find(',') != std::string::npos ? "\"" + row.policy + "\"" : row.policy;
    csv += s.task + "," + plan + "," + session.plan().to_string() + "," + policy_field + "," +
           budget + "," + (squeeze ? "\"" + o.run.squeeze + "\"" : std::string()) + "," +
           std::to_string(s.n) + "," + std::to_string(r.correct) + "," + std::to_string(r.scored) +
           "," + number(r.accuracy()) + "," + number(r.perplexity()) + "," +
           number(r.kv_bytes_held) + "," + number(r.kv_bytes_full) + "," + dtype + "\n";
    nlohmann::json result = eval_result_json(s.task, plan, session.plan().to_string(), row.policy,
                                             budget, o.run.squeeze, r, dtype);
    result["examples"] = s.n;
    json.push_back(std::move(result));
    if (o.json) continue;
    if (!header) {
      std::printf("plan %s (%s), task %s, %d examples\n", plan.c_str(),
                  session.plan().to_string().c_str(), s.task.c_str(), s.n);
      std::printf("%-22s %-8s %9s %11s %14s %8s\n", "policy", "budget", "accuracy", "perplexity",
                  ("KV held (" + dtype + ")").c_str(), "of full");
      header = true;
    }
    std::printf("%-22s %-8s %9.3f %11s %14s %7.1f%%\n", row.policy.c_str(), budget.c_str(),
                r.accuracy(), number(r.perplexity()).c_str(), human_bytes(r.kv_bytes_held).c_str(),
                100.0 * r.kv_bytes_held / std::max(1.0, r.kv_bytes_full));
    std::fflush(stdout);
  }
  if (!o.out.empty()) {
    write_file_atomic(o.out, [&](std::ostream& out) { out << csv; });
    if (!o.json) std::printf("wrote %s\n", o.out.c_str());
  }
  if (o.json) std::cout << json.dump(2) << "\n";
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand("sweep", "A task over policies x budgets: CSV and a table");
  add_eval_options(cmd, o->run, o->setup);
  cmd->add_option("--policies", o->policies,
                  "Comma-separated policies (';' when one has an option: h2o,norm=count)")
      ->capture_default_str();
  cmd->add_option("--budgets", o->budgets,
                  "Comma-separated budgets: tokens (64) or percentages of the prompt (25%); not "
                  "with --squeeze (it sets the budgets: one row per policy)")
      ->capture_default_str();
  cmd->add_option("--out", o->out,
                  "CSV file to write (numbers as %.6g: scientific from 1e6 on; a kv_dtype "
                  "column)");
  cmd->add_flag("--json", o->json, "Print the rows as a JSON array instead of the table");
  cmd->callback([o, cmd] {
    o->budgets_given = cmd->count("--budgets") > 0;
    run_sweep(*o);
  });
}

}  // namespace kvlab::cli
