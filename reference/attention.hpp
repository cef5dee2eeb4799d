// Attention with the attention sets of techniques.md §2, over cells that carry their positions.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

#include "reference/op_types.hpp"
#include "reference/ops.hpp"

namespace kvlab::ref {

// out (T, H*D): for each query row i and head h,
//   out_i = Σ_{j ∈ S(i)} softmax_j(q_i · k_j / √D) · v_j        (0 when S(i) is empty)
// q (T, H*D) rotated queries at positions qpos (T); k, v (N, H_kv*D) cells at positions kpos:
// (N) shared by every KV head, or (H_kv, N) when kpos_head_stride = N (H2O keeps different
// tokens per head).
// Query head h reads KV head h / (H / H_kv) (GQA). Heads are split across `threads`.
// probs (H, T, N), optional: receives the attention probabilities (0 outside the set).
// scores (H, T, N), optional: the scaled scores q·k/√D before the softmax, -inf outside the set.
template <typename S>
void attention(S* out, const S* q, const int* qpos, int T, const S* k, const S* v, const int* kpos,
               int N, int H, int H_kv, int D, AttentionSet set, int threads, S* probs = nullptr,
               int kpos_head_stride = 0, S* scores_out = nullptr) {
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const int group = H / H_kv;
  const S scale = S(1) / std::sqrt(static_cast<S>(D));
  const S neg_inf = -std::numeric_limits<S>::infinity();
  // Keys that no query of a block of rows can see are skipped (they would get probability 0
  // anyway); that needs both position lists ascending, which they are in kvlab's banks.
  const bool qsorted = std::is_sorted(qpos, qpos + T);
  constexpr int kRowBlock = 64;
  if (probs) std::fill(probs, probs + static_cast<long>(H) * T * N, S(0));
  if (scores_out) std::fill(scores_out, scores_out + static_cast<long>(H) * T * N, neg_inf);
#pragma omp parallel for num_threads(std::max(1, std::min(threads, H))) \
    schedule(static) if (threads > 1 && H > 1)
  for (int h = 0; h < H; ++h) {
    const int g = h / group;
    const int* kp = kpos + static_cast<long>(g) * kpos_head_stride;  // this head's cell positions
    const bool sorted = qsorted && std::is_sorted(kp, kp + N);
    Mat scores;
    for (int i0 = 0; i0 < T; i0 += kRowBlock) {
      const int rows = std::min(kRowBlock, T - i0);
      int j0 = 0, j1 = N;  // the keys [j0, j1) some query of rows [i0, i0 + rows) may see
      if (sorted) {
        j1 = static_cast<int>(std::upper_bound(kp, kp + N, qpos[i0 + rows - 1]) - kp);
        if (set.window > 0) {
          j0 = static_cast<int>(std::upper_bound(kp, kp + N, qpos[i0] - set.window) - kp);
        }
        j0 = std::min(j0, j1);
      }
      const int n = j1 - j0;
      Eigen::Map<const Mat, 0, Stride> qh(q + static_cast<long>(i0) * H * D + h * D, rows, D,
                                          Stride(H * D));
      Eigen::Map<const Mat, 0, Stride> kh(k + static_cast<long>(j0) * H_kv * D + g * D, n, D,
                                          Stride(H_kv * D));
      Eigen::Map<const Mat, 0, Stride> vh(v + static_cast<long>(j0) * H_kv * D + g * D, n, D,
                                          Stride(H_kv * D));
      Eigen::Map<Mat, 0, Stride> oh(out + static_cast<long>(i0) * H * D + h * D, rows, D,
                                    Stride(H * D));
      scores.resize(rows, n);  // (rows, n)
      if (n > 0) scores.noalias() = (qh * kh.transpose()) * scale;
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < n; ++j) {
          if (!set.allows(qpos[i0 + i], kp[j0 + j])) scores(i, j) = neg_inf;
        }
        if (scores_out) {
          std::copy_n(scores.row(i).data(), n,
                      scores_out + (static_cast<long>(h) * T + i0 + i) * N + j0);
        }
        softmax_row(scores.row(i).data(), n);  // an empty set leaves a row of zeros
      }
      if (n > 0) {
        oh.noalias() = scores * vh;
      } else {
        oh.setZero();
      }
      if (probs) {
        for (int i = 0; i < rows; ++i) {
          std::copy_n(scores.row(i).data(), n,
                      probs + (static_cast<long>(h) * T + i0 + i) * N + j0);
        }
      }
    }
  }
}

}  // namespace kvlab::ref
