// Linear layers through cuBLAS (row-major trick). Contract: gpu/linear.hpp.
// CPU truth: ref::linear (reference/linear.hpp).
#include "gpu/linear.hpp"

#include <string>

#include "core/error.hpp"

namespace kvlab::gpu {

const char* cublas_status_text(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED (no handle, or no device)";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED (out of memory)";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE (a bad argument)";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH (not on this device)";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED (a kernel failed)";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
    default:
      break;
  }
  return "an unknown cuBLAS status";
}

void cublas_check(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string(call) + " failed: " + cublas_status_text(s));
}

void linear(cublasHandle_t handle, float* out, const float* x, const float* w, int T, int K,
            int N) {
  if (T < 0) fail("linear T", std::to_string(T), "a row count >= 0");
  if (K < 1) fail("linear K", std::to_string(K), "an input width >= 1");
  if (N < 1) fail("linear N", std::to_string(N), "an output width >= 1");
  if (T == 0) return;
  if (handle == nullptr) fail("linear handle", "null", "a cuBLAS handle (cublasCreate)");
  const float one = 1.0f, zero = 0.0f;
  cublas_check(
      cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, w, K, x, K, &zero, out, N),
      "cublasSgemm");
}

}  // namespace kvlab::gpu
