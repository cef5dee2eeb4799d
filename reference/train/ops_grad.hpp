// Forward and backward of every operation of the model family (techniques.md §1, §2), in the
// style of llm.c's train_gpt2.c: one free function per operation and direction, outputs first,
// the shape of every buffer in a comment (legend in core/dims.hpp; N = B*T rows, row n is token
// t = n % T of batch row b = n / T). Templated on the scalar (float, double).
//
// Backward functions *accumulate* (+=) into parameter gradients, and into input gradients where
// the comment says so. Work is split across threads in tiles whose bounds do not depend on the
// thread count, and every reduction runs in a fixed order, so results are bit-identical for any
// thread count. Callers must keep Eigen's own GEMM threading off (Eigen::setNbThreads(1)), which
// GradModel does for the duration of each call.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "reference/op_types.hpp"

namespace kvlab::ref::train {

template <typename S>
using MatR = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using OStride = Eigen::OuterStride<>;

// Rows of the activations per matrix-product tile; rows of a weight gradient per tile.
inline constexpr int kRowTile = 128;
inline constexpr int kWeightTile = 32;

// ---------------------------------------------------------------- embedding

// out (N, C) = embed[tokens[n]] (V, C).
template <typename S>
void embedding_forward(S* out, const S* embed, const int* tokens, int N, int C) {
  for (int n = 0; n < N; ++n) {
    std::copy_n(embed + static_cast<long>(tokens[n]) * C, C, out + static_cast<long>(n) * C);
  }
}

// dembed (V, C) += scatter of dout (N, C) by tokens (in row order: deterministic).
template <typename S>
void embedding_backward(S* dembed, const S* dout, const int* tokens, int N, int C) {
  for (int n = 0; n < N; ++n) {
    S* d = dembed + static_cast<long>(tokens[n]) * C;
    const S* g = dout + static_cast<long>(n) * C;
    for (int c = 0; c < C; ++c) d[c] += g[c];
  }
}

// ---------------------------------------------------------------- RMSNorm

// out (N, C) = x · w / sqrt(mean_c x² + eps); rstd (N) keeps 1 / sqrt(...) for the backward.
template <typename S>
void rmsnorm_forward(S* out, S* rstd, const S* x, const S* w, int N, int C, double eps) {
  for (int n = 0; n < N; ++n) {
    const S* xr = x + static_cast<long>(n) * C;
    S* o = out + static_cast<long>(n) * C;
    S ss = 0;
    for (int c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const S inv = S(1) / std::sqrt(ss / S(C) + S(eps));
    rstd[n] = inv;
    for (int c = 0; c < C; ++c) o[c] = xr[c] * inv * w[c];
  }
}

// dx (N, C) += d/dx, dw (C) += d/dw of out = rmsnorm(x, w), given dout (N, C):
//   g = dout ⊙ w;  dx = r·g − x·r³·(Σ_c g·x)/C;  dw = Σ_n dout ⊙ x·r.
template <typename S>
void rmsnorm_backward(S* dx, S* dw, const S* dout, const S* x, const S* rstd, const S* w, int N,
                      int C) {
  for (int n = 0; n < N; ++n) {
    const S* xr = x + static_cast<long>(n) * C;
    const S* go = dout + static_cast<long>(n) * C;
    S* dxr = dx + static_cast<long>(n) * C;
    const S r = rstd[n];
    S dot = 0;
    for (int c = 0; c < C; ++c) dot += go[c] * w[c] * xr[c];
    const S k = r * r * r * dot / S(C);
    for (int c = 0; c < C; ++c) {
      dxr[c] += r * go[c] * w[c] - k * xr[c];
      dw[c] += go[c] * xr[c] * r;
    }
  }
}

// ---------------------------------------------------------------- linear (the hot path)

// out (N, O) = x (N, I) · wᵀ, w (O, I) row-major (every Llama projection). `accumulate`: +=.
template <typename S>
void linear_forward(S* out, const S* x, const S* w, int N, int I, int O, int threads,
                    bool accumulate = false) {
  const int tiles = (N + kRowTile - 1) / kRowTile;
  Eigen::Map<const MatR<S>> wm(w, O, I);
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
  for (int t = 0; t < tiles; ++t) {
    const int n0 = t * kRowTile, rows = std::min(kRowTile, N - n0);
    Eigen::Map<const MatR<S>> xm(x + static_cast<long>(n0) * I, rows, I);
    Eigen::Map<MatR<S>> om(out + static_cast<long>(n0) * O, rows, O);
    if (accumulate) {
      om.noalias() += xm * wm.transpose();
    } else {
      om.noalias() = xm * wm.transpose();
    }
  }
}

// Backward of out = x · wᵀ given dout (N, O):
//   dx (N, I) = dout · w   (+= when accumulate_dx; skipped when dx is null)
//   dw (O, I) += doutᵀ · x (skipped when dw is null)
template <typename S>
void linear_backward(S* dx, S* dw, const S* dout, const S* x, const S* w, int N, int I, int O,
                     int threads, bool accumulate_dx) {
  Eigen::Map<const MatR<S>> wm(w, O, I);
  if (dx) {
    const int tiles = (N + kRowTile - 1) / kRowTile;
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int t = 0; t < tiles; ++t) {
      const int n0 = t * kRowTile, rows = std::min(kRowTile, N - n0);
      Eigen::Map<const MatR<S>> gm(dout + static_cast<long>(n0) * O, rows, O);
      Eigen::Map<MatR<S>> dxm(dx + static_cast<long>(n0) * I, rows, I);
      if (accumulate_dx) {
        dxm.noalias() += gm * wm;
      } else {
        dxm.noalias() = gm * wm;
      }
    }
  }
  if (dw) {
    // Tiles of dw's rows: each sums over all N rows in one product (fixed order).
    const int tiles = (O + kWeightTile - 1) / kWeightTile;
    Eigen::Map<const MatR<S>> xm(x, N, I);
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
    for (int t = 0; t < tiles; ++t) {
      const int o0 = t * kWeightTile, cols = std::min(kWeightTile, O - o0);
      Eigen::Map<const MatR<S>, 0, OStride> gm(dout + o0, N, cols, OStride(O));
      Eigen::Map<MatR<S>> dwm(dw + static_cast<long>(o0) * I, cols, I);
      dwm.noalias() += gm.transpose() * xm;
    }
  }
}

// Several weight gradients at once, dw (O, I) += doutᵀ (O, N) · x (N, I) for each job, in one
// parallel loop over (job, tile of 32 rows of dw): the same tiles and products as
// linear_backward's dw, so the same bits.
template <typename S>
struct WeightGradJob {
  S* dw;
  const S* dout;  // (N, O)
  const S* x;     // (N, I)
  int O, I;
};

template <typename S>
void linear_weight_grads(const std::vector<WeightGradJob<S>>& jobs, int N, int threads) {
  std::vector<std::pair<int, int>> tasks;  // (job, first row of dw)
  for (int j = 0; j < static_cast<int>(jobs.size()); ++j) {
    for (int o0 = 0; o0 < jobs[j].O; o0 += kWeightTile) tasks.emplace_back(j, o0);
  }
  const int n_tasks = static_cast<int>(tasks.size());
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && n_tasks > 1)
  for (int k = 0; k < n_tasks; ++k) {
    const WeightGradJob<S>& job = jobs[tasks[k].first];
    const int o0 = tasks[k].second, cols = std::min(kWeightTile, job.O - o0);
    Eigen::Map<const MatR<S>> xm(job.x, N, job.I);
    Eigen::Map<const MatR<S>, 0, OStride> gm(job.dout + o0, N, cols, OStride(job.O));
    Eigen::Map<MatR<S>> dwm(job.dw + static_cast<long>(o0) * job.I, cols, job.I);
    dwm.noalias() += gm.transpose() * xm;
  }
}

// ---------------------------------------------------------------- RoPE (Hugging Face `half`)

// cos, sin (T, D/2) of θ = t · theta^(-2i/D), computed in double as the engine does.
template <typename S>
void rope_tables(std::vector<S>& cos, std::vector<S>& sin, int T, int D, double theta) {
  const int half = D / 2;
  cos.resize(static_cast<long>(T) * half);
  sin.resize(static_cast<long>(T) * half);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double angle = t * std::pow(theta, -2.0 * i / D);
      cos[static_cast<long>(t) * half + i] = static_cast<S>(std::cos(angle));
      sin[static_cast<long>(t) * half + i] = static_cast<S>(std::sin(angle));
    }
  }
}

// x (N, heads*D), in place: dim i pairs with i + D/2 at position t = (row0 + n) % T (row0: the
// first row's index when x is a tile of a larger array):
//   (a, b) -> (a cos − b sin, b cos + a sin).
template <typename S>
void rope_forward(S* x, const S* cos, const S* sin, int N, int T, int heads, int D, int row0 = 0) {
  const int half = D / 2;
  for (int n = 0; n < N; ++n) {
    const S* c = cos + static_cast<long>((row0 + n) % T) * half;
    const S* s = sin + static_cast<long>((row0 + n) % T) * half;
    for (int h = 0; h < heads; ++h) {
      S* v = x + (static_cast<long>(n) * heads + h) * D;
      for (int i = 0; i < half; ++i) {
        const S a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

// dx (N, heads*D), in place: the transposed rotation, (da, db) = (dA cos + dB sin, dB cos − dA
// sin).
template <typename S>
void rope_backward(S* dx, const S* cos, const S* sin, int N, int T, int heads, int D,
                   int row0 = 0) {
  const int half = D / 2;
  for (int n = 0; n < N; ++n) {
    const S* c = cos + static_cast<long>((row0 + n) % T) * half;
    const S* s = sin + static_cast<long>((row0 + n) % T) * half;
    for (int h = 0; h < heads; ++h) {
      S* v = dx + (static_cast<long>(n) * heads + h) * D;
      for (int i = 0; i < half; ++i) {
        const S da = v[i], db = v[i + half];
        v[i] = da * c[i] + db * s[i];
        v[i + half] = db * c[i] - da * s[i];
      }
    }
  }
}

// ---------------------------------------------------------------- attention

// For batch row b, query head h (KV head g = h / (H / H_kv)), query t and key j of the set (§2):
//   probs[b,h,t,j] = softmax_j(q_t · k_j / √D) over j ∈ S(t), 0 outside it
//   out_t = Σ_j probs[b,h,t,j] v_j                          (0 when S(t) is empty)
// out, q (N, H*D) (q rotated); k, v (N, H_kv*D) (k rotated); probs (B, H, T, T).
template <typename S>
void attention_forward(S* out, S* probs, const S* q, const S* k, const S* v, int B, int T, int H,
                       int H_kv, int D, AttentionSet set, int threads) {
  const int group = H / H_kv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D));
  const S neg_inf = -std::numeric_limits<S>::infinity();
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1)
  for (int bh = 0; bh < B * H; ++bh) {
    const int b = bh / H, h = bh % H, g = h / group;
    const long row0 = static_cast<long>(b) * T;
    Eigen::Map<const MatR<S>, 0, OStride> qh(q + row0 * H * D + h * D, T, D, OStride(H * D));
    Eigen::Map<const MatR<S>, 0, OStride> kh(k + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
    Eigen::Map<const MatR<S>, 0, OStride> vh(v + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
    Eigen::Map<MatR<S>, 0, OStride> oh(out + row0 * H * D + h * D, T, D, OStride(H * D));
    Eigen::Map<MatR<S>> p(probs + static_cast<long>(bh) * T * T, T, T);  // (T, T)
    p.noalias() = (qh * kh.transpose()) * scale;
    for (int t = 0; t < T; ++t) {
      S* row = p.row(t).data();
      S mx = neg_inf;
      for (int j = 0; j < T; ++j) {
        if (!set.allows(t, j)) row[j] = neg_inf;
        mx = std::max(mx, row[j]);
      }
      if (mx == neg_inf) {  // empty set: no probability anywhere, output 0
        std::fill(row, row + T, S(0));
        continue;
      }
      Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>> a(row, T);
      a = (a - mx).exp();  // exp(-inf) = 0; Eigen's vectorised exp
      a *= S(1) / a.sum();
    }
    oh.noalias() = p * vh;
  }
}

// Backward of attention_forward given dout (N, H*D):
//   dq (N, H*D) = (written);  dk, dv (N, H_kv*D) += (skipped when null: constant K/V).
//   dP = dO · Vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP));  dQ = dS · K / √D;  dK += dSᵀ · Q / √D;
//   dV += Pᵀ · dO.
// Split across threads by (batch row, KV head): the heads of a group add into the same dk, dv
// rows in a fixed order.
template <typename S>
void attention_backward(S* dq, S* dk, S* dv, const S* dout, const S* probs, const S* q, const S* k,
                        const S* v, int B, int T, int H, int H_kv, int D, int threads) {
  const int group = H / H_kv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D));
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1)
  for (int bg = 0; bg < B * H_kv; ++bg) {
    const int b = bg / H_kv, g = bg % H_kv;
    const long row0 = static_cast<long>(b) * T;
    Eigen::Map<const MatR<S>, 0, OStride> kh(k + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
    Eigen::Map<const MatR<S>, 0, OStride> vh(v + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
    MatR<S> dS(T, T);  // (T, T)
    for (int h = g * group; h < (g + 1) * group; ++h) {
      Eigen::Map<const MatR<S>> p(probs + (static_cast<long>(b) * H + h) * T * T, T, T);
      Eigen::Map<const MatR<S>, 0, OStride> qh(q + row0 * H * D + h * D, T, D, OStride(H * D));
      Eigen::Map<const MatR<S>, 0, OStride> doh(dout + row0 * H * D + h * D, T, D, OStride(H * D));
      Eigen::Map<MatR<S>, 0, OStride> dqh(dq + row0 * H * D + h * D, T, D, OStride(H * D));
      dS.noalias() = doh * vh.transpose();  // dP
      for (int t = 0; t < T; ++t) {
        S dot = 0;
        for (int j = 0; j < T; ++j) dot += p(t, j) * dS(t, j);
        for (int j = 0; j < T; ++j) dS(t, j) = p(t, j) * (dS(t, j) - dot);
      }
      dqh.noalias() = (dS * kh) * scale;
      if (dk) {
        Eigen::Map<MatR<S>, 0, OStride> dkh(dk + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
        Eigen::Map<MatR<S>, 0, OStride> dvh(dv + row0 * H_kv * D + g * D, T, D, OStride(H_kv * D));
        dkh.noalias() += (dS.transpose() * qh) * scale;
        dvh.noalias() += p.transpose() * doh;
      }
    }
  }
}

// ---------------------------------------------------------------- SwiGLU

// out (n) = silu(gate) ⊙ up, silu(z) = z / (1 + e^-z).
template <typename S>
void swiglu_forward(S* out, const S* gate, const S* up, long n) {
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  Eigen::Map<const Arr> g(gate, n), u(up, n);
  Eigen::Map<Arr>(out, n) = g / (S(1) + (-g).exp()) * u;  // as reference/ops.hpp swiglu
}

// dgate, dup (n) = (written) from dout (n): σ = 1/(1+e^-g), silu' = σ·(1 + g·(1−σ)).
template <typename S>
void swiglu_backward(S* dgate, S* dup, const S* dout, const S* gate, const S* up, long n) {
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  Eigen::Map<const Arr> g(gate, n), u(up, n), d(dout, n);
  const Arr sig = S(1) / (S(1) + (-g).exp());
  Eigen::Map<Arr>(dgate, n) = d * u * sig * (S(1) + g * (S(1) - sig));
  Eigen::Map<Arr>(dup, n) = d * g * sig;
}

// ---------------------------------------------------------------- cross-entropy

// Mean over N rows of −log softmax(logits)[target]; returns Σ_n NLL_n (double). When `grad`,
// logits (N, V) is overwritten, in place, by d(scale · Σ NLL)/d logits = scale·(softmax − onehot).
template <typename S>
double cross_entropy(S* logits, const int* targets, int N, int V, bool grad, double scale,
                     int threads) {
  using ArrD = Eigen::Array<double, Eigen::Dynamic, 1>;
  std::vector<double> nll(N);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    ArrD z(V);  // one row in double, per thread (Eigen's vectorised exp)
#pragma omp for schedule(dynamic, 64)
    for (int n = 0; n < N; ++n) {
      Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>> row(logits + static_cast<long>(n) * V, V);
      z = row.template cast<double>();
      const double mx = z.maxCoeff();
      const double lse = mx + std::log((z - mx).exp().sum());
      nll[n] = lse - z[targets[n]];
      if (grad) {
        row = ((z - lse).exp() * scale).template cast<S>();
        row[targets[n]] -= static_cast<S>(scale);
      }
    }
  }
  double total = 0;
  for (int n = 0; n < N; ++n) total += nll[n];
  return total;
}

}  // namespace kvlab::ref::train
