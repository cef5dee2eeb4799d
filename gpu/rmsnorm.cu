// RMSNorm forward: one thread block per row, warp-shuffle + shared-memory reduction.
// Contract and layout: gpu/rmsnorm.cuh. CPU truth: kvlab::ref::rmsnorm (reference/ops.hpp).
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/rmsnorm.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxBlock = 1024;  // at most 32 warps, so one warp can reduce the per-warp sums

template <typename S>
__device__ S warp_sum(S v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// grid (T), block (multiple of 32, <= 1024). No __restrict__: out may alias x, which is safe
// because every element is read and then written by the same thread.
template <typename S>
__global__ void rmsnorm_kernel(S* out, const S* x, const S* w, int C, S eps) {
  const long row = blockIdx.x;
  const S* xr = x + row * C;  // (C)
  S* orow = out + row * C;    // (C)

  S ss = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];

  __shared__ S warp_sums[kMaxBlock / kWarp];
  __shared__ S inv_rms;
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  ss = warp_sum(ss);
  if (lane == 0) warp_sums[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    S total = lane < warps ? warp_sums[lane] : S(0);
    total = warp_sum(total);
    if (lane == 0) inv_rms = S(1) / sqrt(total / S(C) + eps);
  }
  __syncthreads();

  const S inv = inv_rms;
  for (int c = threadIdx.x; c < C; c += blockDim.x) orow[c] = xr[c] * inv * w[c];
}

void check_args(int T, int C, double eps, int block) {
  if (T < 0) fail("rmsnorm T", std::to_string(T), "a row count >= 0");
  if (C < 1) fail("rmsnorm C", std::to_string(C), "a row width >= 1");
  if (!(eps >= 0)) fail("rmsnorm eps", std::to_string(eps), "a number >= 0");
  if (block != 0 && (block < kWarp || block > kMaxBlock || block % kWarp != 0))
    fail("rmsnorm block", std::to_string(block), "0 (automatic) or a multiple of 32 in [32, 1024]");
}

template <typename S>
void launch(S* out, const S* x, const S* w, int T, int C, double eps, int block,
            cudaStream_t stream) {
  check_args(T, C, eps, block);
  if (T == 0) return;
  if (block == 0) block = rmsnorm_default_block(C);
  rmsnorm_kernel<S><<<T, block, 0, stream>>>(out, x, w, C, static_cast<S>(eps));
  CUDA_CHECK(cudaGetLastError());
}

template <typename S>
void launch_host(S* out, const S* x, const S* w, int T, int C, double eps) {
  check_args(T, C, eps, 0);
  if (T == 0) return;
  const std::size_t n = static_cast<std::size_t>(T) * static_cast<std::size_t>(C);
  DeviceBuffer<S> dx(n), dw(C);
  dx.upload(x, n);
  dw.upload(w, C);
  launch(dx.data(), dx.data(), dw.data(), T, C, eps, 0, nullptr);  // in place on the copy
  CUDA_CHECK(cudaStreamSynchronize(nullptr));  // surfaces errors raised while running
  dx.download(out, n);
}

}  // namespace

int rmsnorm_default_block(int C) {
  const int rounded = (C + kWarp - 1) / kWarp * kWarp;
  return rounded < kWarp ? kWarp : (rounded > 256 ? 256 : rounded);
}

void rmsnorm(float* out, const float* x, const float* w, int T, int C, double eps, int block,
             cudaStream_t stream) {
  launch(out, x, w, T, C, eps, block, stream);
}
void rmsnorm(double* out, const double* x, const double* w, int T, int C, double eps, int block,
             cudaStream_t stream) {
  launch(out, x, w, T, C, eps, block, stream);
}
void rmsnorm_host(float* out, const float* x, const float* w, int T, int C, double eps) {
  launch_host(out, x, w, T, C, eps);
}
void rmsnorm_host(double* out, const double* x, const double* w, int T, int C, double eps) {
  launch_host(out, x, w, T, C, eps);
}

}  // namespace kvlab::gpu
