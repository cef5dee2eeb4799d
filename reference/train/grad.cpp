// The whole model's forward with its activations and the backward through it, under any KV plan
// (techniques.md §1, §2, §4), over the operations of ops_grad.hpp.
//
// The forward is a list of layer *evaluations*: one per layer for plans without upward edges; in
// a cyclic block one per layer and gradient pass (the m passes without gradient run on scratch
// buffers and leave only their targets' K/V, as constants). Each evaluation records the
// evaluation whose output is its input (`in`) and the one whose K/V it reads (`src`; -1: a
// constant). The backward walks the list in reverse: every reader of a K/V comes after its
// writer, so when the walk reaches a KV layer's evaluation, the gradient of its K/V from every
// reader (its own attention, readers above it, upward readers of the next pass, the KV loss) is
// complete.
//
// KV loss (λ > 0, §4): mean over every element of the upward targets' K (after RoPE) and V of
// (produced − fed)², where `fed` is what the final pass's upward readers read (the previous
// gradient pass's K/V, or the constants left by the passes without gradient, zeros when m = 0)
// and `produced` is what the final pass's target computes. Both sides carry gradient unless they
// are constants (as a plain MSE between two tensors of the graph would); docs/training.md.
#include "reference/train/grad.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.hpp"
#include "reference/train/ops_grad.hpp"

namespace kvlab::ref::train {

void TrainPasses::validate() const {
  const std::string text = std::to_string(m) + "," + std::to_string(b);
  if (m < 0) fail("--train-passes", text, "m (passes without gradient) must be >= 0");
  if (b < 1) fail("--train-passes", text, "b (passes with gradient) must be >= 1");
  if (m > 1024 || b > 1024) fail("--train-passes", text, "m and b must be at most 1024");
  if (!(kv_loss_weight >= 0) || !std::isfinite(kv_loss_weight)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", kv_loss_weight);
    fail("--kv-loss", text, "must be a finite number >= 0");
  }
}

double LossReport::total() const {
  return loss + kv_loss_weight * kv_loss;
}

template <typename S>
std::vector<ParamRef<S>> parameters(ModelWeights<S>& w) {
  std::vector<ParamRef<S>> out;
  out.push_back({"model.embed_tokens.weight", &w.embed, true});
  for (int l = 0; l < static_cast<int>(w.layers.size()); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights<S>& L = w.layers[l];
    out.push_back({p + "input_layernorm.weight", &L.attn_norm, false});
    out.push_back({p + "self_attn.q_proj.weight", &L.wq, true});
    if (w.plan.is_kv_layer(l)) {
      out.push_back({p + "self_attn.k_proj.weight", &L.wk, true});
      out.push_back({p + "self_attn.v_proj.weight", &L.wv, true});
    }
    out.push_back({p + "self_attn.o_proj.weight", &L.wo, true});
    out.push_back({p + "post_attention_layernorm.weight", &L.ffn_norm, false});
    out.push_back({p + "mlp.gate_proj.weight", &L.w1, true});
    out.push_back({p + "mlp.up_proj.weight", &L.w3, true});
    out.push_back({p + "mlp.down_proj.weight", &L.w2, true});
  }
  out.push_back({"model.norm.weight", &w.final_norm, false});
  if (!w.classifier.empty()) out.push_back({"lm_head.weight", &w.classifier, true});
  return out;
}

template <typename S>
ModelWeights<S> zeros_like(const ModelWeights<S>& w) {
  auto z = [](const Buffer<S>& v) { return Buffer<S>(v.size(), S(0)); };
  ModelWeights<S> o;
  o.config = w.config;
  o.plan = w.plan;
  o.embed = z(w.embed);
  for (const auto& l : w.layers) {
    o.layers.push_back({z(l.attn_norm), z(l.wq), z(l.wk), z(l.wv), z(l.wo), z(l.ffn_norm), z(l.w1),
                        z(l.w3), z(l.w2)});
  }
  o.final_norm = z(w.final_norm);
  o.classifier = z(w.classifier);
  return o;
}

namespace {

// Keeps Eigen's own GEMM threading off while a GradModel computes: our tiles carry the threads,
// and Eigen's split would make the bits depend on the thread count.
class EigenSerial {
 public:
  EigenSerial() : saved_(Eigen::nbThreads()) { Eigen::setNbThreads(1); }
  ~EigenSerial() { Eigen::setNbThreads(saved_); }
  EigenSerial(const EigenSerial&) = delete;
  EigenSerial& operator=(const EigenSerial&) = delete;

 private:
  int saved_;
};

template <typename S>
void resize(Buffer<S>& b, long n) {
  if (static_cast<long>(b.size()) != n) b.resize(n);
}

template <typename S>
void zero(Buffer<S>& b, long n) {
  resize(b, n);
  std::fill(b.begin(), b.end(), S(0));
}

template <typename S>
bool same_shapes(const ModelWeights<S>& a, const ModelWeights<S>& b) {
  if (a.layers.size() != b.layers.size() || a.embed.size() != b.embed.size() ||
      a.final_norm.size() != b.final_norm.size() || a.classifier.size() != b.classifier.size()) {
    return false;
  }
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    if (x.attn_norm.size() != y.attn_norm.size() || x.wq.size() != y.wq.size() ||
        x.wk.size() != y.wk.size() || x.wv.size() != y.wv.size() || x.wo.size() != y.wo.size() ||
        x.ffn_norm.size() != y.ffn_norm.size() || x.w1.size() != y.w1.size() ||
        x.w3.size() != y.w3.size() || x.w2.size() != y.w2.size()) {
      return false;
    }
  }
  return true;
}

}  // namespace

// One evaluation of one layer over N = B*T rows, with what its backward needs.
template <typename S>
struct LayerAct {
  int layer = 0;
  int in = -1;            // evaluation whose output y is this one's input; -1: embeddings
  int src = -1;           // evaluation whose K/V this layer reads; -1: ck, cv (constants)
  const S* ck = nullptr;  // (N, KV) constant K/V when src == -1
  const S* cv = nullptr;
  Buffer<S> h1, r1;   // (N, C), (N): attention norm's output and 1/rms
  Buffer<S> q;        // (N, H*D) rotated queries
  Buffer<S> k, v;     // (N, H_kv*D) KV layers only: rotated keys, values
  Buffer<S> p;        // (B, H, T, T) attention probabilities
  Buffer<S> a;        // (N, H*D) attention output
  Buffer<S> x2;       // (N, C) stream after attention
  Buffer<S> h2, r2;   // (N, C), (N): MLP norm's output and 1/rms
  Buffer<S> g, u, s;  // (N, F) gate (pre-silu), up, silu(gate) ⊙ up
  Buffer<S> y;        // (N, C) output stream
  Buffer<S> dk, dv;   // (N, H_kv*D) gradient of k, v (KV layers)
  Buffer<S> dy;       // (N, C) gradient of y
};

// KV loss terms: a target's K/V produced by the final pass against what that pass's upward
// readers were fed.
struct KvLossTerm {
  int produced = 0;  // evaluation
  int fed = -1;      // evaluation, or -1: constants (fed_layer's const buffers)
  int fed_layer = 0;
};

template <typename S>
struct GradModel<S>::Impl {
  ModelConfig cfg;
  KvPlan plan;
  TrainPasses passes;
  int threads = 1;
  bool force_nodiag = false;
  bool frozen = false;  // freeze_constants

  int B = 0, T = 0, N = 0;
  std::vector<int> inputs, targets;         // (N)
  std::vector<S> cos, sin;                  // (T, D/2)
  Buffer<S> x0, dx0;                        // (N, C) embeddings and their gradient
  std::vector<LayerAct<S>> acts;            // the evaluations, forward order
  int used = 0;                             // evaluations of this call
  std::vector<LayerAct<S>> scratch;         // passes without gradient, one per layer of a block
  std::vector<Buffer<S>> const_k, const_v;  // per layer: constant K/V of upward targets
  std::vector<KvLossTerm> kv_terms;
  Buffer<S> hf, rf, logits;                         // (N, C), (N), (N, V): final norm, logits
  Buffer<S> t_c, t_c2, t_q, t_q2, t_f, t_f2, t_f3;  // backward scratch
  Buffer<S> t_norm;  // (row tiles, C): per-tile norm-weight gradients

  int C() const { return cfg.hidden_size; }
  int Q() const { return cfg.num_attention_heads * cfg.head_dim; }
  int KV() const { return cfg.num_key_value_heads * cfg.head_dim; }

  AttentionSet attention_set(int l) const {
    AttentionSet set;
    set.strict = plan.is_upward(l) || force_nodiag;
    set.window = plan.sliding(l) ? cfg.sliding_window : 0;
    return set;
  }

  const S* stream(int e) const { return e < 0 ? x0.data() : acts[e].y.data(); }

  void prepare(const int* batch, int B_, int T_) {
    if (B_ < 1) fail("batch rows", std::to_string(B_), "must be >= 1");
    if (T_ < 1) fail("tokens", std::to_string(T_), "need at least 2 tokens per row (T >= 1)");
    if (T_ > cfg.max_position_embeddings) {
      fail("tokens", std::to_string(T_),
           "at most max_position_embeddings = " + std::to_string(cfg.max_position_embeddings));
    }
    for (long i = 0; i < static_cast<long>(B_) * (T_ + 1); ++i) {
      if (batch[i] < 0 || batch[i] >= cfg.vocab_size) {
        fail("token", std::to_string(batch[i]),
             "must be in [0, " + std::to_string(cfg.vocab_size) + ")");
      }
    }
    if (T_ != T) rope_tables(cos, sin, T_, cfg.head_dim, cfg.rope_theta);
    B = B_;
    T = T_;
    N = B * T;
    inputs.resize(N);
    targets.resize(N);
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < T; ++t) {
        inputs[b * T + t] = batch[static_cast<long>(b) * (T + 1) + t];
        targets[b * T + t] = batch[static_cast<long>(b) * (T + 1) + t + 1];
      }
    }
  }

  LayerAct<S>& new_eval(int layer, int in) {
    if (used == static_cast<int>(acts.size())) acts.emplace_back();
    LayerAct<S>& a = acts[used++];
    a.layer = layer;
    a.in = in;
    a.src = -1;
    a.ck = a.cv = nullptr;
    return a;
  }

  // Row tiles (kRowTile rows) for the row-local parts of a layer: one parallel loop each, every
  // tile's work single-threaded inside (the same products as a whole-array call would do).
  int row_tiles() const { return (N + kRowTile - 1) / kRowTile; }

  // One layer on x (N, C) into A.y; reads K/V kk, vv (N, KV), or its own when null. Three
  // parallel loops: row tiles up to Q, K, V; attention by (batch row, head); row tiles after it.
  void layer_forward(const ModelWeights<S>& w, LayerAct<S>& A, const S* x, const S* kk,
                     const S* vv) {
    const int l = A.layer, C = this->C(), Qd = Q(), KVd = KV(), F = cfg.intermediate_size;
    const int H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, D = cfg.head_dim;
    const LayerWeights<S>& L = w.layers[l];
    const long NC = static_cast<long>(N) * C;
    const bool kv_layer = plan.is_kv_layer(l);
    resize(A.h1, NC);
    resize(A.r1, N);
    resize(A.q, static_cast<long>(N) * Qd);
    resize(A.p, static_cast<long>(B) * H * T * T);
    resize(A.a, static_cast<long>(N) * Qd);
    resize(A.x2, NC);
    resize(A.h2, NC);
    resize(A.r2, N);
    resize(A.g, static_cast<long>(N) * F);
    resize(A.u, static_cast<long>(N) * F);
    resize(A.s, static_cast<long>(N) * F);
    resize(A.y, NC);
    if (kv_layer) {
      resize(A.k, static_cast<long>(N) * KVd);
      resize(A.v, static_cast<long>(N) * KVd);
    }
    const int tiles = row_tiles();
    // h1 = RMSNorm(x); q = rope(h1 · W_Qᵀ); a KV layer: k = rope(h1 · W_Kᵀ), v = h1 · W_Vᵀ
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int ti = 0; ti < tiles; ++ti) {
      const int n0 = ti * kRowTile, rows = std::min(kRowTile, N - n0);
      const long c0 = static_cast<long>(n0) * C;
      S* h1 = A.h1.data() + c0;
      rmsnorm_forward(h1, A.r1.data() + n0, x + c0, L.attn_norm.data(), rows, C, cfg.rms_norm_eps);
      S* q = A.q.data() + static_cast<long>(n0) * Qd;
      linear_forward(q, h1, L.wq.data(), rows, C, Qd, 1);
      rope_forward(q, cos.data(), sin.data(), rows, T, H, D, n0);
      if (kv_layer) {
        S* k = A.k.data() + static_cast<long>(n0) * KVd;
        linear_forward(k, h1, L.wk.data(), rows, C, KVd, 1);
        linear_forward(A.v.data() + static_cast<long>(n0) * KVd, h1, L.wv.data(), rows, C, KVd, 1);
        rope_forward(k, cos.data(), sin.data(), rows, T, Hkv, D, n0);  // shared after RoPE (§2)
      }
    }
    if (!kk) {
      kk = A.k.data();
      vv = A.v.data();
    }
    attention_forward(A.a.data(), A.p.data(), A.q.data(), kk, vv, B, T, H, Hkv, D, attention_set(l),
                      threads);
    // x2 = x + a · W_Oᵀ;  y = x2 + (silu(h2 · W_1ᵀ) ⊙ h2 · W_3ᵀ) · W_2ᵀ, h2 = RMSNorm(x2)
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int ti = 0; ti < tiles; ++ti) {
      const int n0 = ti * kRowTile, rows = std::min(kRowTile, N - n0);
      const long c0 = static_cast<long>(n0) * C, f0 = static_cast<long>(n0) * F;
      S* x2 = A.x2.data() + c0;
      std::copy_n(x + c0, static_cast<long>(rows) * C, x2);
      linear_forward(x2, A.a.data() + static_cast<long>(n0) * Qd, L.wo.data(), rows, Qd, C, 1,
                     /*accumulate=*/true);
      S* h2 = A.h2.data() + c0;
      rmsnorm_forward(h2, A.r2.data() + n0, x2, L.ffn_norm.data(), rows, C, cfg.rms_norm_eps);
      linear_forward(A.g.data() + f0, h2, L.w1.data(), rows, C, F, 1);
      linear_forward(A.u.data() + f0, h2, L.w3.data(), rows, C, F, 1);
      swiglu_forward(A.s.data() + f0, A.g.data() + f0, A.u.data() + f0,
                     static_cast<long>(rows) * F);
      S* y = A.y.data() + c0;
      std::copy_n(x2, static_cast<long>(rows) * C, y);
      linear_forward(y, A.s.data() + f0, L.w2.data(), rows, F, C, 1, /*accumulate=*/true);
    }
  }

  // The K/V evaluation `e` reads.
  const S* src_k(const LayerAct<S>& A) const {
    return A.src >= 0 ? acts[A.src].k.data() : A.ck;
  }
  const S* src_v(const LayerAct<S>& A) const {
    return A.src >= 0 ? acts[A.src].v.data() : A.cv;
  }

  // The forward of the whole model; returns the evaluation whose output is the last layer's.
  int forward(const ModelWeights<S>& w) {
    const int L = cfg.num_hidden_layers, C = this->C();
    const long NKV = static_cast<long>(N) * KV();
    used = 0;
    kv_terms.clear();
    resize(x0, static_cast<long>(N) * C);
    embedding_forward(x0.data(), w.embed.data(), inputs.data(), N, C);
    std::vector<int> latest(L, -1);  // the last evaluation of each layer
    int cur = -1;                    // the evaluation that produced the stream
    const bool upward = plan.has_upward();
    const std::vector<CyclicBlock> blocks =
        upward ? plan.cyclic_blocks() : std::vector<CyclicBlock>{};
    const_k.resize(L);
    const_v.resize(L);
    for (int l = 0; l < L;) {
      const int bi = upward ? plan.cyclic_block_of(l) : -1;
      if (bi < 0) {
        const int e = used;
        LayerAct<S>& A = new_eval(l, cur);
        const int t = plan.kv_of(l);
        A.src = t == l ? e : latest[t];
        layer_forward(w, A, stream(cur), t == l ? nullptr : acts[A.src].k.data(),
                      t == l ? nullptr : acts[A.src].v.data());
        latest[l] = cur = e;
        ++l;
        continue;
      }
      const CyclicBlock blk = blocks[bi];
      std::vector<int> tgts;
      for (int r = blk.first; r <= blk.last; ++r) {
        const int t = plan.kv_of(r);
        if (plan.is_upward(r) && std::find(tgts.begin(), tgts.end(), t) == tgts.end()) {
          tgts.push_back(t);
        }
      }
      const bool reuse = frozen && static_cast<long>(const_k[tgts[0]].size()) == NKV;
      for (int t : tgts) {  // §3 step 1: the targets' K/V start at zeros
        if (reuse) continue;
        zero(const_k[t], NKV);
        zero(const_v[t], NKV);
      }
      const int block_in = cur;
      // Passes without gradient: scratch evaluations; only the targets' K/V survive.
      const int span = blk.last - blk.first + 1;
      if (passes.m > 0 && static_cast<int>(scratch.size()) < span) scratch.resize(span);
      for (int p = 0; p < (reuse ? 0 : passes.m); ++p) {
        for (int r = blk.first; r <= blk.last; ++r) {
          LayerAct<S>& A = scratch[r - blk.first];
          A.layer = r;
          const S* x = r == blk.first ? stream(block_in) : scratch[r - 1 - blk.first].y.data();
          const int t = plan.kv_of(r);
          const S *kk = nullptr, *vv = nullptr;
          if (plan.is_upward(r)) {
            kk = const_k[t].data();
            vv = const_v[t].data();
          } else if (t != r) {
            const LayerAct<S>& src = t >= blk.first ? scratch[t - blk.first] : acts[latest[t]];
            kk = src.k.data();
            vv = src.v.data();
          }
          layer_forward(w, A, x, kk, vv);
        }
        for (int t : tgts) {
          std::copy_n(scratch[t - blk.first].k.data(), NKV, const_k[t].data());
          std::copy_n(scratch[t - blk.first].v.data(), NKV, const_v[t].data());
        }
      }
      // Passes with gradient: upward readers read the previous gradient pass's targets (the
      // constants in the first); everyone else reads this pass's K/V.
      std::vector<int> prev(L, -1);
      for (int p = 0; p < passes.b; ++p) {
        const bool last_pass = p == passes.b - 1;
        for (int r = blk.first; r <= blk.last; ++r) {
          const int e = used;
          LayerAct<S>& A = new_eval(r, r == blk.first ? block_in : e - 1);
          const int t = plan.kv_of(r);
          if (plan.is_upward(r)) {
            A.src = prev[t];
            if (A.src < 0) {
              A.ck = const_k[t].data();
              A.cv = const_v[t].data();
            }
          } else {
            A.src = t == r ? e : latest[t];
          }
          layer_forward(w, A, stream(A.in), t == r ? nullptr : src_k(A),
                        t == r ? nullptr : src_v(A));
          latest[r] = e;
        }
        if (last_pass) {
          for (int t : tgts) kv_terms.push_back({latest[t], prev[t], t});
        }
        for (int t : tgts) prev[t] = latest[t];
      }
      cur = used - 1;
      l = blk.last + 1;
    }
    return cur;
  }

  // Σ over terms of (produced − fed)² and the element count, for K and V.
  const S* fed_k(const KvLossTerm& t) const {
    return t.fed >= 0 ? acts[t.fed].k.data() : const_k[t.fed_layer].data();
  }
  const S* fed_v(const KvLossTerm& t) const {
    return t.fed >= 0 ? acts[t.fed].v.data() : const_v[t.fed_layer].data();
  }

  double kv_loss(bool grad, double weight) {
    if (kv_terms.empty()) return 0;
    const long NKV = static_cast<long>(N) * KV();
    const double count = 2.0 * static_cast<double>(NKV) * static_cast<double>(kv_terms.size());
    double sum = 0;
    for (const KvLossTerm& term : kv_terms) {
      for (int side = 0; side < 2; ++side) {
        const S* prod = side == 0 ? acts[term.produced].k.data() : acts[term.produced].v.data();
        const S* fed = side == 0 ? fed_k(term) : fed_v(term);
        for (long i = 0; i < NKV; ++i) {
          const double d = static_cast<double>(prod[i]) - static_cast<double>(fed[i]);
          sum += d * d;
        }
        if (!grad) continue;
        // d(λ · sum / count) = 2λ (prod − fed) / count on prod, the opposite on fed.
        const S c = static_cast<S>(2.0 * weight / count);
        S* dprod = side == 0 ? acts[term.produced].dk.data() : acts[term.produced].dv.data();
        S* dfed = nullptr;
        if (term.fed >= 0) dfed = side == 0 ? acts[term.fed].dk.data() : acts[term.fed].dv.data();
        for (long i = 0; i < NKV; ++i) {
          const S d = c * (prod[i] - fed[i]);
          dprod[i] += d;
          if (dfed) dfed[i] -= d;
        }
      }
    }
    return sum / count;
  }

  // Σ over row tiles of per-tile norm-weight gradients (tiles, C), in tile order, into dw (C).
  void sum_tiles(S* dw, int tiles, int C) const {
    for (int ti = 0; ti < tiles; ++ti) {
      const S* p = t_norm.data() + static_cast<long>(ti) * C;
      for (int c = 0; c < C; ++c) dw[c] += p[c];
    }
  }

  // The backward of one evaluation, given acts[e].dy; adds into its input's dy and the K/V
  // gradients of what it read. Row tiles for what is row-local, (weight, tile of its rows) for
  // weight gradients, (batch row, KV head) for attention: five parallel loops.
  void layer_backward(const ModelWeights<S>& w, ModelWeights<S>& gw, int e) {
    LayerAct<S>& A = acts[e];
    const int l = A.layer, C = this->C(), Qd = Q(), KVd = KV(), F = cfg.intermediate_size;
    const int H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, D = cfg.head_dim;
    const LayerWeights<S>& L = w.layers[l];
    LayerWeights<S>& G = gw.layers[l];
    const long NC = static_cast<long>(N) * C, NF = static_cast<long>(N) * F;
    const long NQ = static_cast<long>(N) * Qd;
    const bool kv_layer = plan.is_kv_layer(l);
    const int tiles = row_tiles();
    resize(t_c, NC);   // dx2, then dx
    resize(t_c2, NC);  // dh (norm outputs)
    resize(t_q, NQ);   // da
    resize(t_q2, NQ);  // dq
    resize(t_f, NF);   // ds
    resize(t_f2, NF);  // dg
    resize(t_f3, NF);  // du
    resize(t_norm, static_cast<long>(tiles) * C);
    // MLP, then W_O's input: ds = dy · W_2; dg, du; dh2 = dg · W_1 + du · W_3; dx2 = dy +
    // RMSNorm'(dh2); da = dx2 · W_O.
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int ti = 0; ti < tiles; ++ti) {
      const int n0 = ti * kRowTile, rows = std::min(kRowTile, N - n0);
      const long c0 = static_cast<long>(n0) * C, f0 = static_cast<long>(n0) * F;
      const long q0 = static_cast<long>(n0) * Qd;
      std::copy_n(A.dy.data() + c0, static_cast<long>(rows) * C, t_c.data() + c0);
      linear_backward(t_f.data() + f0, static_cast<S*>(nullptr), A.dy.data() + c0, A.s.data() + f0,
                      L.w2.data(), rows, F, C, 1, false);
      swiglu_backward(t_f2.data() + f0, t_f3.data() + f0, t_f.data() + f0, A.g.data() + f0,
                      A.u.data() + f0, static_cast<long>(rows) * F);
      linear_backward(t_c2.data() + c0, static_cast<S*>(nullptr), t_f2.data() + f0,
                      A.h2.data() + c0, L.w1.data(), rows, C, F, 1, false);
      linear_backward(t_c2.data() + c0, static_cast<S*>(nullptr), t_f3.data() + f0,
                      A.h2.data() + c0, L.w3.data(), rows, C, F, 1, true);
      S* part = t_norm.data() + static_cast<long>(ti) * C;
      std::fill(part, part + C, S(0));
      rmsnorm_backward(t_c.data() + c0, part, t_c2.data() + c0, A.x2.data() + c0, A.r2.data() + n0,
                       L.ffn_norm.data(), rows, C);
      linear_backward(t_q.data() + q0, static_cast<S*>(nullptr), t_c.data() + c0, A.a.data() + q0,
                      L.wo.data(), rows, Qd, C, 1, false);
    }
    sum_tiles(G.ffn_norm.data(), tiles, C);
    linear_weight_grads<S>({{G.w2.data(), A.dy.data(), A.s.data(), C, F},
                            {G.w1.data(), t_f2.data(), A.h2.data(), F, C},
                            {G.w3.data(), t_f3.data(), A.h2.data(), F, C},
                            {G.wo.data(), t_c.data(), A.a.data(), C, Qd}},
                           N, threads);
    // Attention: dq (rotated); dk, dv into what this layer read (nothing for constants).
    const bool own = A.src == e;
    S* dk = A.src >= 0 ? acts[A.src].dk.data() : nullptr;
    S* dv = A.src >= 0 ? acts[A.src].dv.data() : nullptr;
    attention_backward(t_q2.data(), dk, dv, t_q.data(), A.p.data(), A.q.data(),
                       own ? A.k.data() : src_k(A), own ? A.v.data() : src_v(A), B, T, H, Hkv, D,
                       threads);
    // dh1 = dq · W_Q (+ dk · W_K + dv · W_V: every reader of a KV layer's K/V has been through,
    // so its dk, dv are complete); dx = dx2 + RMSNorm'(dh1), added into the input's gradient.
    const S* x = stream(A.in);
    S* dx = A.in < 0 ? dx0.data() : acts[A.in].dy.data();
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int ti = 0; ti < tiles; ++ti) {
      const int n0 = ti * kRowTile, rows = std::min(kRowTile, N - n0);
      const long c0 = static_cast<long>(n0) * C, q0 = static_cast<long>(n0) * Qd;
      S* dq = t_q2.data() + q0;
      rope_backward(dq, cos.data(), sin.data(), rows, T, H, D, n0);
      linear_backward(t_c2.data() + c0, static_cast<S*>(nullptr), dq, A.h1.data() + c0, L.wq.data(),
                      rows, C, Qd, 1, false);
      if (kv_layer) {
        const long k0 = static_cast<long>(n0) * KVd;
        rope_backward(A.dk.data() + k0, cos.data(), sin.data(), rows, T, Hkv, D, n0);
        linear_backward(t_c2.data() + c0, static_cast<S*>(nullptr), A.dk.data() + k0,
                        A.h1.data() + c0, L.wk.data(), rows, C, KVd, 1, true);
        linear_backward(t_c2.data() + c0, static_cast<S*>(nullptr), A.dv.data() + k0,
                        A.h1.data() + c0, L.wv.data(), rows, C, KVd, 1, true);
      }
      S* part = t_norm.data() + static_cast<long>(ti) * C;
      std::fill(part, part + C, S(0));
      rmsnorm_backward(t_c.data() + c0, part, t_c2.data() + c0, x + c0, A.r1.data() + n0,
                       L.attn_norm.data(), rows, C);
      for (long i = c0; i < c0 + static_cast<long>(rows) * C; ++i) dx[i] += t_c[i];
    }
    sum_tiles(G.attn_norm.data(), tiles, C);
    std::vector<WeightGradJob<S>> jobs = {{G.wq.data(), t_q2.data(), A.h1.data(), Qd, C}};
    if (kv_layer) {
      jobs.push_back({G.wk.data(), A.dk.data(), A.h1.data(), KVd, C});
      jobs.push_back({G.wv.data(), A.dv.data(), A.h1.data(), KVd, C});
    }
    linear_weight_grads(jobs, N, threads);
  }

  LossReport run(const ModelWeights<S>& w, const int* batch, int B_, int T_, ModelWeights<S>* gw) {
    if (w.config.num_hidden_layers != cfg.num_hidden_layers ||
        w.config.hidden_size != cfg.hidden_size || w.config.vocab_size != cfg.vocab_size ||
        w.config.num_key_value_heads != cfg.num_key_value_heads ||
        w.config.intermediate_size != cfg.intermediate_size) {
      fail("weights", "config", "differs from the GradModel's");
    }
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
      if (plan.is_kv_layer(l) && w.layers[l].wk.empty()) {
        fail("plan", plan.to_string(),
             "needs W_K, W_V of layer " + std::to_string(l) + ", which the weights lack");
      }
    }
    EigenSerial serial;
    prepare(batch, B_, T_);
    const int C = this->C(), V = cfg.vocab_size;
    const int last = forward(w);
    resize(hf, static_cast<long>(N) * C);
    resize(rf, N);
    resize(logits, static_cast<long>(N) * V);
    rmsnorm_forward(hf.data(), rf.data(), acts[last].y.data(), w.final_norm.data(), N, C,
                    cfg.rms_norm_eps);
    linear_forward(logits.data(), hf.data(), w.cls(), N, C, V, threads);
    LossReport rep;
    rep.kv_loss_weight = passes.kv_loss_weight;
    const bool grad = gw != nullptr;
    rep.loss = cross_entropy(logits.data(), targets.data(), N, V, grad, 1.0 / N, threads) / N;
    if (!grad) {
      if (passes.kv_loss_weight > 0) rep.kv_loss = kv_loss(false, 0);
      return rep;
    }
    // Backward. Gradients start at zero; every dy and K/V gradient too.
    if (!same_shapes(*gw, w)) {
      *gw = zeros_like(w);
    } else {
      for (ParamRef<S>& p : parameters(*gw)) std::fill(p.data->begin(), p.data->end(), S(0));
    }
    const long NC = static_cast<long>(N) * C, NKV = static_cast<long>(N) * KV();
    zero(dx0, NC);
    for (int e = 0; e < used; ++e) {
      zero(acts[e].dy, NC);
      if (plan.is_kv_layer(acts[e].layer)) {
        zero(acts[e].dk, NKV);
        zero(acts[e].dv, NKV);
      }
    }
    if (passes.kv_loss_weight > 0) rep.kv_loss = kv_loss(true, passes.kv_loss_weight);
    // logits = RMSNorm_final(y) · W_clsᵀ; dlogits is in `logits` now.
    S* dcls = gw->classifier.empty() ? gw->embed.data() : gw->classifier.data();
    resize(t_c2, NC);
    linear_backward(t_c2.data(), dcls, logits.data(), hf.data(), w.cls(), N, C, V, threads, false);
    rmsnorm_backward(acts[last].dy.data(), gw->final_norm.data(), t_c2.data(), acts[last].y.data(),
                     rf.data(), w.final_norm.data(), N, C);
    for (int e = used - 1; e >= 0; --e) layer_backward(w, *gw, e);
    embedding_backward(gw->embed.data(), dx0.data(), inputs.data(), N, C);
    return rep;
  }
};

template <typename S>
GradModel<S>::GradModel(const ModelConfig& cfg, const KvPlan& plan, TrainPasses passes, int threads,
                        bool force_nodiag)
    : impl_(std::make_unique<Impl>()) {
  cfg.validate();
  passes.validate();
  if (plan.layers() != cfg.num_hidden_layers) {
    fail("plan", plan.to_string(),
         "has " + std::to_string(plan.layers()) + " layers; the model has " +
             std::to_string(cfg.num_hidden_layers));
  }
  if (threads < 1 || threads > 256)
    fail("--threads", std::to_string(threads), "must be in [1, 256]");
  impl_->cfg = cfg;
  impl_->plan = plan;
  impl_->passes = passes;
  impl_->threads = threads;
  impl_->force_nodiag = force_nodiag;
}

template <typename S>
GradModel<S>::~GradModel() = default;
template <typename S>
GradModel<S>::GradModel(GradModel&&) noexcept = default;
template <typename S>
GradModel<S>& GradModel<S>::operator=(GradModel&&) noexcept = default;

template <typename S>
LossReport GradModel<S>::loss_and_grad(const ModelWeights<S>& w, const int* batch, int B, int T,
                                       ModelWeights<S>& grads) {
  return impl_->run(w, batch, B, T, &grads);
}

template <typename S>
LossReport GradModel<S>::loss(const ModelWeights<S>& w, const int* batch, int B, int T) {
  return impl_->run(w, batch, B, T, nullptr);
}

template <typename S>
void GradModel<S>::freeze_constants(bool frozen) {
  impl_->frozen = frozen;
}

template class GradModel<float>;
template class GradModel<double>;
template std::vector<ParamRef<float>> parameters(ModelWeights<float>&);
template std::vector<ParamRef<double>> parameters(ModelWeights<double>&);
template ModelWeights<float> zeros_like(const ModelWeights<float>&);
template ModelWeights<double> zeros_like(const ModelWeights<double>&);

}  // namespace kvlab::ref::train
