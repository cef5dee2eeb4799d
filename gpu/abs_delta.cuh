// LCKV's convergence statistics on the GPU (reference/lckv.cpp's delta()), checked against a
// double loop by tests/gpu/test_abs_delta.cpp. Host-only declarations; the kernels live in
// abs_delta.cu.
//
//   max_diff = max_i |a_i - b_i|,  sum_diff = Σ_i |a_i - b_i|,  max_a = max_i |a_i|,
//   each difference in double (as the reference); b = null: |a_i| itself (max |a|).
//
// Two kernels, deterministic: up to kAbsDeltaBlocks blocks each reduce a grid stride of the
// arrays into a partial (max, sum, max) in the workspace, then one block combines the partials in
// a fixed order. Unlike the reference's std::max (which skips a NaN), a NaN anywhere makes the
// maxima NaN, so a diverging pass cannot look converged.
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

constexpr int kAbsDeltaBlocks = 1024;
// The workspace's size in doubles.
constexpr int kAbsDeltaWorkspace = 3 * kAbsDeltaBlocks;

struct AbsDelta {
  double max_diff = 0, sum_diff = 0, max_a = 0;
};

// Device pointers: out (3 doubles: max_diff, sum_diff, max_a), a, b (n floats; b may be null),
// workspace (kAbsDeltaWorkspace doubles). Enqueued on `stream`. n = 0 gives zeros; n < 0 throws
// kvlab::Error before any CUDA call.
void abs_delta(double* out, const float* a, const float* b, long n, double* workspace,
               cudaStream_t stream = nullptr);

// Host convenience: allocates the workspace and the output, runs abs_delta and waits.
AbsDelta abs_delta_host(const float* a, const float* b, long n, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
