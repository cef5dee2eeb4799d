// Telemetry: typed events that engines emit and observers receive (architecture principle 4).
// Engines never know who listens; the CLI writes events as JSON lines (docs/telemetry.md), the
// visualizer and notebooks subscribe the same way.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
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
  std::int64_t h2o_score_bytes = 0;  // H2O's scores and counts (§7: apart from the K/V)
};

// Iterative prefill of a cyclic block (techniques.md §3): after each pass, one event per upward
// target of the block, comparing the target's K/V with the previous pass (the first pass compares
// with the zeros the targets start from).
struct PrefillPassEvent {
  int block = 0;  // index into the plan's cyclic blocks
  int first_layer = 0, last_layer = 0;
  int pass = 0;          // 1, 2, ...
  int target_layer = 0;  // the upward target (a KV layer inside the block)
  int tokens = 0;        // prompt tokens T
  int tokens_exact = 0;  // min(pass, T): tokens whose K/V are provably exact
  double max_abs_dk = 0, mean_abs_dk = 0, max_abs_dv = 0, mean_abs_dv = 0;
  double rel_dk = 0, rel_dv = 0;            // max |Δ| / max |value| of this pass's K (V)
  double rel_mean_dk = 0, rel_mean_dv = 0;  // mean |Δ| / max |value| (§3: "mean ... relative")
  double err_k = -1, err_v = -1;  // max |K - K_exact| / max |K_exact| when an exact run is known
  bool converged = false;         // convergence mode: this pass met the threshold
};

// SqueezeAttention (techniques.md §6), once per prompt when budgets come from importance.
struct SqueezeEvent {
  int prompt_tokens = 0;
  std::vector<double> layer_importance;  // s_l per layer
  std::vector<int> bank_layer;           // the KV layer of each evicting bank
  std::vector<double> bank_importance;   // min (or mean) over the bank's readers
  std::vector<int> cluster;              // per bank: 1 (most important) .. 3
  std::vector<int> budget;               // per bank, tokens
  double a = 0;                          // the fraction of clusters 1 and 2
  std::vector<std::string> notes;        // budgets raised to what the policy needs
};

// H2O scores, on subscription (EventKind::h2o_scores): after each step, one event per evicting H2O
// bank and KV head: the positions the head holds and their accumulated scores.
struct H2oScoresEvent {
  int step = 0;
  int bank = 0;  // the KV layer
  int kv_head = 0;
  std::vector<int> positions;
  std::vector<double> scores;
  std::vector<double> counts;  // query rows that could see each cell (norm=count divides by it)
};

// Which positions a bank kept, on subscription (EventKind::kept): after the prefill and after each
// decode step, one event per bank and KV head, for every policy (full keeps every position;
// window, streaming, h2o and SqueezeAttention budgets show what they chose).
struct KeptEvent {
  int step = 0;
  int bank = 0;  // the KV layer
  int kv_head = 0;
  std::string policy;  // the bank's policy ("h2o", "window:16", "sliding" for a sliding layer)
  int budget = 0;      // tokens; 0: none (full)
  std::vector<int> positions;  // held, in cache order
};

// Per prompt, once the prefill ends: s_l (techniques.md §6 step 1) for every layer. Measured only
// when someone subscribes to it (or SqueezeAttention needs it).
struct LayerImportanceEvent {
  int prompt_tokens = 0;
  std::vector<double> cos_sim;  // s_l = mean_t cos(x_t, x_t + attn_l): higher = less important
};

// Attention probabilities of one layer in one step, on subscription only (they cost a (H, T, N)
// array per layer). probs[(h * T + i) * N + j]: query row i (position qpos[i]) on cell j of the
// bank; key_pos (H_kv, N) the position of each cell per KV head.
struct AttentionEvent {
  int step = 0;
  std::string phase;  // "prefill" | "decode"
  int layer = 0;
  int bank = 0;  // the KV layer read
  int heads = 0, kv_heads = 0, rows = 0, cells = 0;
  int pass = 0;                // LCKV iterative prefill: the pass (1, 2, ...); 0 otherwise
  std::vector<int> query_pos;  // (rows)
  std::vector<int> key_pos;    // (kv_heads, cells)
  std::vector<float> probs;    // (heads, rows, cells)
};

// One named intermediate tensor of a forward step, on subscription only (EventKind::tensors; what
// `kvlab dump` writes). Names and layouts follow docs/crosscheck.md (`prefill.pass2.layer5.attn.
// probs`, `decode3.bank4.kept_positions`). Floating tensors arrive as float64 (exact copies of
// float32 values) in `values`; integer tensors (token ids, positions) in `ints`, with `integer`.
struct TensorEvent {
  std::string name;
  std::vector<std::int64_t> shape;
  bool integer = false;
  std::vector<double> values;      // when !integer
  std::vector<std::int64_t> ints;  // when integer
};

// The kinds an observer may subscribe to. Cheap kinds are what an observer gets by default;
// the costly ones (attention probabilities, H2O scores per cell, layer importance) are computed
// or copied only when some observer asks for them.
enum class EventKind : unsigned {
  kv_step = 1u << 0,
  step_summary = 1u << 1,
  prefill_pass = 1u << 2,
  squeeze = 1u << 3,
  h2o_scores = 1u << 4,
  layer_importance = 1u << 5,
  attention = 1u << 6,
  tensors = 1u << 7,  // every intermediate tensor (kvlab dump); not part of kAllEvents
  kept = 1u << 8,
};
using EventMask = unsigned;
constexpr EventMask mask(EventKind k) {
  return static_cast<EventMask>(k);
}
constexpr EventMask operator|(EventKind a, EventKind b) {
  return mask(a) | mask(b);
}
constexpr EventMask operator|(EventMask a, EventKind b) {
  return a | mask(b);
}
constexpr EventMask kDefaultEvents =
    EventKind::kv_step | EventKind::step_summary | EventKind::prefill_pass | EventKind::squeeze;
constexpr EventMask kAllEvents = kDefaultEvents | EventKind::h2o_scores |
                                 EventKind::layer_importance | EventKind::attention |
                                 EventKind::kept;

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_kv_step(const KvStepEvent&) {}
  virtual void on_step_summary(const StepSummaryEvent&) {}
  virtual void on_prefill_pass(const PrefillPassEvent&) {}
  virtual void on_squeeze(const SqueezeEvent&) {}
  virtual void on_h2o_scores(const H2oScoresEvent&) {}
  virtual void on_layer_importance(const LayerImportanceEvent&) {}
  virtual void on_attention(const AttentionEvent&) {}
  virtual void on_tensor(const TensorEvent&) {}
  virtual void on_kept(const KeptEvent&) {}
};

// Fans events out to the observers subscribed to their kind; engines hold one of these and ask
// wants(kind) before computing anything only an observer would use.
class ObserverList {
 public:
  void subscribe(Observer* o, EventMask kinds) {
    for (auto& s : subs_) {
      if (s.observer == o) {
        s.kinds |= kinds;
        return;
      }
    }
    subs_.push_back({o, kinds});
  }
  void add(Observer* o) { subscribe(o, kDefaultEvents); }
  void remove(Observer* o) {
    std::erase_if(subs_, [o](const Sub& s) { return s.observer == o; });
  }
  bool empty() const { return subs_.empty(); }
  bool wants(EventKind k) const {
    for (const auto& s : subs_) {
      if (s.kinds & mask(k)) return true;
    }
    return false;
  }
  template <typename Event, typename Fn>
  void emit(EventKind k, const Event& e, Fn fn) const {
    for (const auto& s : subs_) {
      if (s.kinds & mask(k)) (s.observer->*fn)(e);
    }
  }

 private:
  struct Sub {
    Observer* observer;
    EventMask kinds;
  };
  std::vector<Sub> subs_;
};

// The JSON object of an event (the --telemetry line; also used by --json outputs).
nlohmann::json prefill_pass_json(const PrefillPassEvent& e);

// Writes every event as one JSON object per line (schema: docs/telemetry.md).
class JsonlObserver : public Observer {
 public:
  explicit JsonlObserver(const std::string& path);  // throws kvlab::Error when unwritable
  ~JsonlObserver() override;
  void on_kv_step(const KvStepEvent& e) override;
  void on_step_summary(const StepSummaryEvent& e) override;
  void on_prefill_pass(const PrefillPassEvent& e) override;
  void on_squeeze(const SqueezeEvent& e) override;
  void on_h2o_scores(const H2oScoresEvent& e) override;
  void on_layer_importance(const LayerImportanceEvent& e) override;
  void on_attention(const AttentionEvent& e) override;
  void on_kept(const KeptEvent& e) override;
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
  void on_prefill_pass(const PrefillPassEvent& e) override { passes.push_back(e); }
  void on_squeeze(const SqueezeEvent& e) override { squeezes.push_back(e); }
  void on_h2o_scores(const H2oScoresEvent& e) override { h2o_scores.push_back(e); }
  void on_layer_importance(const LayerImportanceEvent& e) override { importance.push_back(e); }
  void on_attention(const AttentionEvent& e) override { attention.push_back(e); }
  void on_kept(const KeptEvent& e) override { kept.push_back(e); }
  std::vector<KeptEvent> kept;
  std::vector<H2oScoresEvent> h2o_scores;
  std::vector<LayerImportanceEvent> importance;
  std::vector<AttentionEvent> attention;
  std::vector<SqueezeEvent> squeezes;
  std::vector<KvStepEvent> kv_steps;
  std::vector<StepSummaryEvent> summaries;
  std::vector<PrefillPassEvent> passes;
};

}  // namespace kvlab
