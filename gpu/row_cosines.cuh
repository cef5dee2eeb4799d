// Row cosines on the GPU (SqueezeAttention's layer importance, techniques.md §6), checked against
// ref::CpuBackend::row_cosines by tests/gpu/test_row_cosines.cpp. Host-only declarations; the
// kernel lives in row_cosines.cu.
//
//   out (T) = cos(a_t, b_t) of rows of a, b (T, C), in double; each norm clamped to at least 1e-8
//   as torch.nn.functional.cosine_similarity (a zero row gives 0, not 0/0).
//
// One thread block per row: each thread sums a·b, a², b² in double over a stride of the row, then
// warp shuffles and shared memory reduce the three sums.
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: out (T doubles), a, b (T*C floats). Enqueued on `stream`. T = 0 does nothing;
// T < 0 or C < 1 throw kvlab::Error before any CUDA call.
void row_cosines(double* out, const float* a, const float* b, int T, int C,
                 cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
