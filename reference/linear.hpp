// out (T, N) = x (T, K) · Wᵀ, W (N, K) row-major, as in every Llama projection.
// One row (decode): bound by reading W from memory. A matrix-vector product (float32: one row
// of W after the other, gemv_rows below; float64: Eigen's) does runs of 16-row units of W that
// the threads claim as they go (gemv_group below), so every output is computed the same way
// whatever the thread count, and a core that is slow for a moment does not
// hold up the other. Several products of one input (a layer's Q, K, V; the MLP's gate and up)
// share one parallel region: linears().
// Many rows (prefill): a matrix product, bound by arithmetic: OpenBLAS's when the build has it
// (on its OpenMP threads), else Eigen's, split across threads by blocks of W's rows.
#pragma once

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <type_traits>

#include "reference/backend.hpp"

#ifdef KVLAB_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace kvlab::ref {

namespace detail {

// out[n0, n1) = W[n0, n1) · x: rows of one decode product, float64: Eigen's row-major GEMV.
template <typename S>
void gemv_rows(S* out, const S* x, const S* w, int K, int n0, int n1) {
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;
  Eigen::Map<const Mat> wm(w + static_cast<long>(n0) * K, n1 - n0, K);
  Eigen::Map<const Vec> xm(x, K);
  Eigen::Map<Vec> om(out + n0, n1 - n0);
  om.noalias() = wm * xm;  // one dot product per row of W (Eigen's row-major GEMV)
}

// Sixteen floats: GCC's vector extension, one AVX-512 register where the CPU has it, two AVX or
// four SSE registers otherwise; the arithmetic is lane by lane, so the bits do not depend on which.
using F16 = float __attribute__((vector_size(64)));

inline F16 load16(const float* p) {
  F16 v;
  __builtin_memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}

// The 16 lanes summed as a fixed tree (8 + 8, 4 + 4, 2 + 2, 1 + 1).
inline float sum16(F16 v) {
  float h[16];
  __builtin_memcpy(h, &v, sizeof h);
  for (int w = 8; w >= 1; w /= 2) {
    for (int i = 0; i < w; ++i) h[i] += h[i + w];
  }
  return h[0];
}

// Float32: one row of W at a time, front to back, so the whole product reads W as one sequential
// stream (Eigen's kernel reads 8 rows side by side: 8 streams, which one core's prefetchers follow
// less well: ~1.2x slower at one thread, measured in docs/performance.md). Each row is 4 x 16
// lanes of partial sums over 64-value steps, then 16-value steps, then the last K mod 16 values
// one by one; the order is fixed per row, so every output has the same bits however the rows are
// shared out between threads.
inline void gemv_rows(float* out, const float* x, const float* w, int K, int n0, int n1) {
  for (int n = n0; n < n1; ++n) {
    const float* row = w + static_cast<long>(n) * K;
    F16 a0{}, a1{}, a2{}, a3{};
    int k = 0;
    for (; k + 64 <= K; k += 64) {
      a0 += load16(row + k) * load16(x + k);
      a1 += load16(row + k + 16) * load16(x + k + 16);
      a2 += load16(row + k + 32) * load16(x + k + 32);
      a3 += load16(row + k + 48) * load16(x + k + 48);
    }
    for (; k + 16 <= K; k += 16) a0 += load16(row + k) * load16(x + k);
    float s = sum16((a0 + a1) + (a2 + a3));
    for (; k < K; ++k) s += row[k] * x[k];
    out[n] = s;
  }
}

// outs[i].out (1, N_i) = x (1, K) · W_iᵀ for every i, in one parallel region.
// The work is cut into units of 16 rows (Eigen's kernel does rows in groups of 8, 4, 2, 1 from
// the start of each call, so calls that start on a multiple of 16 compute every row alike). Each
// thread claims a run of units at a time, guided: half the remaining share, shrinking to one unit
// at the end, so a thread that got less of the core keeps the others busy rather than waiting.
template <typename S>
void gemv_group(const LinearOut<S>* outs, int n, const S* x, int K, int threads) {
  constexpr int kUnit = 16;
  int first[8 + 1];  // first[i]: outs[i]'s first unit
  int total = 0;
  for (int i = 0; i < n; ++i) {
    first[i] = total;
    total += (outs[i].N + kUnit - 1) / kUnit;
  }
  first[n] = total;
  // Units [u0, u1), split where one product ends and the next begins.
  auto run = [&](int u0, int u1) {
    int i = 0;
    while (u0 >= first[i + 1]) ++i;
    while (u0 < u1) {
      const int end = std::min(u1, first[i + 1]);
      gemv_rows(outs[i].out, x, outs[i].w, K, (u0 - first[i]) * kUnit,
                std::min(outs[i].N, (end - first[i]) * kUnit));
      u0 = end;
      ++i;
    }
  };
  // Below about 64 KiB of W a second thread costs more than it saves.
  const long bytes = static_cast<long>(total) * kUnit * K * static_cast<long>(sizeof(S));
  const int team = bytes < 65536 ? 1 : std::max(1, std::min(threads, total));
  if (team == 1) {
    if (total > 0) run(0, total);
    return;
  }
  std::atomic<int> next{0};
#pragma omp parallel num_threads(team)
  {
    int u = next.load(std::memory_order_relaxed);
    while (true) {
      int take = 0;
      do {
        const int left = total - u;
        if (left <= 0) break;
        take = std::max(1, left / (2 * team));
      } while (!next.compare_exchange_weak(u, u + take, std::memory_order_relaxed));
      if (u >= total) break;
      run(u, u + take);
      u = next.load(std::memory_order_relaxed);
    }
  }
}

}  // namespace detail

template <typename S>
void linear(S* out, const S* x, const S* w, int T, int K, int N, int threads) {
  if (T == 1) {
    const LinearOut<S> one{out, w, N};
    detail::gemv_group(&one, 1, x, K, threads);
    return;
  }
#ifdef KVLAB_HAVE_OPENBLAS
  // OpenBLAS's thread count is process-wide: set it only when this call needs another.
  if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
  if constexpr (std::is_same_v<S, float>) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, w, K, 0.0f, out, N);
  } else {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0, x, K, w, K, 0.0, out, N);
  }
#else
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const int blocks = std::max(1, std::min(threads, N / 16));
  int chunk = (N + blocks - 1) / blocks;
  chunk = (chunk + 15) / 16 * 16;
#pragma omp parallel for num_threads(blocks) schedule(static) if (blocks > 1)
  for (int b = 0; b < blocks; ++b) {
    const int n0 = b * chunk, n1 = std::min(N, n0 + chunk);
    if (n0 >= n1) continue;
    Eigen::Map<const Mat> xm(x, T, K);
    Eigen::Map<const Mat> wm(w + static_cast<long>(n0) * K, n1 - n0, K);
    Eigen::Map<Mat, 0, Stride> om(out + n0, T, n1 - n0, Stride(N));
    om.noalias() = xm * wm.transpose();
  }
#endif
}

// Several products of the same x (T, K), n ≤ 8: each output equals linear()'s bit for bit.
// Decode runs them in one parallel region (one fork and join instead of n); prefill's matrix
// products are each large enough to use every thread alone.
template <typename S>
void linears(const LinearOut<S>* outs, int n, const S* x, int T, int K, int threads) {
  if (T == 1 && n <= 8) {
    detail::gemv_group(outs, n, x, K, threads);
    return;
  }
  for (int i = 0; i < n; ++i) linear(outs[i].out, x, outs[i].w, T, K, outs[i].N, threads);
}

}  // namespace kvlab::ref
