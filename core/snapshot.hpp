// The snapshot observer (architecture: "Telemetry is subscribed by kind"): keeps the latest state
// per layer and per bank and the last N steps, safe to read from another thread (a UI thread
// reading while the model's worker thread emits). Readers take a copy with snapshot().
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "core/telemetry.hpp"

namespace kvlab {

struct Snapshot {
  std::uint64_t version = 0;                       // grows with every event received
  int step = -1;                                   // the last finished step (-1: none yet)
  std::vector<KvStepEvent> layers;                 // latest kv_step per layer, by layer index
  std::map<int, KvStepEvent> banks;                // latest per bank (KV layer): its writer's event
  std::vector<StepSummaryEvent> recent_steps;      // the last N step summaries, oldest first
  std::vector<PrefillPassEvent> passes;            // every pass of the latest iterative prefill
  std::optional<SqueezeEvent> squeeze;             // of the latest prompt
  std::optional<LayerImportanceEvent> importance;  // of the latest prompt (when subscribed)
  std::map<std::pair<int, int>, H2oScoresEvent> h2o;  // latest per (bank, KV head)
  std::map<int, AttentionEvent> attention;            // latest per layer (when subscribed)
};

class SnapshotObserver final : public Observer {
 public:
  explicit SnapshotObserver(int history = 256) : history_(history < 1 ? 1 : history) {}

  // A consistent copy of the state (taken under the lock).
  Snapshot snapshot() const;
  // Cheap check for "anything new?" without copying.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

  void on_kv_step(const KvStepEvent& e) override;
  void on_step_summary(const StepSummaryEvent& e) override;
  void on_prefill_pass(const PrefillPassEvent& e) override;
  void on_squeeze(const SqueezeEvent& e) override;
  void on_h2o_scores(const H2oScoresEvent& e) override;
  void on_layer_importance(const LayerImportanceEvent& e) override;
  void on_attention(const AttentionEvent& e) override;

 private:
  void bump() { version_.fetch_add(1, std::memory_order_acq_rel); }

  const std::size_t history_;
  mutable std::mutex mu_;
  std::atomic<std::uint64_t> version_{0};
  Snapshot state_;
  std::deque<StepSummaryEvent> steps_;
  bool passes_closed_ = true;
};

}  // namespace kvlab
