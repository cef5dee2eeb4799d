// The residual add on the GPU, checked against ref::CpuBackend::add by tests/gpu/test_add.cpp.
// Host-only declarations; the kernel lives in add.cu.
//
//   x (n) += y (n).
//
// A grid-stride loop, one element per thread per step: exact (one float addition per element).
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: x, y (n); y may alias x (doubling). Enqueued on `stream`. n = 0 does nothing,
// n < 0 throws kvlab::Error before any CUDA call.
void add(float* x, const float* y, long n, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
