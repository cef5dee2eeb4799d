// SwiGLU on the GPU, checked against ref::swiglu (reference/ops.hpp) by tests/gpu/test_swiglu.cpp.
// Host-only declarations; the kernel lives in swiglu.cu.
//
//   gate (n) = silu(gate) ⊙ up (n), in place: silu(z) = z / (1 + e^-z).
//
// A grid-stride loop, one element per thread per step (expf: CUDA's accurate exp, 2 ulp).
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: gate, up (n). Enqueued on `stream`. n = 0 does nothing, n < 0 throws
// kvlab::Error before any CUDA call.
void swiglu(float* gate, const float* up, long n, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
