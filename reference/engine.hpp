// The engine: the driver that walks a KV plan (techniques.md §1, §2) and calls a Backend for the
// operations of each layer, with prefill (all prompt tokens at once) and decode (one token at a
// time) over one KV store. The techniques are hooks in their own files: LCKV's iterative prefill
// (lckv.cpp), eviction policies (policies.hpp), H2O scores (h2o.hpp), Squeeze importance
// (importance.hpp, squeeze.hpp) and position modes (positions.hpp). Telemetry goes to subscribed
// observers; what nobody subscribed to is not computed. Subscribing to EventKind::tensors gets
// every intermediate tensor (tensor_tap.hpp; the names of docs/crosscheck.md). Activations, K/V
// and workspaces live in the backend's memory (backend.hpp): the engine passes them to backend
// operations and copies to the host only what leaves it (logits, telemetry, held_kv).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/accounting.hpp"
#include "core/plan.hpp"
#include "core/telemetry.hpp"
#include "reference/backend.hpp"
#include "reference/buffer.hpp"
#include "reference/h2o.hpp"
#include "reference/importance.hpp"
#include "reference/kv_store.hpp"
#include "reference/squeeze.hpp"
#include "reference/weights.hpp"

namespace kvlab::ref {

// How a prompt is encoded when the plan has upward edges (techniques.md §3).
enum class PrefillMode {
  automatic,      // `passes` passes; prompts of at most `passes` tokens token by token (official)
  fixed,          // always `passes` iterative passes
  converge,       // iterate until the largest relative K/V change < eps, at most max_passes
  token_by_token  // one token at a time: exact
};

struct PrefillSchedule {
  PrefillMode mode = PrefillMode::automatic;
  int passes = 9;       // m + b (7 + 2 in the official code)
  double eps = 1e-4;    // converge: threshold on max |Δ| / max |value| over the block's targets
  int max_passes = 64;  // converge: cap
  // fixed and converge: stop a block after T passes (a prompt of T tokens), even below the
  // bound: pass r makes tokens 0..r-1 exact (§3), so pass T reached the block's fixed point and
  // any further pass would repeat it. trace-prefill sets it; the default keeps the official count.
  bool stop_when_exact = false;

  void validate() const;  // throws kvlab::Error naming --passes, --converge or --max-passes
};

struct EngineOptions {
  int threads = 1;             // the CPU backend splits heads and projection rows across these
  int context = 0;             // tokens a sequence may reach; 0 = max_position_embeddings
  bool force_nodiag = false;   // mask the diagonal in every layer (§2)
  std::optional<KvPlan> plan;  // run under another plan; its KV layers need W_K, W_V
  PrefillSchedule schedule;    // plans with upward edges
  PolicySpec policy;           // what each (non-sliding) bank keeps between steps (§5)
  BudgetSpec budget;           // uniform budget per bank; unset = the context
  SqueezeSpec squeeze;         // SqueezeAttention budgets per bank (§6); needs an evicting policy
  // The dtype K and V are stored at (kv_dtype.hpp); unset: the engine's precision. Narrower (f16,
  // bf16; f32 in a float64 engine): every K and V value is rounded to it where write_kv writes it,
  // and the byte figures count its bytes.
  std::optional<Dtype> kv_dtype;
};

template <typename S>
class Engine {
 public:
  // Validates the options against the weights (plan layers, W_K/W_V present, threads, context).
  // The engine shares ownership of the weights: it never outlives what it reads.
  // `backend`: null = the CPU reference backend with options.threads threads.
  explicit Engine(std::shared_ptr<const ModelWeights<S>> weights, EngineOptions options = {},
                  std::unique_ptr<Backend<S>> backend = nullptr);
  // Convenience for tests and small tools: the engine keeps its own copy of `weights`.
  explicit Engine(const ModelWeights<S>& weights, EngineOptions options = {})
      : Engine(std::make_shared<const ModelWeights<S>>(weights), std::move(options)) {}

  // Telemetry: `o` receives the event kinds in `kinds` (core/telemetry.hpp). add_observer
  // subscribes to the cheap default kinds. The caller keeps `o` alive while it is subscribed.
  void subscribe(Observer* o, EventMask kinds) { observers_.subscribe(o, kinds); }
  void add_observer(Observer* o) { observers_.subscribe(o, kDefaultEvents); }
  void unsubscribe(Observer* o) { observers_.remove(o); }
  Backend<S>& backend() { return *backend_; }
  const Backend<S>& backend() const { return *backend_; }
  const KvPlan& plan() const { return plan_; }
  const ModelConfig& config() const { return w_->config; }
  const ModelWeights<S>& weights() const { return *w_; }
  const std::shared_ptr<const ModelWeights<S>>& shared_weights() const { return w_; }
  int num_banks() const { return kv_.num_banks(); }
  int context() const { return context_; }
  int position() const { return pos_; }  // tokens in the current sequence
  // The dtype K/V are stored at: options.kv_dtype, else the precision (f32 or f64).
  Dtype kv_dtype() const { return kv_dtype_; }
  const KvStore<S>& kv() const { return kv_; }
  KvStore<S>& kv() { return kv_; }

  // Starts a new sequence with `tokens` and returns the logits (T, V) when all_logits, else the
  // last token's (1, V). Plans without upward edges run all rows in one pass; plans with upward
  // edges are encoded token by token, which is exact (§3).
  std::vector<S> prefill(const std::vector<int>& tokens, bool all_logits = false);
  // Appends one token to the sequence and returns its logits (V).
  std::vector<S> decode(int token);
  void reset();

  // Exact K/V of bank b for the next prefill's prompt, (T, H_kv*D) each, from a token-by-token
  // run: iterative passes then report their error against it (PrefillPassEvent::err_k/err_v).
  void set_exact_kv(int bank, const std::vector<S>& k, const std::vector<S>& v);

  // Throws the kvlab::Error a prefill of `prompt_tokens` tokens would throw when the uniform
  // budget resolves (a percentage that keeps no token of this prompt, a budget below the policy's
  // least), without running anything: a sweep or a task checks every prompt before the first.
  void check_prompt_budget(int prompt_tokens) const;

  // SqueezeAttention's analysis of the last prompt (empty unless options.squeeze.enabled).
  const SqueezeResult& squeeze() const { return squeeze_result_; }
  // Per-layer importance s_l of the last prompt (§6 step 1); computed when squeeze is enabled
  // or an observer subscribes to EventKind::layer_importance.
  std::vector<double> layer_importance() const;

  // Passes the last prefill ran per cyclic block (empty for plans without upward edges or a
  // token-by-token prefill).
  const std::vector<int>& passes_run() const { return passes_run_; }

  // Benchmarks: starts a sequence of `depth` tokens whose K/V are random N(0, 1) cells (seeded),
  // as if `depth` tokens had been encoded; nothing is computed. Each bank holds what it may keep.
  void fill_random_cache(int depth, std::uint64_t seed = 1);

  // The K and V of the cells bank b holds now, (held, H_kv*D) each, in slot order (KV head 0's
  // order; with per-head eviction the heads may hold different positions: see kv().positions).
  struct HeldKv {
    std::vector<S> k, v;
    int cells = 0;
  };
  HeldKv held_kv(int bank) const;

 private:
  // Runs T tokens at positions pos_ .. pos_+T-1. `batched`: the layer K/V of these rows are held
  // apart and committed after the last layer (prefill); otherwise they enter the banks as each KV
  // layer computes them (decode). Writes logits (T or 1, V) to `logits`, backend memory.
  void forward(const int* tokens, int T, bool batched, bool all_logits, S* logits);

  // Per-bank K/V of the rows in flight (batched mode): (T, H_kv*D) each, empty when not computed.
  // Backend memory, as every floating array below.
  struct BankRows {
    std::vector<BackendArray<S>> k, v;   // per bank: post-RoPE keys, values (T, H_kv*D)
    std::vector<BackendArray<S>> k_raw;  // per bank, cache position mode: pre-RoPE keys
    PromptScores h2o;                    // per reading layer, H2O banks: the prompt's scores
  };
  // Scratch buffers of one forward call, sized for T rows.
  struct Workspace {
    BackendArray<S> h, q, att, o, gate, up;
    BackendArray<S> probs;    // (H, T, N) when H2O or an observer needs them
    BackendArray<S> scores;   // (H, T, N) pre-softmax, only while tapping
    BackendArray<S> rotated;  // cache position mode: slot-rotated keys
  };
  Workspace make_workspace(int T);
  BankRows make_rows() const;
  // One layer on the rows x (T, C), in place: attention then MLP. Batched: a KV layer writes
  // rows; readers read rows, or `prev` for upward readers (the targets' K/V of the previous pass).
  void layer_forward(int l, S* x, const int* pos, int T, bool batched, BankRows& rows,
                     const BankRows* prev, Workspace& ws);
  // x += W_O · Attn(RMSNorm(x)).
  void attention_block(int l, S* x, const int* pos, int T, bool batched, BankRows& rows,
                       const BankRows* prev, Workspace& ws);
  // A KV layer's K, V (T, H_kv*D) of the rows, before RoPE: rotated, then kept in `rows`
  // (batched) or appended to its bank.
  void write_kv(int l, const int* pos, int T, bool batched, BackendArray<S> k, BackendArray<S> v,
                BankRows& rows);
  // Attention of the rows over the prompt's own rows (batched) or over the bank (decode).
  void attend_rows(int l, const int* pos, int T, BankRows& rows, const BankRows& src,
                   Workspace& ws);
  void attend_bank(int l, const int* pos, int T, Workspace& ws);
  // x += W_2 · (silu(W_1 h) ⊙ W_3 h), h = RMSNorm(x).
  void mlp_block(int l, S* x, int T, Workspace& ws);
  // The attention set of layer l (§2): causal or strict, the sliding window.
  AttentionSet attention_set(int l) const;
  bool needs_probs(int b) const;
  // The query side of an attention call over N cells: output, rotated queries, shapes, the set,
  // and the probabilities buffer when `probs`. The caller fills in the keys.
  AttentionArgs<S> query_args(int l, const int* pos, int T, int N, bool probs, Workspace& ws);
  void emit_attention(int l, const int* pos, int T, const int* kpos, int N, int stride,
                      const S* probs) const;
  // Batched prefill: the rows enter the banks; H2O banks get the prompt's scores.
  void commit_rows(BankRows& rows, const int* pos, int T);
  // LCKV iterative encoding of cyclic block `index` over all T rows (reference/lckv.cpp).
  void run_cyclic_block(int index, S* x, const int* pos, int T, BankRows& rows, Workspace& ws);
  bool token_by_token(int T) const;
  bool measuring_importance() const;
  // After a prefill: budgets (uniform or SqueezeAttention) and the policies' first eviction.
  void apply_prompt_budgets(int T);
  void apply_squeeze_budgets(const std::vector<int>& evicting, int T);
  void emit_step(const char* phase, int tokens_in_step);
  void check_tokens(const int* tokens, int T) const;
  // EventKind::tensors (tensor_tap.hpp): the name of a tensor of layer l in the step running,
  // e.g. "prefill.pass2.layer5." + what; the emitters; kept/evicted positions after a step.
  std::string tap_name(int l, const char* what) const;
  // data: backend memory, copied to the host for the observers.
  void tap(const std::string& name, std::vector<std::int64_t> shape, const S* data) const;
  void tap_positions(const std::string& name, int rows, int cols, const int* data,
                     int row_stride) const;
  void tap_cache(int tokens_in_step);
  void validate_policy_budget();

  // The weights in the backend's memory (Backend::resident), resolved once.
  struct LayerResident {
    const S *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
    const S *ffn_norm = nullptr, *w1 = nullptr, *w3 = nullptr, *w2 = nullptr;
  };
  struct Resident {
    const S *embed = nullptr, *final_norm = nullptr, *cls = nullptr;
    std::vector<LayerResident> layers;
  };
  static Resident make_resident(Backend<S>& backend, const ModelWeights<S>& w);

  std::shared_ptr<const ModelWeights<S>> w_;
  std::unique_ptr<Backend<S>> backend_;  // before everything that holds its memory
  Resident rw_;
  KvPlan plan_;
  int context_;
  bool force_nodiag_;
  Dtype kv_dtype_;
  bool round_kv_;  // kv_dtype_ is narrower than S: write_kv rounds
  KvStore<S> kv_;
  ObserverList observers_;
  PrefillSchedule schedule_;
  std::vector<CyclicBlock> blocks_;
  std::vector<BackendArray<S>> exact_k_, exact_v_;  // per bank; empty when unknown
  std::vector<int> passes_run_;
  PolicySpec policy_;
  BudgetSpec budget_;
  SqueezeSpec squeeze_spec_;
  SqueezeResult squeeze_result_;
  ImportanceMeter<S> importance_;
  bool in_prefill_ = false;
  int exact_rows_ = 0;  // iterative prefill: rows of the stream provably exact so far
  int pass_ = 0;        // the LCKV pass running (attention telemetry); 0 outside iterative passes
  int pos_ = 0;
  int step_ = 0;
  bool tapping_ = false;                    // someone subscribes to EventKind::tensors (this step)
  std::string tap_step_;                    // "prefill", "prefill.token3", "decode2": names' start
  std::vector<std::vector<int>> tap_kept_;  // per bank: (H_kv, held) positions after last step
};

extern template class Engine<float>;
extern template class Engine<double>;

}  // namespace kvlab::ref
