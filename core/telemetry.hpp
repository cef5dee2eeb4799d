// Telemetry: typed events that engines emit and observers receive (architecture principle 4).
// Engines never know who listens; the CLI writes events as JSON lines (docs/telemetry.md), the
// visualizer and notebooks subscribe the same way.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kvlab {

// After each forward step (the prefill is step 0, then one step per decoded token), one event per
// layer: the bank it reads and what that bank holds now.
struct KvStepEvent {
  int step = 0;                  // 0 = prefill, then 1, 2, ... per decoded token
  std::string phase;             // "prefill" | "decode"
  int layer = 0;                 // the reading layer
  int bank = 0;                  // the KV layer whose bank it reads (kv(layer))
  bool writes = false;           // true when the layer is the bank's KV layer
  std::int64_t tokens_held = 0;  // cells in the bank after the step
  std::int64_t bytes_held = 0;   // K/V bytes of those cells
  std::int64_t budget = 0;       // the bank's capacity in tokens
  std::int64_t evicted = 0;      // cells evicted from the bank during this step
};

// Once per step: the whole cache.
struct StepSummaryEvent {
  int step = 0;
  std::string phase;
  int tokens_in_step = 0;          // tokens processed by this step
  int position = 0;                // position of the last token processed
  std::int64_t kv_bytes_held = 0;  // sum over banks
  std::int64_t kv_bytes_allocated = 0;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_kv_step(const KvStepEvent&) {}
  virtual void on_step_summary(const StepSummaryEvent&) {}
};

// Fans events out to any number of observers; engines hold one of these.
class ObserverList {
 public:
  void add(Observer* o) { observers_.push_back(o); }
  bool empty() const { return observers_.empty(); }
  template <typename Event, typename Fn>
  void emit(const Event& e, Fn fn) const {
    for (Observer* o : observers_) (o->*fn)(e);
  }

 private:
  std::vector<Observer*> observers_;
};

// Writes every event as one JSON object per line (schema: docs/telemetry.md).
class JsonlObserver : public Observer {
 public:
  explicit JsonlObserver(const std::string& path);  // throws kvlab::Error when unwritable
  ~JsonlObserver() override;
  void on_kv_step(const KvStepEvent& e) override;
  void on_step_summary(const StepSummaryEvent& e) override;
  // Flushes and moves the file into place (written to a temporary file until then).
  void close();

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  std::mutex mu_;
  bool closed_ = false;
};

// Keeps every event in memory (tests, notebooks).
class RecordingObserver : public Observer {
 public:
  void on_kv_step(const KvStepEvent& e) override { kv_steps.push_back(e); }
  void on_step_summary(const StepSummaryEvent& e) override { summaries.push_back(e); }
  std::vector<KvStepEvent> kv_steps;
  std::vector<StepSummaryEvent> summaries;
};

}  // namespace kvlab
