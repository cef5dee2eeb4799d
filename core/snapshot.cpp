#include "core/snapshot.hpp"

namespace kvlab {

Snapshot SnapshotObserver::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot s = state_;
  s.recent_steps.assign(steps_.begin(), steps_.end());
  s.version = version();
  return s;
}

void SnapshotObserver::on_kv_step(const KvStepEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (e.layer >= static_cast<int>(state_.layers.size())) state_.layers.resize(e.layer + 1);
  state_.layers[e.layer] = e;
  if (e.writes) state_.banks[e.bank] = e;
  bump();
}

void SnapshotObserver::on_step_summary(const StepSummaryEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (e.step == 0) steps_.clear();  // a new sequence
  steps_.push_back(e);
  while (steps_.size() > history_) steps_.pop_front();
  state_.step = e.step;
  passes_closed_ = true;  // passes that come later belong to the next prefill
  bump();
}

void SnapshotObserver::on_prefill_pass(const PrefillPassEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (passes_closed_) state_.passes.clear();  // the first pass of a new prefill
  passes_closed_ = false;
  state_.passes.push_back(e);
  bump();
}

void SnapshotObserver::on_squeeze(const SqueezeEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.squeeze = e;
  bump();
}

void SnapshotObserver::on_h2o_scores(const H2oScoresEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.h2o[{e.bank, e.kv_head}] = e;
  bump();
}

void SnapshotObserver::on_layer_importance(const LayerImportanceEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.importance = e;
  bump();
}

void SnapshotObserver::on_attention(const AttentionEvent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  state_.attention[e.layer] = e;
  bump();
}

}  // namespace kvlab
