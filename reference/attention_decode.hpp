// Decode attention, the CPU backend's fast path for one query row in float32 (attention.hpp is the
// reference it is tested against: tests/reference/test_attention_decode.cpp).
//
// The reference works head by head, so each head reads its D-wide slice of every cell: strided
// reads that run at about half the memory bandwidth the projections get. Here the cells are
// walked in order, all heads at each cell, so K and V stream from memory row after row; the
// softmax is exact (two passes: scores, then the maximum, then weights):
//   1. cells are cut into fixed blocks of kBlock; threads claim blocks. For every cell j of a
//      block and every head h: s[h, j] = q_h · k_j / √D, or -inf outside the attention set;
//   2. m_h = max_j s[h, j];
//   3. per block: p[h, j] = exp(s[h, j] - m_h) (exactly 0 outside the set), the block's sums
//      l[b, h] = Σ_j p[h, j] and partial outputs o[b, h] = Σ_j p[h, j] v_j;
//   4. out_h = (Σ_b o[b, h]) / (Σ_b l[b, h]), blocks summed in order (0 for an empty set).
// The blocks do not depend on the thread count and are summed in a fixed order, and no sum depends
// on where a buffer happens to start (dot products in 16 fixed lanes, rows of scores aligned), so
// every run and every thread count gives the same bits. Probabilities and scores are written when
// asked for (telemetry, H2O), from the same numbers, so watching never changes a result.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "reference/backend.hpp"
#include "reference/buffer.hpp"

namespace kvlab::ref {

namespace detail {

// Σ_d a[d] b[d] in 16 lanes (lane l takes d ≡ l mod 16), then the lanes pairwise: the same order
// whatever the alignment of a and b and however the compiler vectorises it.
inline float dot16(const float* a, const float* b, int n) {
  float acc[16] = {};
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    for (int l = 0; l < 16; ++l) acc[l] += a[d + l] * b[d + l];
  }
  for (int l = 0; d + l < n; ++l) acc[l] += a[d + l] * b[d + l];
  for (int w = 8; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  }
  return acc[0];
}

}  // namespace detail

inline void attention_decode(const AttentionArgs<float>& a, int threads) {
  constexpr int kBlock = 128;
  const int N = a.N, H = a.H, D = a.D, group = a.H / a.H_kv;
  const long row = static_cast<long>(a.H_kv) * D;  // floats per cell of K and of V
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int qp = a.qpos[0];
  const int blocks = (N + kBlock - 1) / kBlock;
  const long Np = (N + 15) / 16 * 16;                 // each head's row of s starts 64-byte aligned
  Buffer<float> s(static_cast<std::size_t>(H) * Np);  // (H, Np) scores, then p
  std::vector<float> part(static_cast<std::size_t>(blocks) * H * D);  // (blocks, H, D)
  std::vector<float> sums(static_cast<std::size_t>(blocks) * H);      // (blocks, H)
  std::vector<float> mx(H, neg_inf);                                  // (H)

  // Runs f(b) for every block b, the blocks claimed by `threads` threads.
  const int team = std::max(1, std::min(threads, blocks));
  auto for_blocks = [&](auto f) {
    if (team == 1) {
      for (int b = 0; b < blocks; ++b) f(b);
      return;
    }
    std::atomic<int> next{0};
#pragma omp parallel num_threads(team)
    for (int b = next.fetch_add(1); b < blocks; b = next.fetch_add(1)) f(b);
  };

  // 1. Scores, cell by cell.
  for_blocks([&](int b) {
    const int j0 = b * kBlock, j1 = std::min(N, j0 + kBlock);
    for (int j = j0; j < j1; ++j) {
      const float* kj = a.k + j * row;
      for (int h = 0; h < H; ++h) {
        const int g = h / group;
        const int kp = a.kpos[static_cast<long>(g) * a.kpos_head_stride + j];
        s[h * Np + j] = a.set.allows(qp, kp) ? detail::dot16(a.q + static_cast<long>(h) * D,
                                                             kj + static_cast<long>(g) * D, D) *
                                                   scale
                                             : neg_inf;
      }
    }
  });
  if (a.scores) {
    for (int h = 0; h < H; ++h)
      std::copy_n(s.data() + h * Np, N, a.scores + static_cast<long>(h) * N);
  }

  // 2. The maximum of each head.
  for (int h = 0; h < H; ++h) {
    const float* sh = s.data() + h * Np;
    for (int j = 0; j < N; ++j) mx[h] = std::max(mx[h], sh[j]);
  }

  // 3. Weights and partial outputs, block by block, V cell by cell.
  for_blocks([&](int b) {
    const int j0 = b * kBlock, j1 = std::min(N, j0 + kBlock), n = j1 - j0;
    float* o = part.data() + static_cast<long>(b) * H * D;
    std::fill(o, o + static_cast<long>(H) * D, 0.0f);
    for (int h = 0; h < H; ++h) {
      // An aligned start (j0 is a multiple of kBlock): the same elements take Eigen's vector exp
      // in every run.
      // Cells outside the set give exactly 0 (an empty set: all of them).
      Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64> p(s.data() + h * Np + j0, n);
      p = (p == neg_inf).select(Eigen::ArrayXf::Zero(n), (p - mx[h]).exp());
      float l = 0;
      for (int j = 0; j < n; ++j) l += p[j];  // in order
      sums[static_cast<long>(b) * H + h] = l;
    }
    for (int j = j0; j < j1; ++j) {
      const float* vj = a.v + j * row;
      for (int h = 0; h < H; ++h) {
        const float w = s[h * Np + j];
        if (w == 0.0f) continue;
        const float* v = vj + static_cast<long>(h / group) * D;
        float* oh = o + static_cast<long>(h) * D;
#pragma omp simd
        for (int d = 0; d < D; ++d) oh[d] += w * v[d];
      }
    }
  });

  // 4. Blocks summed in order.
  for (int h = 0; h < H; ++h) {
    float l = 0;
    for (int b = 0; b < blocks; ++b) l += sums[static_cast<long>(b) * H + h];
    const float inv = l > 0 ? 1.0f / l : 0.0f;  // an empty attention set: out = 0, p = 0
    float* out = a.out + static_cast<long>(h) * D;
    std::fill(out, out + D, 0.0f);
    for (int b = 0; b < blocks && l > 0; ++b) {
      const float* o = part.data() + (static_cast<long>(b) * H + h) * D;
      for (int d = 0; d < D; ++d) out[d] += o[d];
    }
    for (int d = 0; d < D; ++d) out[d] *= inv;
    if (a.probs) {
      const float* p = s.data() + h * Np;
      for (int j = 0; j < N; ++j) a.probs[static_cast<long>(h) * N + j] = p[j] * inv;
    }
  }
}

}  // namespace kvlab::ref
