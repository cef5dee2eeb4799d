// Checked CUDA runtime calls: CUDA_CHECK(call) throws kvlab::Error naming the file, the line, the
// call as written and CUDA's own description of the error. Plain C++: include from .cpp or .cu.
//
//   CUDA_CHECK(cudaMalloc(&p, bytes));
//   my_kernel<<<grid, block>>>(...);
//   CUDA_CHECK(cudaGetLastError());   // launch errors (bad configuration) surface here
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "core/error.hpp"

namespace kvlab::gpu::detail {

// "gpu/rmsnorm.cu:42: cudaMalloc(&p, n) failed: out of memory (cudaErrorMemoryAllocation)"
[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
  // A failed runtime call also sets the thread's last-error state; clear it so that a later
  // CUDA_CHECK(cudaGetLastError()) reports its own launch, not this stale error.
  (void)cudaGetLastError();
  throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call +
              " failed: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
}

inline void cuda_check(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) cuda_fail(err, call, file, line);
}

}  // namespace kvlab::gpu::detail

#ifndef CUDA_CHECK
#define CUDA_CHECK(call) ::kvlab::gpu::detail::cuda_check((call), #call, __FILE__, __LINE__)
#endif
