// Residual add: elementwise, grid-stride. Contract: gpu/add.cuh. CPU truth: CpuBackend::add.
#include <string>

#include "core/error.hpp"
#include "gpu/add.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void add_kernel(float* x, const float* y, long n) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

}  // namespace

void add(float* x, const float* y, long n, cudaStream_t stream) {
  if (n < 0) fail("add n", std::to_string(n), "an element count >= 0");
  if (n == 0) return;
  add_kernel<<<detail::grid_for(n, kBlock), kBlock, 0, stream>>>(x, y, n);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
