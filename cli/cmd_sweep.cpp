// kvlab sweep: a task over policies x budgets, as a CSV file and a readable table (accuracy or
// perplexity against KV bytes).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval_options.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"

namespace kvlab::cli {
namespace {

struct SweepArgs {
  RunArgs run;
  EvalSetup setup;
  std::string policies = "window,streaming,h2o", budgets = "0.1,0.25,0.5,1.0", out;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

void run_sweep(const SweepArgs& o) {
  // Loaded without SqueezeAttention: the policies of the sweep are what it needs.
  SessionOptions so = o.run.session_options();
  const RunOptions base = so.run;
  so.run.squeeze = {};
  Session session = Session::load(so);
  // Policies are separated by ';' when one carries a comma option (h2o,norm=count); budgets by ','.
  const std::vector<std::string> policies =
      split(o.policies, o.policies.find(';') != std::string::npos ? ';' : ',');
  const std::vector<std::string> budgets = split(o.budgets, ',');
  if (policies.empty()) fail("--policies", o.policies, "give at least one policy");
  if (budgets.empty()) fail("--budgets", o.budgets, "give at least one budget");

  // Every policy and budget, and the CSV's directory, are checked before anything is printed: a
  // bad item late in the list is one named error, not a partial table.
  if (!o.out.empty()) check_output_directory("--out", o.out);
  for (const auto& p : policies) {
    for (const auto& b : budgets) {
      RunOptions run = base;
      run.policy = p;
      run.budget = b;
      session.configure(run);
    }
  }

  const EvalSetup& s = o.setup;
  const std::string plan = o.run.plan.empty() ? "checkpoint" : o.run.plan;
  std::string csv =
      "task,plan,policy,budget,squeeze,examples,correct,scored,accuracy,perplexity,"
      "kv_bytes_held,kv_bytes_full\n";
  bool header = false;  // printed with the first row: an error in the first run prints nothing else
  for (const auto& p : policies) {
    for (const auto& b : budgets) {
      RunOptions run = base;
      run.policy = p;
      run.budget = b;
      session.configure(run);
      const EvalResult r = session.eval(s);
      char line[512];
      std::snprintf(line, sizeof line, "%s,%s,%s,%s,%s,%d,%d,%d,%.6f,%.6f,%.0f,%.0f\n",
                    s.task.c_str(), plan.c_str(), p.c_str(), b.c_str(), o.run.squeeze.c_str(), s.n,
                    r.correct, r.scored, r.accuracy(), r.perplexity(), r.kv_bytes_held,
                    r.kv_bytes_full);
      csv += line;
      if (!header) {
        std::printf("%-22s %-8s %9s %11s %14s %8s\n", "policy", "budget", "accuracy", "perplexity",
                    "KV held", "of full");
        header = true;
      }
      std::printf("%-22s %-8s %9.3f %11.4g %14s %7.1f%%\n", p.c_str(), b.c_str(), r.accuracy(),
                  r.perplexity(), human_bytes(r.kv_bytes_held).c_str(),
                  100.0 * r.kv_bytes_held / std::max(1.0, r.kv_bytes_full));
      std::fflush(stdout);
    }
  }
  if (!o.out.empty()) {
    write_file_atomic(o.out, [&](std::ostream& out) { out << csv; });
    std::printf("wrote %s\n", o.out.c_str());
  }
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand("sweep", "A task over policies x budgets: CSV and a table");
  add_eval_options(cmd, o->run, o->setup);
  cmd->add_option("--policies", o->policies,
                  "Comma-separated policies (';' when one has an option: h2o,norm=count)")
      ->capture_default_str();
  cmd->add_option("--budgets", o->budgets, "Comma-separated budgets (tokens or fractions)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "CSV file to write");
  cmd->callback([o] { run_sweep(*o); });
}

}  // namespace kvlab::cli
