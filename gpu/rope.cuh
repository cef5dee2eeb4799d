// Rotary position embedding on the GPU, checked against ref::rope (reference/ops.hpp) by
// tests/gpu/test_rope.cpp. Host-only declarations; the kernel lives in rope.cu.
//
//   Every head of x (T, heads*D) is rotated in place by its row's position pos[t]: pairs (a, b)
//   become (a cos θ - b sin θ, b cos θ + a sin θ), θ = pos · theta^(-2i/D), i in [0, D/2).
//   RopePairing::half pairs i with i + D/2 (Hugging Face), ::interleaved 2i with 2i + 1 (Meta).
//
// As the reference: the frequency, the angle, its cosine and sine in double, then rounded to
// float; the rotation in float without fused multiply-adds, so only the last bit of a cosine or a
// sine can differ from the CPU's. One thread per (row, pair), looping over the heads.
#pragma once

#include <cuda_runtime_api.h>

#include "reference/op_types.hpp"

namespace kvlab::gpu {

// Device pointers: x (T*heads*D), pos (T) device ints. Enqueued on `stream`. T = 0 does nothing;
// T < 0, heads < 1, D < 2 or odd, theta <= 0 throw kvlab::Error before any CUDA call.
void rope(float* x, const int* pos, int T, int heads, int D, double theta,
          ref::RopePairing pairing = ref::RopePairing::half, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
