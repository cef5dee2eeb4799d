// gpu::CudaBackend: ref::Backend<float> (reference/backend.hpp) on one CUDA device, each operation
// one of gpu/'s kernels (or cuBLAS), checked op by op against ref::CpuBackend<float> by
// tests/gpu/test_cuda_backend.cpp. Plain C++: the kernels are behind gpu/*.cuh's host functions.
//
// Memory: every float array (S*) an operation takes is DEVICE memory. The int arrays (token ids,
// positions, kpos) may be host or device memory: host ones are copied into the backend's device
// scratch first (one small copy per call, ordered on the stream). row_cosines' double output may
// be host memory (the call then waits for it) or device memory.
// Work: one stream, one cuBLAS handle bound to it; operations are enqueued and return without
// waiting (synchronize() waits). Counters: as the CPU backend keeps them.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "gpu/device_buffer.hpp"
#include "reference/backend.hpp"

namespace kvlab::gpu {

class CudaBackend final : public ref::Backend<float> {
 public:
  // On the current device. Throws kvlab::Error naming CUDA's reason when no device answers
  // ("--backend cuda: no CUDA device: ..."), or cuBLAS's when its handle cannot be made.
  CudaBackend();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda-f32"; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  // Waits for everything enqueued so far; surfaces errors raised while kernels ran.
  void synchronize();

  // Token ids must be in [0, V) of the table; host ids below 0 throw kvlab::Error (the table's V
  // is not passed, so larger ids are the engine's to prevent, as on the CPU).
  void embed(float* x, const float* table, const int* tokens, int T, int C) override;
  void rmsnorm(float* out, const float* x, const float* w, int T, int C, double eps) override;
  void linear(float* out, const float* x, const float* w, int T, int K, int N) override;
  void rope(float* x, const int* pos, int T, int heads, int D, double theta,
            ref::RopePairing pairing) override;
  // probs/scores (when asked) are device memory, written by the exact path.
  void attention(const ref::AttentionArgs<float>& a) override;
  void swiglu(float* gate, const float* up, long n) override;
  void add(float* x, const float* y, long n) override;
  void row_cosines(double* out, const float* a, const float* b, int T, int C) override;

 private:
  // p (n ints) as a device pointer: p itself when it is device memory, else a copy in `slot`.
  const int* device_ints(const int* p, std::size_t n, DeviceBuffer<int>& slot);

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer<int> ints_a_, ints_b_;  // staged host ints (tokens or qpos; kpos)
  DeviceBuffer<char> workspace_;       // attention's
  DeviceBuffer<double> cosines_;       // row_cosines' output before it is copied out
};

}  // namespace kvlab::gpu
