// H2O's per-KV-head attention sums on the GPU (techniques.md §5), checked against
// ref::accumulate_h2o's scores (reference/h2o.cpp) by tests/gpu/test_h2o_sums.cpp. Host-only
// declarations; the kernel lives in h2o_sums.cu.
//
//   out[g, j] [+]= Σ_{h in group g} Σ_{i < T} probs[h, i, j], in double,
//   probs (H, T, N) attention probabilities; query head h belongs to KV head h / (H / H_kv).
//
// out is (H_kv, N) (H2oLayout::head_major) or (N, H_kv) (::cell_major, the reference bank's
// layout: Backend::h2o_scores). One thread per (g, j): it adds the group's probabilities one at a
// time to the running value in the reference's order (h, then i), so accumulating into the
// reference's scores gives its bits exactly; reads of a row of probs are coalesced across j. (The
// counts, how many rows could see a cell, need no probabilities and stay on the host.)
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

enum class H2oLayout { head_major, cell_major };

// Device pointers: out (H_kv*N doubles, laid out as `layout`), probs (H*T*N floats).
// `accumulate`: add to out, else overwrite it. Enqueued on `stream`. T = 0 or N = 0 writes zeros
// (or adds nothing); negative sizes, H < 1, H_kv < 1 or H not a multiple of H_kv throw kvlab::Error
// before any CUDA call.
void h2o_column_sums(double* out, const float* probs, int H, int T, int N, int H_kv,
                     bool accumulate, H2oLayout layout = H2oLayout::head_major,
                     cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
