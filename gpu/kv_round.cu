// Rounding to f16/bf16 in place, ties to even. Contract: gpu/kv_round.cuh.
// CPU truth: ref::round_to_dtype (reference/kv_dtype.cpp).
#include <cuda_fp16.h>

#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"
#include "gpu/kv_round.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ float round_bf16(float x) {
  unsigned u = __float_as_uint(x);
  u += 0x7fffu + ((u >> 16) & 1u);
  return __uint_as_float(u & 0xffff0000u);
}

__device__ __forceinline__ float round_f16(float x) {
  return __half2float(__float2half_rn(x));
}

__global__ void round_kernel(float* x, long n, bool bf16) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    if (!isfinite(v)) continue;  // NaN and ±infinity unchanged, as the reference
    x[i] = bf16 ? round_bf16(v) : round_f16(v);
  }
}

}  // namespace

void round_to_half(float* x, long n, HalfFormat format, cudaStream_t stream) {
  if (n < 0) fail("round_to_half n", std::to_string(n), "an element count >= 0");
  if (n == 0) return;
  round_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, n,
                                                                   format == HalfFormat::bf16);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
