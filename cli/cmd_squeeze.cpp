// kvlab squeeze: SqueezeAttention's analysis of one prompt: per-layer importance, clusters,
// budgets per bank, and the totals against the uniform budget.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct SqueezeArgs {
  RunArgs run;
  ref::SqueezeSpec spec;  // --f0, --f3, --p, --bank-mean
  bool json = false;
  bool p_given = false;  // --p was on the command line (p < 0 otherwise means "not given")
};

std::vector<double> one_minus(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = 1.0 - v[i];
  return r;
}

void run_squeeze(const SqueezeArgs& o) {
  if (o.p_given && !(o.spec.p > 0 && o.spec.p <= 1)) {
    char value[32];
    std::snprintf(value, sizeof value, "%g", o.spec.p);
    fail("--p", value, "must be in (0, 1] (f3 = p · f0)");
  }
  const Prompt input = o.run.prompt_input();
  SessionOptions so = o.run.session_options();
  so.run.squeeze = o.spec;
  so.run.squeeze.enabled = true;
  Session session = Session::load(so);
  const SqueezeReport rep = session.squeeze(session.tokens_of(input));
  const ref::SqueezeResult& r = rep.result;
  const int L = static_cast<int>(rep.bank.size());
  if (o.json) {
    nlohmann::json j;
    j["map"] = rep.map;
    j["prompt_tokens"] = rep.prompt_tokens;
    // cos_sim is s_l (higher = less important); importance = 1 - cos_sim.
    j["cos_sim"] = r.layer_importance;
    j["importance"] = one_minus(r.layer_importance);
    std::vector<int> cluster(L, 0), budget(L, -1);
    for (int l = 0; l < L; ++l) {
      const int s = rep.slot[l];
      if (s >= 0) {
        cluster[l] = r.cluster[s];
        budget[l] = r.budget[s];
      }
    }
    j["cluster"] = cluster;
    j["budget_tokens"] = budget;
    j["bank"] = rep.bank;
    j["bank_cos_sim"] = r.bank_importance;
    j["bank_importance"] = one_minus(r.bank_importance);
    j["a"] = r.a;
    j["total_budget_tokens"] = rep.total_budget;
    j["uniform_total_tokens"] = rep.uniform_total;
    j["notes"] = r.notes;  // budgets raised to what the policy needs
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("plan %s, %d prompt tokens, f0 = %.3f, f3 = %.3f -> a = %.4f (clusters 1, 2)\n",
              rep.map.c_str(), rep.prompt_tokens, o.spec.f0, o.spec.reduced(), r.a);
  std::printf(
      "cos_sim s_l = mean cos(x, x + attn(x)): higher means the layer changed the stream less "
      "(less important); importance = 1 - cos_sim\n\n");
  std::printf(
      " layer     cos_sim  importance  bank  bank cos_sim  bank importance  cluster  budget "
      "(tokens)\n");
  for (int l = 0; l < L; ++l) {
    const int s = rep.slot[l];
    const double c = r.layer_importance[l];
    if (s < 0) {
      std::printf(" %5d  %10.6f  %10.6f  %4d  (sliding window: keeps its window)\n", l, c, 1.0 - c,
                  rep.bank[l]);
      continue;
    }
    const double bc = r.bank_importance[s];
    std::printf(" %5d  %10.6f  %10.6f  %4d  %12.6f  %15.6f  %7d  %6d\n", l, c, 1.0 - c, rep.bank[l],
                bc, 1.0 - bc, r.cluster[s], r.budget[s]);
  }
  std::printf("\ntotal budget %ld tokens over %d banks (uniform: %ld); KV held %s\n",
              rep.total_budget, rep.evicting_banks, rep.uniform_total,
              human_bytes(static_cast<double>(rep.kv_bytes_held)).c_str());
  if (o.run.policy.rfind("streaming", 0) == 0) {
    std::printf("note: a streaming budget includes its sink tokens\n");
  }
  for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
}

}  // namespace

void add_squeeze_command(CLI::App& app) {
  auto o = std::make_shared<SqueezeArgs>();
  o->run.policy = "streaming";
  auto* cmd =
      app.add_subcommand("squeeze", "SqueezeAttention: layer importance, clusters, budgets");
  add_run_options(cmd, o->run, kPolicy | kPositions | kPrompt | kTextFile);
  cmd->add_option("--f0", o->spec.f0, "Uniform fraction of the prompt per bank")->required();
  cmd->add_option("--f3", o->spec.f3, "Fraction for the least important cluster");
  cmd->add_option("--p", o->spec.p, "Or f3 = p · f0");
  cmd->add_flag("--bank-mean", o->spec.bank_mean,
                "A shared bank's importance: mean of its readers");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, cmd] {
    o->p_given = cmd->count("--p") > 0;
    run_squeeze(*o);
  });
}

}  // namespace kvlab::cli
