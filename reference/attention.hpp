// Attention with the attention sets of techniques.md §2, over cells that carry their positions.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

#include "reference/ops.hpp"

namespace kvlab::ref {

// Which keys a query may see (§2). `strict`: j < i (upward layers, or force_nodiag); otherwise
// j ≤ i. `window` > 0: additionally j > i - window (sliding layers).
struct AttentionSet {
  bool strict = false;
  int window = 0;

  bool allows(int query_pos, int key_pos) const {
    const bool causal = strict ? key_pos < query_pos : key_pos <= query_pos;
    return causal && (window <= 0 || key_pos > query_pos - window);
  }
};

// out (T, H*D): for each query row i and head h,
//   out_i = Σ_{j ∈ S(i)} softmax_j(q_i · k_j / √D) · v_j        (0 when S(i) is empty)
// q (T, H*D) rotated queries at positions qpos (T); k, v (N, H_kv*D) cells at positions kpos (N).
// Query head h reads KV head h / (H / H_kv) (GQA). Heads are split across `threads`.
// probs (H, T, N), optional: receives the attention probabilities (0 outside the set).
template <typename S>
void attention(S* out, const S* q, const int* qpos, int T, const S* k, const S* v, const int* kpos,
               int N, int H, int H_kv, int D, AttentionSet set, int threads, S* probs = nullptr) {
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const int group = H / H_kv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D));
  const S neg_inf = -std::numeric_limits<S>::infinity();
#pragma omp parallel for num_threads(std::max(1, std::min(threads, H))) \
    schedule(static) if (threads > 1 && H > 1)
  for (int h = 0; h < H; ++h) {
    const int g = h / group;
    Eigen::Map<const Mat, 0, Stride> qh(q + static_cast<long>(h) * D, T, D, Stride(H * D));
    Eigen::Map<const Mat, 0, Stride> kh(k + static_cast<long>(g) * D, N, D, Stride(H_kv * D));
    Eigen::Map<const Mat, 0, Stride> vh(v + static_cast<long>(g) * D, N, D, Stride(H_kv * D));
    Eigen::Map<Mat, 0, Stride> oh(out + static_cast<long>(h) * D, T, D, Stride(H * D));
    Mat scores(T, N);  // (T, N)
    if (N > 0) scores.noalias() = (qh * kh.transpose()) * scale;
    for (int i = 0; i < T; ++i) {
      for (int j = 0; j < N; ++j) {
        if (!set.allows(qpos[i], kpos[j])) scores(i, j) = neg_inf;
      }
      softmax_row(scores.row(i).data(), N);  // an empty set leaves a row of zeros
    }
    if (N > 0) {
      oh.noalias() = scores * vh;
    } else {
      oh.setZero();
    }
    if (probs)
      std::copy_n(scores.data(), static_cast<long>(T) * N, probs + static_cast<long>(h) * T * N);
  }
}

}  // namespace kvlab::ref
