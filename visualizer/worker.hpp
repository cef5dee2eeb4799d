// The visualizer's model thread (Tracy's shape): a worker owns the Session and runs every model
// call; the UI thread posts commands through a queue and reads two things, both copies taken
// under short locks: the worker's state (state()) and the telemetry (the SnapshotObserver that
// the worker subscribes to its session, core/snapshot.hpp). The UI never waits for the model.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/config.hpp"
#include "core/plan_diagram.hpp"
#include "core/snapshot.hpp"
#include "session/session.hpp"

namespace kvlab::viz {

// The attention scores before the softmax (q·k/√D, −inf outside the attention set), the latest
// per layer, from the engine's tensors telemetry (EventKind::tensors, `STEP.layerL.attn.scores`,
// (heads, rows, cells), docs/crosscheck.md). The worker subscribes it while attention is
// recorded; the Attention panel steps through scores, mask and softmax with it.
class ScoresObserver final : public Observer {
 public:
  void on_tensor(const TensorEvent& e) override;
  std::map<int, TensorEvent> latest() const;  // by layer, copied under the lock
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::map<int, TensorEvent> by_layer_;
  std::atomic<std::uint64_t> version_{0};
};

struct WorkerCommand {
  enum Kind {
    load,
    configure,
    prefill,
    step,
    run,
    pause,
    reset,
    trace,
    attention,
    score
  } kind = prefill;
  SessionOptions options;  // load (options.run too)
  RunOptions run_options;  // configure: the sequence starts over and the last prompt is re-run
  std::string prompt;      // prefill, trace (text, BOS added)
  int count = 1;           // step: tokens to decode; attention: 1 records probabilities, 0 not
  // score: the perplexity of `tokens` under each plan of `plans` (Session::ppl, one window),
  // published as WorkerState::scores; the session is left configured for the last plan, with
  // an empty sequence (a prefill follows).
  std::vector<int> tokens;
  std::vector<std::string> plans;
};

// One plan's perplexity on a sequence (the Compare window's loss).
struct PlanScore {
  std::string plan;
  double perplexity = 0, mean_nll = 0;
  int tokens = 0;
};

// What the worker holds, copied for the UI.
struct WorkerState {
  bool loaded = false;
  std::string model;           // as asked for
  SessionOptions loaded_with;  // the load's options (another worker loads the same weights)
  std::string format;          // Session::model_format()
  std::string plan_spec, plan_text;
  ModelConfig config;
  PlanDiagram diagram;
  RunOptions run;
  std::string error;  // the latest failed command's message; cleared by the next success
  std::string note;   // what happened last ("prefill: 47 tokens in 12 ms")
  bool busy = false;  // running a command now
  bool running = false;
  int position = 0, context = 0;
  std::vector<std::string> prompt_pieces, generated_pieces;  // token texts
  std::vector<int> sequence;                                 // their ids: prompt, then generated
  std::vector<PlanScore> scores;                             // the latest score command's
  std::int64_t weight_bytes = 0, kv_bytes_held = 0, kv_bytes_allocated = 0;
  double tokens_per_second = 0;  // decode, over the current run
  std::uint64_t finished = 0;    // commands finished (each success or failure)
  std::uint64_t loads = 0;       // models loaded so far (the controls follow a new model's plan)
  bool attention = true;         // attention probabilities recorded (EventKind::attention)
  std::shared_ptr<const SnapshotObserver> telemetry;  // of the current session; null before one
  std::shared_ptr<const ScoresObserver> attn_scores;  // with it, while attention is recorded
};

class Worker {
 public:
  Worker();
  ~Worker();  // stops after the command in hand and joins
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(WorkerCommand c);
  WorkerState state() const;
  // Nothing queued and nothing in hand (a run in progress still counts as idle between steps).
  bool idle() const;
  std::uint64_t posted() const;
  // Decode speed while running: tokens per second, 0 = as fast as the model goes.
  void set_speed(double tokens_per_second);

 private:
  void loop();
  void execute(const WorkerCommand& c);
  void do_load(const SessionOptions& o);
  void do_prefill(const std::string& prompt);
  void decode_one();
  void fresh_telemetry();
  EventMask kinds() const;                // what the panels subscribe to now
  void publish(const std::string& note);  // copies the session's facts into state_ (lock inside)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WorkerCommand> queue_;
  WorkerState state_;
  bool stop_ = false, running_ = false, busy_ = false;
  std::uint64_t posted_ = 0;
  double speed_ = 0;

  // Touched only by the worker thread.
  std::optional<Session> session_;
  std::shared_ptr<SnapshotObserver> telemetry_;
  std::shared_ptr<ScoresObserver> attn_scores_;
  void subscribe_scores(bool on);  // attn_scores_ to the tensors kind (on) or not
  std::string last_prompt_;
  int next_token_ = -1;  // the greedy choice after the last step, fed by the next step
  std::vector<std::string> prompt_pieces_, generated_pieces_;
  std::vector<int> sequence_;
  std::vector<PlanScore> scores_;
  double decode_seconds_ = 0;
  int decoded_ = 0;
  bool attention_ = true;  // record attention probabilities (the Attention panel)

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace kvlab::viz
