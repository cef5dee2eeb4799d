// kvlab squeeze: SqueezeAttention's analysis of one prompt: per-layer importance, clusters,
// budgets per bank, and the totals against the uniform budget.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
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
  bool f0_given = false, f3_given = false;
};

std::vector<double> one_minus(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = 1.0 - v[i];
  return r;
}

// --squeeze f0,f3 (as every command takes it), or its aliases --f0 with --f3 or --p.
ref::SqueezeSpec squeeze_spec(const SqueezeArgs& o) {
  const bool aliases = o.f0_given || o.f3_given || o.p_given;
  if (!o.run.squeeze.empty()) {
    if (aliases) {
      fail("--squeeze", o.run.squeeze,
           "give either --squeeze f0,f3 or its aliases --f0 with --f3 or --p, not both");
    }
    ref::SqueezeSpec s = parse_squeeze(o.run.squeeze);
    s.bank_mean = o.spec.bank_mean;
    return s;
  }
  if (!o.f0_given) fail("--squeeze", "(none)", "give --squeeze f0,f3 (e.g. 0.5,0.2)");
  if (o.p_given && !(o.spec.p > 0 && o.spec.p <= 1)) {
    char value[32];
    std::snprintf(value, sizeof value, "%g", o.spec.p);
    fail("--p", value, "must be in (0, 1] (f3 = p · f0)");
  }
  ref::SqueezeSpec s = o.spec;
  s.enabled = true;
  return s;
}

void run_squeeze(const SqueezeArgs& o) {
  const Prompt input = o.run.prompt_input();
  SessionOptions so = o.run.session_options();
  so.run.squeeze = squeeze_spec(o);
  const ref::SqueezeSpec& spec = so.run.squeeze;
  Session session = load_session(so);
  RecordingObserver kept;  // which positions each bank kept: the policy's visible effect
  session.subscribe(&kept, mask(EventKind::kept));
  const SqueezeReport rep = session.squeeze(session.tokens_of(input));
  session.unsubscribe(&kept);
  std::map<int, std::vector<int>> kept_head0;  // bank -> positions its KV head 0 kept
  for (const KeptEvent& e : kept.kept) {
    if (e.kv_head == 0) kept_head0[e.bank] = e.positions;
  }
  const ref::SqueezeResult& r = rep.result;
  const int L = static_cast<int>(rep.bank.size());
  for (int l = 0; l < L; ++l) {  // never print NaN: a layer outside the evicting banks too
    if (!std::isfinite(r.layer_importance[l])) {
      fail("squeeze: layer " + std::to_string(l) + " cos_sim",
           std::to_string(r.layer_importance[l]),
           "is not finite: the model's hidden states hold NaN or Inf on this prompt");
    }
  }
  if (o.json) {
    nlohmann::json j;
    j["map"] = rep.map;
    j["policy"] = o.run.policy;
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
    nlohmann::json kept_json = nlohmann::json::object();
    for (const auto& [bank, positions] : kept_head0) kept_json[std::to_string(bank)] = positions;
    j["kept_positions_head0"] = kept_json;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf(
      "plan %s, policy %s (it sets the least a bank can keep and which tokens it keeps), "
      "%d prompt tokens\nf0 = %.3f, f3 = %.3f -> a = %.4f (clusters 1, 2)\n",
      rep.map.c_str(), o.run.policy.c_str(), rep.prompt_tokens, spec.f0, spec.reduced(), r.a);
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
  std::printf("\ntotal budget %ld tokens over %d banks (uniform: %ld); KV held %s at %s\n",
              rep.total_budget, rep.evicting_banks, rep.uniform_total,
              human_bytes(static_cast<double>(rep.kv_bytes_held)).c_str(),
              dtype_name(session.kv_dtype()).c_str());
  std::printf("\npositions each bank kept after the prompt (KV head 0; %s chooses them):\n",
              o.run.policy.c_str());
  for (const auto& [bank, positions] : kept_head0) {
    std::string list;
    for (int p : positions) list += (list.empty() ? "" : " ") + std::to_string(p);
    std::printf(" bank %d: %s\n", bank, list.c_str());
  }
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
  add_run_options(cmd, o->run, kPolicy | kPositions | kPrompt | kTextFile | kSqueeze);
  cmd->add_option("--f0", o->spec.f0, "Alias: --f0 F0 --f3 F3 is --squeeze F0,F3");
  cmd->add_option("--f3", o->spec.f3,
                  "Alias: the least important cluster's fraction (needs --f0; or give --p)");
  cmd->add_option("--p", o->spec.p, "Alias: f3 = p · f0 (needs --f0; instead of --f3)");
  cmd->add_flag("--bank-mean", o->spec.bank_mean,
                "A shared bank's importance: mean of its readers");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, cmd] {
    o->p_given = cmd->count("--p") > 0;
    o->f0_given = cmd->count("--f0") > 0;
    o->f3_given = cmd->count("--f3") > 0;
    run_squeeze(*o);
  });
}

}  // namespace kvlab::cli
