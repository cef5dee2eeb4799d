// H2O's per-KV-head attention sums on the GPU (techniques.md §5), checked against
// ref::accumulate_h2o's scores (reference/h2o.cpp) by tests/gpu/test_h2o_sums.cpp. Host-only
// declarations; the kernel lives in h2o_sums.cu.
//
//   out (H_kv, N) [+]= Σ_{h in group g} Σ_{i < T} probs[h, i, j], in double,
//   probs (H, T, N) attention probabilities; query head h belongs to KV head h / (H / H_kv).
//
// The layout is (H_kv, N), KV head major (the reference's bank keeps (N, H_kv): the caller
// transposes, or reads it as it is). One thread per (g, j) column: it walks the group's heads and
// the rows in the reference's order (h, then i), so the sums are deterministic; reads of a row of
// probs are coalesced across j. (The counts, how many rows could see a cell, need no probabilities
// and stay on the host.)
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: out (H_kv*N doubles), probs (H*T*N floats). `accumulate`: add to out, else
// overwrite it. Enqueued on `stream`. T = 0 or N = 0 writes zeros (or adds nothing); negative
// sizes, H < 1, H_kv < 1 or H not a multiple of H_kv throw kvlab::Error before any CUDA call.
void h2o_column_sums(double* out, const float* probs, int H, int T, int N, int H_kv,
                     bool accumulate, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
