#include "core/telemetry.hpp"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kvlab {

JsonlObserver::JsonlObserver(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  out_.open(tmp_, std::ios::out | std::ios::trunc);
  if (!out_) fail("--telemetry", path, "cannot open the file for writing");
}

JsonlObserver::~JsonlObserver() {
  if (!closed_) {
    out_.close();
    std::remove(tmp_.c_str());  // never leave a partial file behind
  }
}

void JsonlObserver::on_kv_step(const KvStepEvent& e) {
  nlohmann::json j = {{"event", "kv_step"},
                      {"step", e.step},
                      {"phase", e.phase},
                      {"layer", e.layer},
                      {"bank", e.bank},
                      {"writes", e.writes},
                      {"tokens_held", e.tokens_held},
                      {"bytes_held", e.bytes_held},
                      {"budget", e.budget},
                      {"evicted", e.evicted}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_step_summary(const StepSummaryEvent& e) {
  nlohmann::json j = {{"event", "step"},
                      {"step", e.step},
                      {"phase", e.phase},
                      {"tokens_in_step", e.tokens_in_step},
                      {"position", e.position},
                      {"kv_bytes_held", e.kv_bytes_held},
                      {"kv_bytes_allocated", e.kv_bytes_allocated},
                      {"h2o_score_bytes", e.h2o_score_bytes}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

nlohmann::json prefill_pass_json(const PrefillPassEvent& e) {
  nlohmann::json j = {{"event", "prefill_pass"},
                      {"block", e.block},
                      {"first_layer", e.first_layer},
                      {"last_layer", e.last_layer},
                      {"pass", e.pass},
                      {"target_layer", e.target_layer},
                      {"tokens", e.tokens},
                      {"tokens_exact", e.tokens_exact},
                      {"max_abs_dk", e.max_abs_dk},
                      {"mean_abs_dk", e.mean_abs_dk},
                      {"max_abs_dv", e.max_abs_dv},
                      {"mean_abs_dv", e.mean_abs_dv},
                      {"rel_dk", e.rel_dk},
                      {"rel_dv", e.rel_dv},
                      {"rel_mean_dk", e.rel_mean_dk},
                      {"rel_mean_dv", e.rel_mean_dv},
                      {"converged", e.converged}};
  if (e.err_k >= 0) {
    j["err_k"] = e.err_k;
    j["err_v"] = e.err_v;
  }
  return j;
}

void JsonlObserver::on_prefill_pass(const PrefillPassEvent& e) {
  const nlohmann::json j = prefill_pass_json(e);
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_squeeze(const SqueezeEvent& e) {
  // The event's *_importance fields hold s_l (cos_sim, higher = less important): written as
  // *_cos_sim, with *_importance = 1 - cos_sim beside them.
  auto one_minus = [](const std::vector<double>& v) {
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) r[i] = 1.0 - v[i];
    return r;
  };
  const nlohmann::json j = {{"event", "squeeze"},
                            {"prompt_tokens", e.prompt_tokens},
                            {"layer_cos_sim", e.layer_importance},
                            {"layer_importance", one_minus(e.layer_importance)},
                            {"bank_layer", e.bank_layer},
                            {"bank_cos_sim", e.bank_importance},
                            {"bank_importance", one_minus(e.bank_importance)},
                            {"cluster", e.cluster},
                            {"budget", e.budget},
                            {"a", e.a},
                            {"notes", e.notes}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_h2o_scores(const H2oScoresEvent& e) {
  const nlohmann::json j = {
      {"event", "h2o_scores"},    {"step", e.step},     {"bank", e.bank},    {"kv_head", e.kv_head},
      {"positions", e.positions}, {"scores", e.scores}, {"counts", e.counts}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_kept(const KeptEvent& e) {
  const nlohmann::json j = {{"event", "kept"},         {"step", e.step},     {"bank", e.bank},
                            {"kv_head", e.kv_head},    {"policy", e.policy}, {"budget", e.budget},
                            {"positions", e.positions}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_layer_importance(const LayerImportanceEvent& e) {
  std::vector<double> importance(e.cos_sim.size());
  for (std::size_t l = 0; l < e.cos_sim.size(); ++l) importance[l] = 1.0 - e.cos_sim[l];
  const nlohmann::json j = {{"event", "layer_importance"},
                            {"prompt_tokens", e.prompt_tokens},
                            {"cos_sim", e.cos_sim},
                            {"importance", importance}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::on_attention(const AttentionEvent& e) {
  const nlohmann::json j = {
      {"event", "attention"},   {"step", e.step},           {"phase", e.phase},
      {"layer", e.layer},       {"bank", e.bank},           {"heads", e.heads},
      {"kv_heads", e.kv_heads}, {"rows", e.rows},           {"cells", e.cells},
      {"pass", e.pass},         {"query_pos", e.query_pos}, {"key_pos", e.key_pos},
      {"probs", e.probs}};
  std::lock_guard<std::mutex> lock(mu_);
  out_ << j.dump() << '\n';
}

void JsonlObserver::close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  out_.flush();
  const bool ok = static_cast<bool>(out_);
  out_.close();
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail("--telemetry", path_, "could not be written");
  }
  closed_ = true;
}

}  // namespace kvlab
