// H2O column sums in double: one thread per (KV head, cell). Contract: gpu/h2o_sums.cuh.
// CPU truth: ref::accumulate_h2o (reference/h2o.cpp).
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"
#include "gpu/h2o_sums.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void h2o_sums_kernel(double* out, const float* probs, int T, int N, int H_kv, int group,
                                bool accumulate, bool cell_major) {
  const long total = static_cast<long>(H_kv) * N;
  for (long idx = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long>(gridDim.x) * blockDim.x) {
    const int g = static_cast<int>(idx / N), j = static_cast<int>(idx % N);
    const long at = cell_major ? static_cast<long>(j) * H_kv + g : idx;
    double s = accumulate ? out[at] : 0.0;
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const float* p = probs + static_cast<long>(h) * T * N + j;
      for (int i = 0; i < T; ++i) s += static_cast<double>(p[static_cast<long>(i) * N]);
    }
    out[at] = s;
  }
}

}  // namespace

void h2o_column_sums(double* out, const float* probs, int H, int T, int N, int H_kv,
                     bool accumulate, H2oLayout layout, cudaStream_t stream) {
  if (H < 1) fail("h2o_column_sums H", std::to_string(H), "a head count >= 1");
  if (H_kv < 1 || H % H_kv != 0)
    fail("h2o_column_sums H_kv", std::to_string(H_kv),
         "a KV head count >= 1 that divides H = " + std::to_string(H));
  if (T < 0) fail("h2o_column_sums T", std::to_string(T), "a row count >= 0");
  if (N < 0) fail("h2o_column_sums N", std::to_string(N), "a cell count >= 0");
  if (N == 0) return;
  const long total = static_cast<long>(H_kv) * N;
  h2o_sums_kernel<<<detail::grid_for(total, kBlock), kBlock, 0, stream>>>(
      out, probs, T, N, H_kv, H / H_kv, accumulate, layout == H2oLayout::cell_major);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
