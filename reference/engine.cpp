#include "reference/engine.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "reference/cpu_backend.hpp"
#include "reference/kv_dtype.hpp"
#include "reference/positions.hpp"
#include "reference/tensor_tap.hpp"

namespace kvlab::ref {
namespace {

int resolve_context(const ModelConfig& c, int context) {
  if (context < 0 || context > (1 << 24)) {
    fail("--context", std::to_string(context), "must be in [1, 16777216] (0 = the model's)");
  }
  return context == 0 ? c.max_position_embeddings : context;
}

KvPlan resolve_plan(const KvPlan& own, const std::optional<KvPlan>& requested) {
  if (!requested) return own;
  const KvPlan& p = *requested;
  if (p.layers() != own.layers()) {
    fail("--plan", p.to_string(),
         "has " + std::to_string(p.layers()) + " layers; the model has " +
             std::to_string(own.layers()));
  }
  for (int t : p.kv_layers()) {
    if (!own.is_kv_layer(t)) {
      fail("--plan", p.to_string(),
           "layer " + std::to_string(t) +
               " would be a KV layer but the checkpoint has no W_K/W_V for it (its plan is " +
               own.to_string() + ")");
    }
  }
  return p;
}

template <typename S>
std::shared_ptr<const ModelWeights<S>> require_weights(std::shared_ptr<const ModelWeights<S>> w) {
  if (!w) fail("model", "(none)", "the engine needs weights");
  return w;
}

}  // namespace

template <typename S>
Engine<S>::Engine(std::shared_ptr<const ModelWeights<S>> weights, EngineOptions o,
                  std::unique_ptr<Backend<S>> backend)
    : w_(require_weights(std::move(weights))),
      backend_(backend ? std::move(backend) : std::make_unique<CpuBackend<S>>(o.threads)),
      rw_(make_resident(*backend_, *w_)),
      plan_(resolve_plan(w_->plan, o.plan)),
      context_(resolve_context(w_->config, o.context)),
      force_nodiag_(o.force_nodiag),
      kv_dtype_(check_kv_dtype(o.kv_dtype.value_or(engine_dtype(sizeof(S))), sizeof(S))),
      round_kv_(dtype_bytes(kv_dtype_) < static_cast<int>(sizeof(S))),
      kv_(plan_, w_->config, context_, o.policy, backend_.get(), dtype_bytes(kv_dtype_)),
      schedule_(o.schedule),
      blocks_(plan_.cyclic_blocks()),
      exact_k_(kv_.num_banks()),
      exact_v_(kv_.num_banks()),
      policy_(o.policy),
      budget_(o.budget),
      squeeze_spec_(o.squeeze) {
  schedule_.validate();
  importance_.reset(plan_.layers());
  if (squeeze_spec_.enabled) {
    squeeze_spec_.validate();
    if (policy_.kind == SequencePolicy::full) {
      fail("--policy", "full",
           "SqueezeAttention budgets need an evicting policy (window, "
           "streaming, h2o)");
    }
  }
  validate_policy_budget();
}

template <typename S>
void Engine<S>::validate_policy_budget() {
  // No silent fallbacks (issue 11): every combination either means one thing or is refused.
  if (squeeze_spec_.enabled && policy_.kind == SequencePolicy::window && policy_.window > 0) {
    fail("--policy", policy_.to_string(),
         "SqueezeAttention sets each bank's budget; use window without :W together with it");
  }
  if (policy_.kind == SequencePolicy::full && !budget_.unset()) {
    fail("--budget", budget_.to_string(),
         "policy full keeps every token, so a budget would be ignored: choose an evicting "
         "policy (window, streaming, h2o) or drop --budget");
  }
  if (policy_.kind != SequencePolicy::full && budget_.unset() && !squeeze_spec_.enabled &&
      !(policy_.kind == SequencePolicy::window && policy_.window > 0)) {
    fail("--budget", "(none)",
         policy_.to_string() +
             " evicts down to a budget: give --budget (tokens, or a percentage of the prompt: 25%) "
             "or SqueezeAttention budgets (--squeeze)");
  }
  if (policy_.kind == SequencePolicy::window && policy_.window > 0) {
    if (!budget_.unset() && budget_.tokens != policy_.window) {
      fail("--budget", budget_.to_string(),
           "window:" + std::to_string(policy_.window) + " already sets the budget");
    }
    budget_.tokens = policy_.window;
  }
  if (budget_.tokens > context_) {
    fail("--budget", std::to_string(budget_.tokens) + " tokens",
         "must be at most the context, " + std::to_string(context_) + " tokens");
  }
  if (policy_.kind == SequencePolicy::streaming && budget_.tokens > 0 &&
      budget_.tokens <= policy_.sinks) {
    fail("--budget", std::to_string(budget_.tokens),
         "must exceed the " + std::to_string(policy_.sinks) + " sinks of streaming:" +
             std::to_string(policy_.sinks) + " (the budget includes them)");
  }
  if (policy_.kind == SequencePolicy::h2o && budget_.tokens > 0 &&
      policy_.recent > budget_.tokens) {
    fail("--policy", policy_.to_string(),
         "h2o's recent window R must not exceed the budget " + std::to_string(budget_.tokens));
  }
}

void PrefillSchedule::validate() const {
  if (passes < 1 || passes > 4096) fail("--passes", std::to_string(passes), "must be in [1, 4096]");
  if (!(eps > 0) || eps >= 1) fail("--converge", std::to_string(eps), "must be in (0, 1)");
  if (max_passes < 1 || max_passes > 4096) {
    fail("--max-passes", std::to_string(max_passes), "must be in [1, 4096]");
  }
}

template <typename S>
typename Engine<S>::Resident Engine<S>::make_resident(Backend<S>& be, const ModelWeights<S>& w) {
  auto put = [&be](const Buffer<S>& a) -> const S* {
    return a.empty() ? nullptr : be.resident(a.data(), static_cast<long>(a.size()));
  };
  Resident r;
  r.embed = put(w.embed);
  r.final_norm = put(w.final_norm);
  r.cls = w.classifier.empty() ? r.embed : put(w.classifier);
  for (const LayerWeights<S>& L : w.layers) {
    r.layers.push_back({put(L.attn_norm), put(L.wq), put(L.wk), put(L.wv), put(L.wo),
                        put(L.ffn_norm), put(L.w1), put(L.w3), put(L.w2)});
  }
  return r;
}

template <typename S>
void Engine<S>::set_exact_kv(int bank, const std::vector<S>& k, const std::vector<S>& v) {
  BackendArray<S>& ek = exact_k_.at(bank);
  BackendArray<S>& ev = exact_v_.at(bank);
  ek = backend_->alloc(static_cast<long>(k.size()));
  ev = backend_->alloc(static_cast<long>(v.size()));
  backend_->upload(ek.data(), k.data(), ek.size());
  backend_->upload(ev.data(), v.data(), ev.size());
}

template <typename S>
bool Engine<S>::token_by_token(int T) const {
  return schedule_.mode == PrefillMode::token_by_token ||
         (schedule_.mode == PrefillMode::automatic && T <= schedule_.passes);
}

template <typename S>
std::vector<double> Engine<S>::layer_importance() const {
  return importance_.values();
}

template <typename S>
bool Engine<S>::measuring_importance() const {
  return in_prefill_ && (squeeze_spec_.enabled || observers_.wants(EventKind::layer_importance));
}

template <typename S>
void Engine<S>::apply_prompt_budgets(int T) {
  if (observers_.wants(EventKind::layer_importance)) {
    LayerImportanceEvent e;
    e.prompt_tokens = T;
    e.cos_sim = importance_.values();
    observers_.emit(EventKind::layer_importance, e, &Observer::on_layer_importance);
  }
  std::vector<int> evicting;
  for (int b = 0; b < kv_.num_banks(); ++b) {
    if (kv_.bank(b).evicts()) evicting.push_back(b);
  }
  if (evicting.empty()) return;
  if (squeeze_spec_.enabled) {
    apply_squeeze_budgets(evicting, T);
  } else if (!budget_.unset()) {
    // A fraction resolves only now: the same rules as a budget in tokens (policies.hpp).
    const int B = check_bank_budget(policy_, budget_.resolve(T), BudgetSource::user).budget;
    for (int b : evicting) kv_.set_budget(b, B);
  }
  for (int b : evicting) kv_.apply_policy(b);
}

template <typename S>
void Engine<S>::check_prompt_budget(int prompt_tokens) const {
  if (squeeze_spec_.enabled || budget_.unset()) return;
  for (int b = 0; b < kv_.num_banks(); ++b) {
    if (!kv_.bank(b).evicts()) continue;
    // As apply_prompt_budgets resolves it (every evicting bank alike: once is enough).
    check_bank_budget(policy_, budget_.resolve(prompt_tokens), BudgetSource::user);
    return;
  }
}

template <typename S>
void Engine<S>::apply_squeeze_budgets(const std::vector<int>& evicting, int T) {
  const std::vector<double> s = importance_.values();
  std::vector<int> kv_layers;
  for (int b : evicting) kv_layers.push_back(kv_.bank(b).kv_layer);
  squeeze_result_ = squeeze_budgets(bank_importance(plan_, kv_layers, s, squeeze_spec_.bank_mean),
                                    squeeze_spec_, T);
  squeeze_result_.layer_importance = s;
  for (std::size_t i = 0; i < evicting.size(); ++i) {
    // A budget the policy cannot honour (streaming's sinks, h2o's recent window) is raised to its
    // least, and the note says so (§5, §6 step 4).
    const BankBudget checked =
        check_bank_budget(policy_, squeeze_result_.budget[i], BudgetSource::squeeze, kv_layers[i]);
    if (checked.raised()) squeeze_result_.notes.push_back(checked.note);
    squeeze_result_.budget[i] = checked.budget;
    kv_.set_budget(evicting[i], checked.budget);
  }
  SqueezeEvent e;
  e.prompt_tokens = T;
  e.layer_importance = s;
  e.bank_layer = kv_layers;
  e.bank_importance = squeeze_result_.bank_importance;
  e.cluster = squeeze_result_.cluster;
  e.budget = squeeze_result_.budget;
  e.a = squeeze_result_.a;
  e.notes = squeeze_result_.notes;
  observers_.emit(EventKind::squeeze, e, &Observer::on_squeeze);
}

template <typename S>
void Engine<S>::reset() {
  kv_.clear();
  squeeze_result_ = {};
  importance_.reset(plan_.layers());
  pos_ = 0;
  step_ = 0;
}

template <typename S>
void Engine<S>::check_tokens(const int* tokens, int T) const {
  for (int i = 0; i < T; ++i) {
    if (tokens[i] < 0 || tokens[i] >= w_->config.vocab_size) {
      fail("token", std::to_string(tokens[i]) + " (at index " + std::to_string(i) + ")",
           "token ids must be in [0, " + std::to_string(w_->config.vocab_size) + ")");
    }
  }
  if (pos_ + T > context_) {
    fail("prompt", std::to_string(pos_ + T) + " tokens",
         "the sequence may hold at most " + std::to_string(context_) + " tokens (the context)");
  }
}

template <typename S>
std::vector<S> Engine<S>::prefill(const std::vector<int>& tokens, bool all_logits) {
  if (tokens.empty()) fail("prompt", "(empty)", "needs at least one token");
  reset();
  const int T = static_cast<int>(tokens.size());
  check_tokens(tokens.data(), T);
  const long V = w_->config.vocab_size;
  BackendArray<S> out = backend_->alloc((all_logits ? T : 1) * V);  // the logits
  kv_.begin_step();
  passes_run_.clear();
  exact_rows_ = T;
  in_prefill_ = true;
  tapping_ = observers_.wants(EventKind::tensors);
  tap_kept_.assign(kv_.num_banks(), {});
  if (!plan_.has_upward() || !token_by_token(T)) {
    // All rows at once; cyclic blocks (if any) run their passes inside (reference/lckv.cpp).
    forward(tokens.data(), T, /*batched=*/true, all_logits, out.data());
  } else {
    // Token by token: each upward reader sees the target's K/V of every earlier token (exact).
    for (int t = 0; t < T; ++t) {
      // Every token's logits go to its own row; without all_logits, each overwrites the one row.
      forward(&tokens[t], 1, /*batched=*/false, false, out.data() + (all_logits ? t * V : 0));
    }
  }
  std::vector<S> logits(out.size());
  backend_->download(logits.data(), out.data(), out.size());
  in_prefill_ = false;
  apply_prompt_budgets(T);
  emit_step("prefill", T);
  return logits;
}

template <typename S>
std::vector<S> Engine<S>::decode(int token) {
  check_tokens(&token, 1);
  BackendArray<S> out = backend_->alloc(w_->config.vocab_size);
  ++step_;
  kv_.begin_step();
  tapping_ = observers_.wants(EventKind::tensors);
  forward(&token, 1, /*batched=*/false, false, out.data());
  std::vector<S> logits(out.size());
  backend_->download(logits.data(), out.data(), out.size());
  for (int b = 0; b < kv_.num_banks(); ++b) kv_.apply_policy(b);  // evict after every step
  emit_step("decode", 1);
  return logits;
}

template <typename S>
typename Engine<S>::Workspace Engine<S>::make_workspace(int T) {
  const ModelConfig& c = w_->config;
  const long rows = T, Q = static_cast<long>(c.num_attention_heads) * c.head_dim;
  Workspace ws;
  ws.h = backend_->alloc(rows * c.hidden_size);
  ws.q = backend_->alloc(rows * Q);
  ws.att = backend_->alloc(rows * Q);
  ws.o = backend_->alloc(rows * c.hidden_size);
  ws.gate = backend_->alloc(rows * c.intermediate_size);
  ws.up = backend_->alloc(rows * c.intermediate_size);
  return ws;
}

template <typename S>
typename Engine<S>::BankRows Engine<S>::make_rows() const {
  BankRows rows;
  rows.k.resize(kv_.num_banks());
  rows.v.resize(kv_.num_banks());
  rows.k_raw.resize(kv_.num_banks());
  rows.h2o.reset(plan_.layers());
  return rows;
}

template <typename S>
void Engine<S>::forward(const int* tokens, int T, bool batched, bool all_logits, S* logits) {
  const ModelConfig& c = w_->config;
  const int C = c.hidden_size;
  std::vector<int> pos(T);  // (T)
  for (int t = 0; t < T; ++t) pos[t] = pos_ + t;

  BackendArray<S> x = backend_->alloc(static_cast<long>(T) * C);  // (T, C) residual stream
  backend_->embed(x.data(), rw_.embed, tokens, T, C);
  if (tapping_) {
    tap_step_ = !in_prefill_ ? "decode" + std::to_string(step_)
                : batched    ? std::string("prefill")
                             : "prefill.token" + std::to_string(pos_);
    tap(tap_step_ + ".embed", {T, C}, x.data());
  }
  Workspace ws = make_workspace(T);
  BankRows rows = make_rows();
  for (int l = 0; l < plan_.layers();) {
    const int blk = batched ? plan_.cyclic_block_of(l) : -1;
    if (blk >= 0) {
      run_cyclic_block(blk, x.data(), pos.data(), T, rows, ws);
      l = blocks_[blk].last + 1;
    } else {
      layer_forward(l, x.data(), pos.data(), T, batched, rows, nullptr, ws);
      ++l;
    }
  }
  if (batched) commit_rows(rows, pos.data(), T);
  pos_ += T;

  // logits = W_cls · RMSNorm_final(x): every row, or the last.
  const int first = all_logits ? 0 : T - 1;
  backend_->rmsnorm(ws.h.data(), x.data() + static_cast<long>(first) * C, rw_.final_norm, T - first,
                    C, c.rms_norm_eps);
  backend_->linear(logits, ws.h.data(), rw_.cls, T - first, C, c.vocab_size);
}

template <typename S>
void Engine<S>::commit_rows(BankRows& rows, const int* pos, int T) {
  for (int b = 0; b < kv_.num_banks(); ++b) {
    const bool cache_mode = rows.k_raw[b].size() == rows.k[b].size();
    kv_.append(b, (cache_mode ? rows.k_raw[b] : rows.k[b]).data(), rows.v[b].data(), pos, T);
    if (policy_.kind == SequencePolicy::h2o && kv_.bank(b).evicts()) {
      // The prompt's attention, summed over the bank's readers (§5: every layer that reads it).
      std::vector<double> score, count;
      rows.h2o.sum_for_bank(plan_, kv_.bank(b).kv_layer, T, kv_.kv_heads(), score, count);
      kv_.set_scores(b, score, count);
    }
  }
}

template <typename S>
void Engine<S>::layer_forward(int l, S* x, const int* pos, int T, bool batched, BankRows& rows,
                              const BankRows* prev, Workspace& ws) {
  attention_block(l, x, pos, T, batched, rows, prev, ws);
  mlp_block(l, x, T, ws);
}

template <typename S>
void Engine<S>::attention_block(int l, S* x, const int* pos, int T, bool batched, BankRows& rows,
                                const BankRows* prev, Workspace& ws) {
  const ModelConfig& c = w_->config;
  const int C = c.hidden_size, Q = c.num_attention_heads * c.head_dim;
  const long n = static_cast<long>(T) * C;
  const LayerResident& L = rw_.layers[l];
  backend_->rmsnorm(ws.h.data(), x, L.attn_norm, T, C, c.rms_norm_eps);
  if (tapping_) tap(tap_name(l, "attn.norm_in"), {T, C}, ws.h.data());
  if (plan_.is_kv_layer(l)) {
    // Q, K and V of the same normed rows: one unit of work for the backend.
    const int KV = c.num_key_value_heads * c.head_dim;
    BackendArray<S> k = backend_->alloc(static_cast<long>(T) * KV);  // (T, H_kv*D)
    BackendArray<S> v = backend_->alloc(static_cast<long>(T) * KV);
    const LinearOut<S> qkv[3] = {
        {ws.q.data(), L.wq, Q}, {k.data(), L.wk, KV}, {v.data(), L.wv, KV}};
    backend_->linears(qkv, 3, ws.h.data(), T, C);
    write_kv(l, pos, T, batched, std::move(k), std::move(v), rows);
  } else {
    backend_->linear(ws.q.data(), ws.h.data(), L.wq, T, C, Q);
  }
  const bool measure = measuring_importance();
  if (measure) importance_.before(*backend_, x, n);  // §6: the stream before this layer's attention
  if (batched) {
    // Upward readers see the target's K/V of the previous pass; everyone else this pass's.
    attend_rows(l, pos, T, rows, plan_.is_upward(l) ? *prev : rows, ws);
  } else {
    attend_bank(l, pos, T, ws);
  }
  const int H = c.num_attention_heads, D = c.head_dim;
  if (tapping_) {
    tap(tap_name(l, "attn.q"), {T, H, D}, ws.q.data());  // rotated, as attention used it
    tap(tap_name(l, "attn.out"), {T, H, D}, ws.att.data());
  }
  backend_->linear(ws.o.data(), ws.att.data(), L.wo, T, Q, C);
  backend_->add(x, ws.o.data(), n);
  if (tapping_) tap(tap_name(l, "attn.resid"), {T, C}, x);
  if (measure) importance_.after(*backend_, l, x, T, C);
}

template <typename S>
void Engine<S>::write_kv(int l, const int* pos, int T, bool batched, BackendArray<S> k,
                         BackendArray<S> v, BankRows& rows) {
  const ModelConfig& c = w_->config;
  const int Hkv = c.num_key_value_heads;
  const int b = kv_.bank_of_layer(l);
  const bool cache_mode =
      kv_.bank(b).evicts() && kv_.bank(b).policy.positions == PositionMode::cache;
  const long n = static_cast<long>(T) * c.num_key_value_heads * c.head_dim;
  // A narrower K/V dtype: the values every attention reads are the stored, rounded ones. Keys are
  // rounded as stored: pre-RoPE in cache position mode, after RoPE otherwise.
  if (round_kv_) backend_->round_to_dtype(v.data(), n, kv_dtype_);
  if (cache_mode) {
    if (round_kv_) backend_->round_to_dtype(k.data(), n, kv_dtype_);
    // Pre-RoPE keys go to the bank; readers rotate them by slot (§5, positions.hpp).
    if (batched) {
      rows.k_raw[b] = backend_->alloc(n);
      backend_->copy(rows.k_raw[b].data(), k.data(), n);
    }
    if (!batched) kv_.append(b, k.data(), v.data(), pos, T);
  }
  backend_->rope(k.data(), pos, T, Hkv, c.head_dim, c.rope_theta, RopePairing::half);  // §2
  if (round_kv_ && !cache_mode) backend_->round_to_dtype(k.data(), n, kv_dtype_);
  if (tapping_) {
    tap(tap_name(l, "attn.k"), {T, Hkv, c.head_dim}, k.data());
    tap(tap_name(l, "attn.v"), {T, Hkv, c.head_dim}, v.data());
  }
  if (batched) {
    rows.k[b] = std::move(k);
    rows.v[b] = std::move(v);
  } else if (!cache_mode) {
    kv_.append(b, k.data(), v.data(), pos, T);
  }
}

template <typename S>
AttentionSet Engine<S>::attention_set(int l) const {
  AttentionSet set;
  set.strict = plan_.is_upward(l) || force_nodiag_;
  set.window = plan_.sliding(l) ? w_->config.sliding_window : 0;
  return set;
}

template <typename S>
bool Engine<S>::needs_probs(int b) const {
  const bool h2o = kv_.bank(b).evicts() && kv_.bank(b).policy.kind == SequencePolicy::h2o;
  return h2o || tapping_ || observers_.wants(EventKind::attention);
}

template <typename S>
AttentionArgs<S> Engine<S>::query_args(int l, const int* pos, int T, int N, bool probs,
                                       Workspace& ws) {
  const ModelConfig& c = w_->config;
  AttentionArgs<S> a;
  a.out = ws.att.data();
  a.q = ws.q.data();
  a.qpos = pos;
  a.T = T;
  a.N = N;
  a.H = c.num_attention_heads;
  a.H_kv = c.num_key_value_heads;
  a.D = c.head_dim;
  a.set = attention_set(l);
  const long n = static_cast<long>(a.H) * T * N;
  if (probs && ws.probs.size() != n) ws.probs = backend_->alloc(n);
  a.probs = probs ? ws.probs.data() : nullptr;
  if (tapping_ && ws.scores.size() != n) ws.scores = backend_->alloc(n);
  a.scores = tapping_ ? ws.scores.data() : nullptr;
  return a;
}

template <typename S>
void Engine<S>::attend_rows(int l, const int* pos, int T, BankRows& rows, const BankRows& src,
                            Workspace& ws) {
  // The prompt's rows: positions and slots coincide (nothing is evicted during a prefill).
  const ModelConfig& c = w_->config;
  const int H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int b = kv_.bank_of_layer(l);
  backend_->rope(ws.q.data(), pos, T, H, D, c.rope_theta, RopePairing::half);
  const bool probs = needs_probs(b);
  AttentionArgs<S> a = query_args(l, pos, T, T, probs, ws);
  a.k = src.k[b].data();
  a.v = src.v[b].data();
  a.kpos = pos;
  backend_->attention(a);
  if (tapping_) {
    tap_positions(tap_name(l, "attn.read_positions"), Hkv, T, pos, 0);
    tap(tap_name(l, "attn.scores"), {H, T, T}, ws.scores.data());
    tap(tap_name(l, "attn.probs"), {H, T, T}, ws.probs.data());
  }
  if (!probs) return;
  if (kv_.bank(b).evicts() && kv_.bank(b).policy.kind == SequencePolicy::h2o) {
    rows.h2o.record(l, *backend_, ws.probs.data(), pos, a.set, H, T, Hkv);
  }
  emit_attention(l, pos, T, pos, T, 0, ws.probs.data());
}

template <typename S>
void Engine<S>::attend_bank(int l, const int* pos, int T, Workspace& ws) {
  const ModelConfig& c = w_->config;
  const int H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const int b = kv_.bank_of_layer(l);
  const BankMeta& bank = kv_.bank(b);
  const std::vector<int> kpos = kv_.head_positions(b);  // (H_kv, held)
  const int N = bank.held();
  const bool cache_mode = bank.evicts() && bank.policy.positions == PositionMode::cache;
  const bool probs = needs_probs(b);
  AttentionArgs<S> a = query_args(l, pos, T, N, probs, ws);
  a.k = rotate_for_bank(*backend_, cache_mode, ws.q.data(), pos[0], kv_.keys(b), kpos.data(), N, H,
                        Hkv, D, c.rope_theta, ws.rotated);
  a.v = kv_.values(b);
  a.kpos = kpos.data();
  a.kpos_head_stride = N;
  backend_->attention(a);
  if (tapping_) {
    tap_positions(tap_name(l, "attn.read_positions"), Hkv, N, kpos.data(), N);
    tap(tap_name(l, "attn.scores"), {H, T, N}, ws.scores.data());
    tap(tap_name(l, "attn.probs"), {H, T, N}, ws.probs.data());
  }
  if (!probs) return;
  if (bank.evicts() && bank.policy.kind == SequencePolicy::h2o) {
    kv_.add_scores(b, *backend_, ws.probs.data(), pos, a.set, H, T, N);
  }
  emit_attention(l, pos, T, kpos.data(), N, N, ws.probs.data());
}

template <typename S>
void Engine<S>::emit_attention(int l, const int* pos, int T, const int* kpos, int N, int stride,
                               const S* probs) const {
  if (!observers_.wants(EventKind::attention)) return;
  const ModelConfig& c = w_->config;
  AttentionEvent e;
  e.step = step_;
  e.phase = in_prefill_ ? "prefill" : "decode";
  e.layer = l;
  e.bank = plan_.kv_of(l);
  e.heads = c.num_attention_heads;
  e.kv_heads = c.num_key_value_heads;
  e.rows = T;
  e.cells = N;
  e.pass = pass_;
  e.query_pos.assign(pos, pos + T);
  for (int g = 0; g < e.kv_heads; ++g) {
    const int* p = kpos + static_cast<long>(g) * stride;
    e.key_pos.insert(e.key_pos.end(), p, p + N);
  }
  std::vector<S> host(static_cast<long>(e.heads) * T * N);
  backend_->download(host.data(), probs, static_cast<long>(host.size()));
  e.probs.assign(host.begin(), host.end());
  observers_.emit(EventKind::attention, e, &Observer::on_attention);
}

template <typename S>
void Engine<S>::mlp_block(int l, S* x, int T, Workspace& ws) {
  const ModelConfig& c = w_->config;
  const int C = c.hidden_size, F = c.intermediate_size;
  const LayerResident& L = rw_.layers[l];
  backend_->rmsnorm(ws.h.data(), x, L.ffn_norm, T, C, c.rms_norm_eps);
  if (tapping_) tap(tap_name(l, "mlp.norm_in"), {T, C}, ws.h.data());
  const LinearOut<S> gate_up[2] = {{ws.gate.data(), L.w1, F}, {ws.up.data(), L.w3, F}};
  backend_->linears(gate_up, 2, ws.h.data(), T, C);
  backend_->swiglu(ws.gate.data(), ws.up.data(), static_cast<long>(T) * F);
  backend_->linear(ws.o.data(), ws.gate.data(), L.w2, T, F, C);
  backend_->add(x, ws.o.data(), static_cast<long>(T) * C);
  if (tapping_) {
    tap(tap_name(l, "mlp.out"), {T, C}, ws.o.data());
    tap(tap_name(l, "mlp.resid"), {T, C}, x);
  }
}

template <typename S>
std::string Engine<S>::tap_name(int l, const char* what) const {
  std::string name = tap_step_;
  if (pass_ > 0) name += ".pass" + std::to_string(pass_);
  return name + ".layer" + std::to_string(l) + "." + what;
}

template <typename S>
void Engine<S>::tap(const std::string& name, std::vector<std::int64_t> shape, const S* data) const {
  std::vector<S> host(tensor_numel(shape));
  backend_->download(host.data(), data, static_cast<long>(host.size()));
  emit_tensor(observers_, name, std::move(shape), host.data());
}

template <typename S>
void Engine<S>::tap_positions(const std::string& name, int rows, int cols, const int* data,
                              int row_stride) const {
  std::vector<int> all;  // (rows, cols); row_stride 0 repeats one list for every row
  for (int r = 0; r < rows; ++r) {
    all.insert(all.end(), data + static_cast<long>(r) * row_stride,
               data + static_cast<long>(r) * row_stride + cols);
  }
  emit_int_tensor(observers_, name, {rows, cols}, all.data());
}

template <typename S>
void Engine<S>::tap_cache(int tokens_in_step) {
  // After a step's evictions: per bank (named by its KV layer) the positions each KV head keeps,
  // and those it dropped in this step (held before or new in this step, and not kept now).
  const std::string step = step_ == 0 ? "prefill" : "decode" + std::to_string(step_);
  const int Hkv = kv_.kv_heads();
  for (int b = 0; b < kv_.num_banks(); ++b) {
    const std::vector<int> kept = kv_.head_positions(b);  // (H_kv, held)
    const int held = kv_.bank(b).held();
    std::vector<int> evicted;
    int per_head = 0;
    for (int g = 0; g < Hkv; ++g) {
      std::vector<int> before;
      const std::vector<int>& prev = tap_kept_[b];
      const int prev_held = static_cast<int>(prev.size()) / Hkv;
      before.assign(prev.begin() + static_cast<long>(g) * prev_held,
                    prev.begin() + static_cast<long>(g + 1) * prev_held);
      for (int p = pos_ - tokens_in_step; p < pos_; ++p) before.push_back(p);
      std::vector<int> now(kept.begin() + static_cast<long>(g) * held,
                           kept.begin() + static_cast<long>(g + 1) * held);
      std::sort(before.begin(), before.end());
      std::sort(now.begin(), now.end());
      const std::size_t start = evicted.size();
      std::set_difference(before.begin(), before.end(), now.begin(), now.end(),
                          std::back_inserter(evicted));
      per_head = static_cast<int>(evicted.size() - start);  // equal for every head
    }
    const std::string bank = step + ".bank" + std::to_string(kv_.bank(b).kv_layer);
    emit_int_tensor(observers_, bank + ".kept_positions", {Hkv, held}, kept.data());
    emit_int_tensor(observers_, bank + ".evicted_positions", {Hkv, per_head}, evicted.data());
    tap_kept_[b] = kept;
  }
}

template <typename S>
void Engine<S>::emit_step(const char* phase, int tokens_in_step) {
  if (observers_.empty()) return;
  if (tapping_) tap_cache(tokens_in_step);
  for (int l = 0; l < plan_.layers(); ++l) {
    const int b = kv_.bank_of_layer(l);
    KvStepEvent e;
    e.step = step_;
    e.phase = phase;
    e.layer = l;
    e.bank = plan_.kv_of(l);
    e.writes = plan_.is_kv_layer(l);
    e.tokens_held = kv_.bank(b).held();
    e.bytes_held = kv_.bank_bytes_held(b);
    e.budget = kv_.bank(b).budget;
    e.evicted = kv_.bank(b).evicted_in_step;
    observers_.emit(EventKind::kv_step, e, &Observer::on_kv_step);
  }
  for (int b = 0; b < kv_.num_banks() && observers_.wants(EventKind::h2o_scores); ++b) {
    const BankMeta& bank = kv_.bank(b);
    if (!bank.evicts() || bank.policy.kind != SequencePolicy::h2o) continue;
    ref::emit_h2o_scores(observers_, step_, bank.kv_layer, bank.held(), kv_.kv_heads(),
                         bank.pos.data(), bank.score.data(), bank.count.data());
  }
  for (int b = 0; b < kv_.num_banks() && observers_.wants(EventKind::kept); ++b) {
    const BankMeta& bank = kv_.bank(b);
    for (int g = 0; g < kv_.kv_heads(); ++g) {
      KeptEvent k;
      k.step = step_;
      k.bank = bank.kv_layer;
      k.kv_head = g;
      k.policy = bank.sliding ? "sliding" : bank.policy.to_string();
      k.budget = bank.evicts() ? bank.budget : 0;
      k.positions = kv_.positions(b, g);
      observers_.emit(EventKind::kept, k, &Observer::on_kept);
    }
  }
  StepSummaryEvent s;
  s.step = step_;
  s.phase = phase;
  s.tokens_in_step = tokens_in_step;
  s.position = pos_ - 1;
  s.kv_bytes_held = kv_.bytes_held();
  s.kv_bytes_allocated = kv_.bytes_allocated();
  s.h2o_score_bytes = kv_.score_bytes_held();
  observers_.emit(EventKind::step_summary, s, &Observer::on_step_summary);
}

template <typename S>
void Engine<S>::fill_random_cache(int depth, std::uint64_t seed) {
  reset();
  if (depth < 0 || depth > context_) {
    fail("depth", std::to_string(depth), "must be in [0, " + std::to_string(context_) + "]");
  }
  // A small xorshift + Box-Muller: the same cells on every machine for a seed.
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  auto uniform = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  auto normal = [&] {
    return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  };
  for (int b = 0; b < kv_.num_banks(); ++b) {
    const int cells = std::min(depth, kv_.bank(b).budget);
    std::vector<S> k(static_cast<long>(cells) * kv_.row_size()), v(k.size());
    for (auto& x : k) x = static_cast<S>(normal());
    for (auto& x : v) x = static_cast<S>(normal());
    std::vector<int> pos(cells);
    for (int i = 0; i < cells; ++i) pos[i] = depth - cells + i;
    BackendArray<S> dk = backend_->alloc(static_cast<long>(k.size()));
    BackendArray<S> dv = backend_->alloc(static_cast<long>(v.size()));
    backend_->upload(dk.data(), k.data(), dk.size());
    backend_->upload(dv.data(), v.data(), dv.size());
    kv_.append(b, dk.data(), dv.data(), pos.data(), cells);
  }
  pos_ = depth;
}

template <typename S>
typename Engine<S>::HeldKv Engine<S>::held_kv(int b) const {
  if (b < 0 || b >= kv_.num_banks()) {
    fail("bank", std::to_string(b), "must be in [0, " + std::to_string(kv_.num_banks()) + ")");
  }
  const BankMeta& bank = kv_.bank(b);
  const long n = static_cast<long>(bank.held()) * kv_.row_size();
  HeldKv held{std::vector<S>(n), std::vector<S>(n), bank.held()};
  backend_->download(held.k.data(), kv_.keys(b), n);
  backend_->download(held.v.data(), kv_.values(b), n);
  return held;
}

template class Engine<float>;
template class Engine<double>;

}  // namespace kvlab::ref
