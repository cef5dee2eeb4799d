// SwiGLU: elementwise, grid-stride. Contract: gpu/swiglu.cuh. CPU truth: ref::swiglu.
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"
#include "gpu/swiglu.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void swiglu_kernel(float* gate, const float* up, long n) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

void swiglu(float* gate, const float* up, long n, cudaStream_t stream) {
  if (n < 0) fail("swiglu n", std::to_string(n), "an element count >= 0");
  if (n == 0) return;
  swiglu_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(gate, up, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
