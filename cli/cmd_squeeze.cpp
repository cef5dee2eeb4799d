// kvlab squeeze: SqueezeAttention's analysis of one prompt: per-layer importance, clusters,
// budgets per bank, and the totals against the uniform budget.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/model_io.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct SqueezeOptions {
  std::string model, plan, prompt, tokens, text_file, policy = "streaming";
  double f0 = 0, f3 = -1, p = -1;
  bool bank_mean = false, json = false;
  int threads = 1;
};

void run_squeeze(const SqueezeOptions& o) {
  auto m = load_model<float>(o.model);
  const ModelConfig& c = m.weights.config;
  if ((o.f3 >= 0) == (o.p >= 0)) {
    fail("--f3/--p", o.f3 >= 0 ? "(both)" : "(none)", "give exactly one of --f3 and --p");
  }
  const std::vector<int> toks =
      prompt_tokens(*m.tokenizer, m.weights.config.vocab_size, o.prompt, o.tokens, o.text_file);
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.plan = plan_option(o.plan, c.num_hidden_layers);
  eo.policy = ref::PolicySpec::parse(o.policy);
  eo.squeeze.enabled = true;
  eo.squeeze.f0 = o.f0;
  eo.squeeze.f3 = o.f3;
  eo.squeeze.p = o.p;
  eo.squeeze.bank_mean = o.bank_mean;
  ref::Engine<float> engine(m.weights, eo);
  engine.prefill(toks);
  const ref::SqueezeResult& r = engine.squeeze();
  const KvPlan& plan = engine.plan();
  // Per layer: the bank it reads and that bank's cluster and budget.
  std::vector<int> bank_index(plan.layers(), -1);
  std::vector<int> banks;
  for (int b = 0; b < engine.kv().num_banks(); ++b) {
    if (engine.kv().bank(b).evicts()) banks.push_back(b);
  }
  auto slot_of = [&](int layer) {
    const int b = engine.kv().bank_of_layer(layer);
    for (std::size_t i = 0; i < banks.size(); ++i) {
      if (banks[i] == b) return static_cast<int>(i);
    }
    return -1;
  };
  const int N = static_cast<int>(toks.size());
  long total = 0;
  for (int b : r.budget) total += b;
  const long uniform = static_cast<long>(banks.size()) * static_cast<long>(o.f0 * N + 1e-9);
  if (o.json) {
    nlohmann::json j;
    j["map"] = plan.to_string();
    j["prompt_tokens"] = N;
    j["importance"] = r.layer_importance;
    std::vector<int> cluster(plan.layers(), 0), budget(plan.layers(), -1), bank(plan.layers());
    for (int l = 0; l < plan.layers(); ++l) {
      bank[l] = plan.kv_of(l);
      const int s = slot_of(l);
      if (s >= 0) {
        cluster[l] = r.cluster[s];
        budget[l] = r.budget[s];
      }
    }
    j["cluster"] = cluster;
    j["budget_tokens"] = budget;
    j["bank"] = bank;
    j["bank_importance"] = r.bank_importance;
    j["a"] = r.a;
    j["total_budget_tokens"] = total;
    j["uniform_total_tokens"] = uniform;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("plan %s, %d prompt tokens, f0 = %.3f, f3 = %.3f -> a = %.4f (clusters 1, 2)\n",
              plan.to_string().c_str(), N, o.f0, o.p >= 0 ? o.p * o.f0 : o.f3, r.a);
  std::printf(
      "importance s_l = mean cos(x, x + attn(x)): higher means the layer changed the "
      "stream less (less important)\n\n");
  std::printf(" layer  importance  bank  bank importance  cluster  budget (tokens)\n");
  for (int l = 0; l < plan.layers(); ++l) {
    const int s = slot_of(l);
    if (s < 0) {
      std::printf(" %5d  %10.6f  %4d  (sliding window: keeps its window)\n", l,
                  r.layer_importance[l], plan.kv_of(l));
      continue;
    }
    std::printf(" %5d  %10.6f  %4d  %15.6f  %7d  %6d\n", l, r.layer_importance[l], plan.kv_of(l),
                r.bank_importance[s], r.cluster[s], r.budget[s]);
  }
  std::printf("\ntotal budget %ld tokens over %zu banks (uniform: %ld); KV held %s\n", total,
              banks.size(), uniform,
              human_bytes(static_cast<double>(engine.kv().bytes_held())).c_str());
}

}  // namespace

void add_squeeze_command(CLI::App& app) {
  auto o = std::make_shared<SqueezeOptions>();
  auto* cmd =
      app.add_subcommand("squeeze", "SqueezeAttention: layer importance, clusters, budgets");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--plan", o->plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--prompt", o->prompt, "Prompt text");
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,2,3");
  cmd->add_option("--text-file", o->text_file, "Prompt from a file");
  cmd->add_option("--f0", o->f0, "Uniform fraction of the prompt per bank")->required();
  cmd->add_option("--f3", o->f3, "Fraction for the least important cluster");
  cmd->add_option("--p", o->p, "Or f3 = p · f0");
  cmd->add_option("--policy", o->policy, "Policy the budgets drive")->capture_default_str();
  cmd->add_flag("--bank-mean", o->bank_mean, "A shared bank's importance: mean of its readers");
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_squeeze(*o); });
}

}  // namespace kvlab::cli
