// kvlab sweep: a task over policies x budgets, as a CSV file and a readable table (accuracy or
// perplexity against KV bytes).
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"

namespace kvlab::cli {
namespace {

struct SweepOptions {
  std::string model, policies = "window,streaming,h2o", budgets = "0.1,0.25,0.5,1.0", out;
  EvalSetup setup;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ';');) out.push_back(item);
  return out;
}

void run_sweep(const SweepOptions& o) {
  auto m = load_model<float>(o.model);
  // Policies are separated by ';' when one carries a comma option (h2o,norm=count); budgets by ','.
  std::vector<std::string> policies =
      o.policies.find(';') != std::string::npos ? split(o.policies) : std::vector<std::string>{};
  if (policies.empty()) {
    std::stringstream ss(o.policies);
    for (std::string p; std::getline(ss, p, ',');) policies.push_back(p);
  }
  std::vector<std::string> budgets;
  std::stringstream bs(o.budgets);
  for (std::string b; std::getline(bs, b, ',');) budgets.push_back(b);
  if (policies.empty()) fail("--policies", o.policies, "give at least one policy");
  if (budgets.empty()) fail("--budgets", o.budgets, "give at least one budget");

  std::string csv =
      "task,plan,policy,budget,squeeze,examples,correct,scored,accuracy,perplexity,"
      "kv_bytes_held,kv_bytes_full\n";
  std::printf("%-22s %-8s %9s %11s %14s %8s\n", "policy", "budget", "accuracy", "perplexity",
              "KV held", "of full");
  for (const auto& p : policies) {
    for (const auto& b : budgets) {
      EvalSetup s = o.setup;
      s.policy = p;
      s.budget = b;
      const EvalResult r = run_eval(m, s);
      char line[512];
      std::snprintf(line, sizeof line, "%s,%s,%s,%s,%s,%d,%d,%d,%.6f,%.6f,%.0f,%.0f\n",
                    s.task.c_str(), s.plan.empty() ? "checkpoint" : s.plan.c_str(), p.c_str(),
                    b.c_str(), s.squeeze.c_str(), s.n, r.correct, r.scored, r.accuracy(),
                    r.perplexity(), r.kv_bytes_held, r.kv_bytes_full);
      csv += line;
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
  auto o = std::make_shared<SweepOptions>();
  auto* cmd = app.add_subcommand("sweep", "A task over policies x budgets: CSV and a table");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--policies", o->policies,
                  "Comma-separated policies (';' when one has an option: h2o,norm=count)")
      ->capture_default_str();
  cmd->add_option("--budgets", o->budgets, "Comma-separated budgets (tokens or fractions)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "CSV file to write");
  add_eval_options(cmd, o->setup);
  cmd->callback([o] { run_sweep(*o); });
}

}  // namespace kvlab::cli
