// out (T, N) = x (T, K) · Wᵀ, W (N, K) row-major, as in every Llama projection.
// One row (decode): the output columns are split across threads, each a contiguous block of W's
// rows (a multiple of 16, so vector code paths do not depend on the thread count), and Eigen's
// matrix-vector product does each block: this step is bound by reading W from memory.
// Many rows (prefill): a matrix product, bound by arithmetic: OpenBLAS's when the build has it
// (on its OpenMP threads), else Eigen's, split the same way as above.
#pragma once

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <type_traits>

#ifdef KVLAB_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace kvlab::ref {

template <typename S>
void linear(S* out, const S* x, const S* w, int T, int K, int N, int threads) {
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
#ifdef KVLAB_HAVE_OPENBLAS
  if (T > 1) {
    // OpenBLAS's thread count is process-wide: set it only when this call needs another.
    if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
    if constexpr (std::is_same_v<S, float>) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, w, K, 0.0f, out, N);
    } else {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0, x, K, w, K, 0.0, out, N);
    }
    return;
  }
#endif
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
    if (T == 1) {
      // Matrix-vector: one dot product per row of W (Eigen's row-major GEMV).
      om.row(0).transpose().noalias() = wm * xm.row(0).transpose();
    } else {
      om.noalias() = xm * wm.transpose();
    }
  }
}

}  // namespace kvlab::ref
