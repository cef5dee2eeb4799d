// Linear layers on the GPU through cuBLAS, checked against ref::linear (reference/linear.hpp) by
// tests/gpu/test_linear.cpp. Plain C++ (no kernels: one cuBLAS call), so g++ compiles linear.cpp.
//
//   out (T, N) = x (T, K) · Wᵀ, W (N, K) row-major, as every Llama projection.
//
// The row-major trick: cuBLAS is column-major, and a row-major (R, C) array is a column-major
// (C, R) one. So outᵀ (N, T) = W (N, K) · xᵀ (K, T) in column-major terms, where W is the
// column-major (K, N) array transposed (CUBLAS_OP_T, lda = K) and xᵀ is x as stored (CUBLAS_OP_N,
// ldb = K): one cublasSgemm(h, T, N, m = N, n = T, k = K, W, K, x, K, out, N). The handle's math
// mode is left at CUBLAS_DEFAULT_MATH (full float32; TF32 tensor cores only when asked for).
#pragma once

#include <cublas_v2.h>

namespace kvlab::gpu {

// Device pointers: out (T*N), x (T*K), w (N*K). Runs on the handle's stream (cublasSetStream),
// returns without waiting. T = 0 does nothing; T < 0, K < 1 or N < 1 throw kvlab::Error before any
// CUDA call; a cuBLAS failure throws kvlab::Error with cuBLAS's status name. `out` must not alias
// x or w.
void linear(cublasHandle_t handle, float* out, const float* x, const float* w, int T, int K, int N);

// cuBLAS's status as text: "CUBLAS_STATUS_NOT_INITIALIZED (cuBLAS: the library was not
// initialized)".
const char* cublas_status_text(cublasStatus_t s);

// Throws kvlab::Error naming `call` and the status unless it is CUBLAS_STATUS_SUCCESS.
void cublas_check(cublasStatus_t s, const char* call);

}  // namespace kvlab::gpu
