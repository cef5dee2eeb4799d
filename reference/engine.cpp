#include "reference/engine.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "reference/attention.hpp"
#include "reference/linear.hpp"
#include "reference/ops.hpp"

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
Engine<S>::Engine(std::shared_ptr<const ModelWeights<S>> weights, EngineOptions o)
    : w_(require_weights(std::move(weights))),
      plan_(resolve_plan(w_->plan, o.plan)),
      threads_(o.threads),
      context_(resolve_context(w_->config, o.context)),
      force_nodiag_(o.force_nodiag),
      kv_(plan_, w_->config, context_, o.policy),
      schedule_(o.schedule),
      blocks_(plan_.cyclic_blocks()),
      exact_k_(kv_.num_banks()),
      exact_v_(kv_.num_banks()),
      policy_(o.policy),
      budget_(o.budget),
      squeeze_spec_(o.squeeze),
      cos_sum_(plan_.layers(), 0.0),
      cos_count_(plan_.layers(), 0.0) {
  schedule_.validate();
  if (squeeze_spec_.enabled) {
    squeeze_spec_.validate();
    if (policy_.kind == SequencePolicy::full) {
      fail("--policy", "full",
           "SqueezeAttention budgets need an evicting policy (window, "
           "streaming, h2o)");
    }
  }
  if (policy_.kind == SequencePolicy::window && policy_.window > 0) {
    if (!budget_.unset() && budget_.tokens != policy_.window) {
      fail("--budget",
           budget_.tokens ? std::to_string(budget_.tokens) : std::to_string(budget_.fraction),
           "window:" + std::to_string(policy_.window) + " already sets the budget");
    }
    budget_.tokens = policy_.window;
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
  if (threads_ < 1 || threads_ > 256) {
    fail("--threads", std::to_string(threads_), "must be in [1, 256]");
  }
  Eigen::setNbThreads(1);  // kvlab splits the work itself (reference/linear.hpp, attention.hpp)
}

void PrefillSchedule::validate() const {
  if (passes < 1 || passes > 4096) fail("--passes", std::to_string(passes), "must be in [1, 4096]");
  if (!(eps > 0) || eps >= 1) fail("--converge", std::to_string(eps), "must be in (0, 1)");
  if (max_passes < 1 || max_passes > 4096) {
    fail("--max-passes", std::to_string(max_passes), "must be in [1, 4096]");
  }
}

template <typename S>
void Engine<S>::set_exact_kv(int bank, std::vector<S> k, std::vector<S> v) {
  exact_k_.at(bank) = std::move(k);
  exact_v_.at(bank) = std::move(v);
}

template <typename S>
bool Engine<S>::token_by_token(int T) const {
  return schedule_.mode == PrefillMode::token_by_token ||
         (schedule_.mode == PrefillMode::automatic && T <= schedule_.passes);
}

template <typename S>
std::vector<double> Engine<S>::layer_importance() const {
  std::vector<double> s(plan_.layers(), 0.0);
  for (int l = 0; l < plan_.layers(); ++l)
    s[l] = cos_count_[l] > 0 ? cos_sum_[l] / cos_count_[l] : 0;
  return s;
}

template <typename S>
void Engine<S>::apply_prompt_budgets(int T) {
  std::vector<int> evicting;
  for (int b = 0; b < kv_.num_banks(); ++b) {
    if (kv_.bank(b).evicts()) evicting.push_back(b);
  }
  if (evicting.empty()) return;
  if (squeeze_spec_.enabled) {
    // A bank's importance: the most important (lowest s) of its readers, or their mean.
    const std::vector<double> s = layer_importance();
    std::vector<double> bank_s;
    for (int b : evicting) {
      const auto readers = plan_.readers(kv_.bank(b).kv_layer);
      double v = squeeze_spec_.bank_mean ? 0.0 : 1e300;
      for (int r : readers) v = squeeze_spec_.bank_mean ? v + s[r] : std::min(v, s[r]);
      bank_s.push_back(squeeze_spec_.bank_mean ? v / readers.size() : v);
    }
    squeeze_result_ = squeeze_budgets(bank_s, squeeze_spec_, T);
    squeeze_result_.layer_importance = s;
    SqueezeEvent e;
    e.prompt_tokens = T;
    e.layer_importance = s;
    e.bank_importance = squeeze_result_.bank_importance;
    e.cluster = squeeze_result_.cluster;
    e.budget = squeeze_result_.budget;
    e.a = squeeze_result_.a;
    for (std::size_t i = 0; i < evicting.size(); ++i) {
      kv_.set_budget(evicting[i], squeeze_result_.budget[i]);
      e.bank_layer.push_back(kv_.bank(evicting[i]).kv_layer);
    }
    observers_.emit(e, &Observer::on_squeeze);
  } else if (!budget_.unset()) {
    const int B = budget_.resolve(T);
    if (policy_.kind == SequencePolicy::streaming && B <= policy_.sinks) {
      fail(
          "--budget", std::to_string(B) + " tokens",
          "must exceed the " + std::to_string(policy_.sinks) + " sinks (the budget includes them)");
    }
    for (int b : evicting) kv_.set_budget(b, B);
  }
  for (int b : evicting) kv_.apply_policy(b);
}

template <typename S>
void Engine<S>::reset() {
  kv_.clear();
  squeeze_result_ = {};
  std::fill(cos_sum_.begin(), cos_sum_.end(), 0.0);
  std::fill(cos_count_.begin(), cos_count_.end(), 0.0);
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
  std::vector<S> logits((all_logits ? T : 1) * V);
  kv_.begin_step();
  passes_run_.clear();
  in_prefill_ = true;
  if (!plan_.has_upward() || !token_by_token(T)) {
    // All rows at once; cyclic blocks (if any) run their passes inside (reference/lckv.cpp).
    forward(tokens.data(), T, /*batched=*/true, all_logits, logits.data());
  } else {
    // Token by token: each upward reader sees the target's K/V of every earlier token (exact).
    std::vector<S> row(V);
    for (int t = 0; t < T; ++t) {
      forward(&tokens[t], 1, /*batched=*/false, false, row.data());
      if (all_logits || t == T - 1) {
        std::copy(row.begin(), row.end(), logits.begin() + (all_logits ? t * V : 0));
      }
    }
  }
  in_prefill_ = false;
  apply_prompt_budgets(T);
  emit_step("prefill", T);
  return logits;
}

template <typename S>
std::vector<S> Engine<S>::decode(int token) {
  check_tokens(&token, 1);
  std::vector<S> logits(w_->config.vocab_size);
  ++step_;
  kv_.begin_step();
  forward(&token, 1, /*batched=*/false, false, logits.data());
  for (int b = 0; b < kv_.num_banks(); ++b) kv_.apply_policy(b);  // evict after every step
  emit_step("decode", 1);
  return logits;
}

template <typename S>
void Engine<S>::forward(const int* tokens, int T, bool batched, bool all_logits, S* logits) {
  const ModelConfig& c = w_->config;
  const int C = c.hidden_size, H = c.num_attention_heads;
  const int D = c.head_dim, V = c.vocab_size;
  const double eps = c.rms_norm_eps;

  std::vector<int> pos(T);  // (T)
  for (int t = 0; t < T; ++t) pos[t] = pos_ + t;

  Buffer<S> x(static_cast<long>(T) * C);  // (T, C) residual stream
  for (int t = 0; t < T; ++t) {
    std::copy_n(w_->embed.begin() + static_cast<long>(tokens[t]) * C, C, x.begin() + t * C);
  }
  Workspace ws;
  ws.h.resize(x.size());
  ws.q.resize(static_cast<long>(T) * H * D);
  ws.att.resize(ws.q.size());
  ws.o.resize(x.size());
  ws.gate.resize(static_cast<long>(T) * c.intermediate_size);
  ws.up.resize(ws.gate.size());
  BankRows rows;
  rows.k.resize(kv_.num_banks());
  rows.v.resize(kv_.num_banks());
  rows.k_raw.resize(kv_.num_banks());
  rows.score.resize(plan_.layers());
  rows.count.resize(plan_.layers());

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

  if (batched) {
    for (int b = 0; b < kv_.num_banks(); ++b) {
      const bool cache_mode = rows.k_raw[b].size() == rows.k[b].size();
      kv_.append(b, (cache_mode ? rows.k_raw[b] : rows.k[b]).data(), rows.v[b].data(), pos.data(),
                 T);
      if (policy_.kind == SequencePolicy::h2o && kv_.bank(b).evicts()) {
        // The prompt's attention, summed over the bank's readers (§5: every layer that reads it).
        std::vector<double> score(static_cast<long>(T) * kv_.kv_heads(), 0.0),
            count(score.size(), 0.0);
        for (int l : plan_.readers(kv_.bank(b).kv_layer)) {
          for (std::size_t i = 0; i < score.size() && !rows.score[l].empty(); ++i) {
            score[i] += rows.score[l][i];
            count[i] += rows.count[l][i];
          }
        }
        kv_.set_scores(b, score, count);
      }
    }
  }
  pos_ += T;

  // --- logits = W_cls · RMSNorm_final(x): every row, or the last -----------------------------
  const int first = all_logits ? 0 : T - 1;
  rmsnorm(ws.h.data(), x.data() + static_cast<long>(first) * C, w_->final_norm.data(), T - first, C,
          eps);
  linear(logits, ws.h.data(), w_->cls(), T - first, C, V, threads_);
}

template <typename S>
void Engine<S>::layer_forward(int l, S* x, const int* pos, int T, bool batched, BankRows& rows,
                              const BankRows* prev, Workspace& ws) {
  const ModelConfig& c = w_->config;
  const int C = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int D = c.head_dim, F = c.intermediate_size;
  const int Q = H * D, KV = Hkv * D;
  const double eps = c.rms_norm_eps;
  const long n = static_cast<long>(T) * C;
  const LayerWeights<S>& L = w_->layers[l];
  const int b = kv_.bank_of_layer(l);

  // --- attention: x += W_O · Attn(RMSNorm(x)) ---------------------------------------------
  const bool cache_mode =
      kv_.bank(b).evicts() && kv_.bank(b).policy.positions == PositionMode::cache;
  const bool h2o = kv_.bank(b).evicts() && kv_.bank(b).policy.kind == SequencePolicy::h2o;
  rmsnorm(ws.h.data(), x, L.attn_norm.data(), T, C, eps);
  linear(ws.q.data(), ws.h.data(), L.wq.data(), T, C, Q, threads_);
  if (plan_.is_kv_layer(l)) {
    Buffer<S> k(static_cast<long>(T) * KV), v(k.size());  // (T, H_kv*D)
    linear(k.data(), ws.h.data(), L.wk.data(), T, C, KV, threads_);
    linear(v.data(), ws.h.data(), L.wv.data(), T, C, KV, threads_);
    if (cache_mode) {
      // Pre-RoPE keys go to the bank; readers rotate them by slot (§5, StreamingLLM pos-shift).
      if (batched) rows.k_raw[b] = k;
      if (!batched) kv_.append(b, k.data(), v.data(), pos, T);
    }
    rope(k.data(), pos, T, Hkv, D, c.rope_theta);  // shared after RoPE (§2)
    if (batched) {
      rows.k[b] = std::move(k);
      rows.v[b] = std::move(v);
    } else if (!cache_mode) {
      kv_.append(b, k.data(), v.data(), pos, T);
    }
  }
  AttentionSet set;
  set.strict = plan_.is_upward(l) || force_nodiag_;
  set.window = plan_.sliding(l) ? c.sliding_window : 0;
  Buffer<S> x_in;  // SqueezeAttention: the stream before this layer's attention
  const bool measure = in_prefill_ && (measure_importance_ || squeeze_spec_.enabled);
  if (measure) x_in.assign(x, x + n);
  if (batched) {
    // The prompt's rows: positions and slots coincide (nothing is evicted during a prefill).
    rope(ws.q.data(), pos, T, H, D, c.rope_theta);
    // Upward readers see the target's K/V of the previous pass; everyone else this pass's.
    const BankRows& src = plan_.is_upward(l) ? *prev : rows;
    Buffer<S> probs(h2o ? static_cast<long>(H) * T * T : 0);
    attention(ws.att.data(), ws.q.data(), pos, T, src.k[b].data(), src.v[b].data(), pos, T, H, Hkv,
              D, set, threads_, h2o ? probs.data() : nullptr);
    if (h2o) {
      rows.score[l].assign(static_cast<long>(T) * Hkv, 0.0);
      rows.count[l].assign(rows.score[l].size(), 0.0);
      std::vector<int> cell_pos(static_cast<long>(T) * Hkv);
      for (int t = 0; t < T; ++t)
        for (int g = 0; g < Hkv; ++g) cell_pos[static_cast<long>(t) * Hkv + g] = pos[t];
      KvStore<S>::add_scores_to(rows.score[l].data(), rows.count[l].data(), cell_pos.data(),
                                probs.data(), pos, set, H, T, T, Hkv);
    }
  } else {
    const KvBank<S>& bank = kv_.bank(b);
    const std::vector<int> kpos = kv_.head_positions(b);  // (H_kv, held)
    const int N = bank.held();
    const S* keys = bank.k.data();
    Buffer<S> rotated;
    if (cache_mode) {
      // Keys by slot 0..N-1; the query by the slot its token has (or will have) in the bank.
      rotated.assign(bank.k.begin(), bank.k.begin() + static_cast<long>(N) * KV);
      std::vector<int> slots(N);
      for (int j = 0; j < N; ++j) slots[j] = j;
      rope(rotated.data(), slots.data(), N, Hkv, D, c.rope_theta);
      keys = rotated.data();
      const bool own_cell = N > 0 && kpos[N - 1] == pos[0];
      const int qslot = own_cell ? N - 1 : N;
      rope(ws.q.data(), &qslot, 1, H, D, c.rope_theta);
    } else {
      rope(ws.q.data(), pos, T, H, D, c.rope_theta);
    }
    Buffer<S> probs(h2o ? static_cast<long>(H) * T * N : 0);
    attention(ws.att.data(), ws.q.data(), pos, T, keys, bank.v.data(), kpos.data(), N, H, Hkv, D,
              set, threads_, h2o ? probs.data() : nullptr, /*kpos_head_stride=*/N);
    if (h2o) kv_.add_scores(b, probs.data(), pos, set, H, T, N);
  }
  linear(ws.o.data(), ws.att.data(), L.wo.data(), T, Q, C, threads_);
  for (long i = 0; i < n; ++i) x[i] += ws.o[i];
  if (measure) {
    // s_l (§6): mean over tokens of cos(x_t, x_t + W_O · Attn(RMSNorm(x_t))).
    for (int t = 0; t < T; ++t) {
      double dot = 0, a2 = 0, b2 = 0;
      for (int i = 0; i < C; ++i) {
        const double a = x_in[static_cast<long>(t) * C + i], bb = x[static_cast<long>(t) * C + i];
        dot += a * bb;
        a2 += a * a;
        b2 += bb * bb;
      }
      cos_sum_[l] += dot / std::sqrt(a2 * b2);
      cos_count_[l] += 1;
    }
  }

  // --- MLP: x += W_2 · (silu(W_1 h) ⊙ W_3 h), h = RMSNorm(x) -------------------------------
  rmsnorm(ws.h.data(), x, L.ffn_norm.data(), T, C, eps);
  linear(ws.gate.data(), ws.h.data(), L.w1.data(), T, C, F, threads_);
  linear(ws.up.data(), ws.h.data(), L.w3.data(), T, C, F, threads_);
  swiglu(ws.gate.data(), ws.up.data(), static_cast<long>(T) * F);
  linear(ws.o.data(), ws.gate.data(), L.w2.data(), T, F, C, threads_);
  for (long i = 0; i < n; ++i) x[i] += ws.o[i];
}

template <typename S>
void Engine<S>::emit_step(const char* phase, int tokens_in_step) {
  if (observers_.empty()) return;
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
    observers_.emit(e, &Observer::on_kv_step);
  }
  for (int b = 0; b < kv_.num_banks() && emit_h2o_scores_; ++b) {
    const KvBank<S>& bank = kv_.bank(b);
    if (!bank.evicts() || bank.policy.kind != SequencePolicy::h2o) continue;
    for (int g = 0; g < kv_.kv_heads(); ++g) {
      H2oScoresEvent e;
      e.step = step_;
      e.bank = bank.kv_layer;
      e.kv_head = g;
      e.positions = kv_.positions(b, g);
      for (int c = 0; c < bank.held(); ++c) {
        e.scores.push_back(bank.score[static_cast<long>(c) * kv_.kv_heads() + g]);
        e.counts.push_back(bank.count[static_cast<long>(c) * kv_.kv_heads() + g]);
      }
      observers_.emit(e, &Observer::on_h2o_scores);
    }
  }
  StepSummaryEvent s;
  s.step = step_;
  s.phase = phase;
  s.tokens_in_step = tokens_in_step;
  s.position = pos_ - 1;
  s.kv_bytes_held = kv_.bytes_held();
  s.kv_bytes_allocated = kv_.bytes_allocated();
  observers_.emit(s, &Observer::on_step_summary);
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
    kv_.append(b, k.data(), v.data(), pos.data(), cells);
  }
  pos_ = depth;
}

template <typename S>
typename Engine<S>::HeldKv Engine<S>::held_kv(int b) const {
  if (b < 0 || b >= kv_.num_banks()) {
    fail("bank", std::to_string(b), "must be in [0, " + std::to_string(kv_.num_banks()) + ")");
  }
  const KvBank<S>& bank = kv_.bank(b);
  const long n = static_cast<long>(bank.held()) * kv_.row_size();
  return {std::vector<S>(bank.k.begin(), bank.k.begin() + n),
          std::vector<S>(bank.v.begin(), bank.v.begin() + n), bank.held()};
}

template class Engine<float>;
template class Engine<double>;

}  // namespace kvlab::ref
