// Token embedding on the GPU, checked against ref::CpuBackend::embed (a row copy) by
// tests/gpu/test_embed.cpp. Host-only declarations; the kernel lives in embed.cu.
//
//   x (T, C) = rows tokens[t] of table (V, C).
//
// Token ids are DEVICE ints (the CUDA backend stages the engine's host ids into a device buffer
// first, one copy of T ints). An id outside [0, V) is never read from: its row of x becomes NaN,
// so the mistake shows in every later number instead of reading past the table.
// One thread block per row, threads striding over C (float4 when C % 4 == 0 and both pointers are
// 16-byte aligned).
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: x (T*C), table (V*C), tokens (T). Enqueued on `stream`, returns without
// waiting. T = 0 does nothing; T < 0, C < 1 or V < 1 throw kvlab::Error before any CUDA call.
void embed(float* x, const float* table, const int* tokens, int T, int C, int V,
           cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
