// Device helpers shared by the kernels: warp reductions and launch arithmetic. Unlike the other
// .cuh files of gpu/ (host-only declarations), this one holds __device__ code: include it from .cu
// files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kvlab::gpu::detail {

constexpr int kWarp = 32;

template <typename S>
__device__ __forceinline__ S warp_sum(S v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename S>
__device__ __forceinline__ S warp_max(S v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Blocks of `block` threads that cover n elements, at most `cap` (grid-stride loops do the rest).
inline unsigned grid_for(std::int64_t n, int block, std::int64_t cap = 65535) {
  const std::int64_t b = (n + block - 1) / block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace kvlab::gpu::detail
