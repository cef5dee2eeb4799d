// Row cosines in double: one block per row, three sums reduced by warp shuffles + shared memory.
// Contract: gpu/row_cosines.cuh. CPU truth: ref::CpuBackend::row_cosines.
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"
#include "gpu/row_cosines.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void row_cosines_kernel(double* out, const float* a, const float* b, int C) {
  using detail::kWarp;
  const long row = blockIdx.x;
  const float* ar = a + row * C;
  const float* br = b + row * C;
  double dot = 0, a2 = 0, b2 = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const double x = ar[c], y = br[c];
    dot += x * y;
    a2 += x * x;
    b2 += y * y;
  }
  dot = detail::warp_sum(dot);
  a2 = detail::warp_sum(a2);
  b2 = detail::warp_sum(b2);
  __shared__ double sums[3][kBlock / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) {
    sums[0][warp] = dot;
    sums[1][warp] = a2;
    sums[2][warp] = b2;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    dot = lane < warps ? sums[0][lane] : 0.0;
    a2 = lane < warps ? sums[1][lane] : 0.0;
    b2 = lane < warps ? sums[2][lane] : 0.0;
    dot = detail::warp_sum(dot);
    a2 = detail::warp_sum(a2);
    b2 = detail::warp_sum(b2);
    constexpr double eps = 1e-8;
    if (lane == 0) out[row] = dot / (fmax(sqrt(a2), eps) * fmax(sqrt(b2), eps));
  }
}

}  // namespace

void row_cosines(double* out, const float* a, const float* b, int T, int C, cudaStream_t stream) {
  if (T < 0) fail("row_cosines T", std::to_string(T), "a row count >= 0");
  if (C < 1) fail("row_cosines C", std::to_string(C), "a row width >= 1");
  if (T == 0) return;
  row_cosines_kernel<<<T, kBlock, 0, stream>>>(out, a, b, C);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
