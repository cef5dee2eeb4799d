// |a - b| statistics: per-block partials, then one block combines them in order.
// Contract: gpu/abs_delta.cuh. CPU truth: delta() in reference/lckv.cpp.
#include <string>

#include "core/error.hpp"
#include "gpu/abs_delta.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_common.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

// max that keeps a NaN from either side.
__device__ __forceinline__ double nan_max(double x, double y) {
  return (isnan(x) || x > y) ? x : y;
}

// Reduces (max, sum, max) over the block; thread 0 gets the result.
__device__ void block_reduce(double& m, double& s, double& ma) {
  using detail::kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, offset));
    s += __shfl_xor_sync(0xffffffffu, s, offset);
    ma = nan_max(ma, __shfl_xor_sync(0xffffffffu, ma, offset));
  }
  __shared__ double sh[3][kBlock / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) sh[0][warp] = m, sh[1][warp] = s, sh[2][warp] = ma;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    m = lane < warps ? sh[0][lane] : 0.0;
    s = lane < warps ? sh[1][lane] : 0.0;
    ma = lane < warps ? sh[2][lane] : 0.0;
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, offset));
      s += __shfl_xor_sync(0xffffffffu, s, offset);
      ma = nan_max(ma, __shfl_xor_sync(0xffffffffu, ma, offset));
    }
  }
}

__global__ void partial_kernel(double* part, const float* a, const float* b, long n) {
  double m = 0, s = 0, ma = 0;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const double x = a[i];
    const double d = fabs(b ? x - static_cast<double>(b[i]) : x);
    m = nan_max(m, d);
    s += d;
    ma = nan_max(ma, fabs(x));
  }
  block_reduce(m, s, ma);
  if (threadIdx.x == 0) {
    part[blockIdx.x] = m;
    part[kAbsDeltaBlocks + blockIdx.x] = s;
    part[2 * kAbsDeltaBlocks + blockIdx.x] = ma;
  }
}

__global__ void combine_kernel(double* out, const double* part, int blocks) {
  double m = 0, s = 0, ma = 0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    m = nan_max(m, part[b]);
    s += part[kAbsDeltaBlocks + b];
    ma = nan_max(ma, part[2 * kAbsDeltaBlocks + b]);
  }
  block_reduce(m, s, ma);
  if (threadIdx.x == 0) out[0] = m, out[1] = s, out[2] = ma;
}

}  // namespace

void abs_delta(double* out, const float* a, const float* b, long n, double* workspace,
               cudaStream_t stream) {
  if (n < 0) fail("abs_delta n", std::to_string(n), "an element count >= 0");
  const unsigned blocks = detail::grid_for(n, kBlock, kAbsDeltaBlocks);
  if (n > 0) {
    partial_kernel<<<blocks, kBlock, 0, stream>>>(workspace, a, b, n);
    CUDA_CHECK(cudaGetLastError());
  }
  combine_kernel<<<1, kBlock, 0, stream>>>(out, workspace, n > 0 ? static_cast<int>(blocks) : 0);
  CUDA_CHECK(cudaGetLastError());
}

AbsDelta abs_delta_host(const float* a, const float* b, long n, cudaStream_t stream) {
  if (n < 0) fail("abs_delta n", std::to_string(n), "an element count >= 0");
  DeviceBuffer<double> work(kAbsDeltaWorkspace), out(3);
  abs_delta(out.data(), a, b, n, work.data(), stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  double r[3];
  out.download(r, 3);
  return AbsDelta{r[0], r[1], r[2]};
}

}  // namespace kvlab::gpu
