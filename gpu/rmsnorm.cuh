// RMSNorm forward on the GPU, checked against kvlab::ref::rmsnorm (reference/ops.hpp) by
// tests/gpu/test_rmsnorm.cpp. This header declares host functions only (no kernels), so plain C++
// may include it; the kernel lives in rmsnorm.cu.
//
//   out (T, C) = x (T, C) · w (C) / sqrt(mean_c x² + eps), row by row.
//
// Layout: contiguous, row-major (legend in core/dims.hpp). One thread block per row; each thread
// strides over the row's C elements, squares are summed in the storage type (float or double),
// reduced by warp shuffles and then across warps through shared memory. Any C >= 1 works.
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: out, x (T*C elements) and w (C elements) are all GPU global memory. `out` may
// alias `x` (in place). Enqueued on `stream` and returns without waiting; a bad launch throws
// kvlab::Error. `block` is the threads per block, a multiple of 32 in [32, 1024], or 0 for
// rmsnorm_default_block(C). T = 0 does nothing; T < 0, C < 1 or eps < 0 throw kvlab::Error.
void rmsnorm(float* out, const float* x, const float* w, int T, int C, double eps, int block = 0,
             cudaStream_t stream = nullptr);
void rmsnorm(double* out, const double* x, const double* w, int T, int C, double eps, int block = 0,
             cudaStream_t stream = nullptr);

// Host pointers, for convenience: copies x and w to the device, runs rmsnorm above, copies the
// result into `out` and waits. Allocates and frees device memory on every call.
void rmsnorm_host(float* out, const float* x, const float* w, int T, int C, double eps);
void rmsnorm_host(double* out, const double* x, const double* w, int T, int C, double eps);

// The block size chosen when `block` is 0: C rounded up to a whole warp, at most 256 threads.
int rmsnorm_default_block(int C);

}  // namespace kvlab::gpu
