// The Recorder: an Observer that keeps every event it is subscribed to, as shared objects that
// Python holds without copies (python/bind_telemetry.cpp binds it).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "python/common.hpp"

namespace kvlab::python {

class Recorder : public Observer {
 public:
  Recorder(std::weak_ptr<SessionBox> box, EventMask k) : kinds(k), box_(std::move(box)) {}
  void on_kv_step(const KvStepEvent& e) override;
  void on_step_summary(const StepSummaryEvent& e) override;
  void on_prefill_pass(const PrefillPassEvent& e) override;
  void on_squeeze(const SqueezeEvent& e) override;
  void on_h2o_scores(const H2oScoresEvent& e) override;
  void on_layer_importance(const LayerImportanceEvent& e) override;
  void on_attention(const AttentionEvent& e) override;
  void on_kept(const KeptEvent& e) override;
  void on_tensor(const TensorEvent& e) override;
  void clear();
  void close();  // unsubscribes (the events stay)
  bool active() const { return !box_.expired(); }
  void detach() { box_.reset(); }  // the session closed
  std::mutex& mu() { return mu_; }

  EventMask kinds;
  std::vector<std::shared_ptr<KvStepEvent>> kv_steps;
  std::vector<std::shared_ptr<StepSummaryEvent>> summaries;
  std::vector<std::shared_ptr<PrefillPassEvent>> passes;
  std::vector<std::shared_ptr<SqueezeEvent>> squeezes;
  std::vector<std::shared_ptr<H2oScoresEvent>> h2o_scores;
  std::vector<std::shared_ptr<LayerImportanceEvent>> importance;
  std::vector<std::shared_ptr<AttentionEvent>> attention;
  std::vector<std::shared_ptr<KeptEvent>> kept;
  std::vector<std::shared_ptr<TensorEvent>> tensors;

 private:
  std::weak_ptr<SessionBox> box_;
  std::mutex mu_;
};

}  // namespace kvlab::python
