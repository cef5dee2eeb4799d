// gpu::CudaBackend: ref::Backend<float> (reference/backend.hpp) on one CUDA device, each operation
// one of gpu/'s kernels (or cuBLAS), checked op by op against ref::CpuBackend<float> by
// tests/gpu/test_cuda_backend.cpp. Plain C++: the kernels are behind gpu/*.cuh's host functions.
//
// Memory (backend.hpp's seam): backend memory is device memory (cudaMalloc, zeroed on the stream);
// upload and download copy on the stream and wait; copy() is enqueued on the stream (every
// consumer of backend memory is on that stream). resident() keeps one device copy per host weight
// array. make_kv_storage() gives a DeviceKvStorage. The int arrays (token ids, positions, kpos) may
// be host or device memory: host ones are copied into the backend's device scratch first (one
// small copy per call, ordered on the stream). The float64 outputs of the reductions (row_cosines,
// h2o_scores, diff_stats) may be host memory (the call then waits for them) or device memory.
// Work: one stream, one cuBLAS handle bound to it; operations are enqueued and return without
// waiting (synchronize() waits). Counters: as the CPU backend keeps them.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

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

  // ---- Memory ----
  float* allocate(long n) override;
  void deallocate(float* p, long n) noexcept override;
  void upload(float* dst, const float* host, long n) override;
  void download(float* host, const float* src, long n) override;
  void copy(float* dst, const float* src, long n) override;
  const float* resident(const float* host, long n) override;
  std::unique_ptr<ref::KvStorage<float>> make_kv_storage(const std::vector<int>& rows, int H_kv,
                                                         int D) override;
  // Bytes of device memory held by resident() weights.
  std::size_t resident_bytes() const;

  // ---- Operations ----
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

  // ---- Reductions ----
  // f16/bf16: rounded on the device (gpu/kv_round.cuh); f32 and f64: nothing to do for float
  // values; fp8/int8: kvlab::Error naming --dtype, as the reference.
  void round_to_dtype(float* x, long n, Dtype d) override;
  // score (N, H_kv) += the group sums of probs, in the reference's order (the same bits).
  void h2o_scores(double* score, const float* probs, int H, int T, int N, int H_kv) override;
  // {max |a - b|, Σ |a - b|, max |a|}; a NaN makes the maxima NaN (the CPU's std::max skips it).
  void diff_stats(double* out, const float* a, const float* b, long n) override;

 private:
  // p (n ints) as a device pointer: p itself when it is device memory, else a copy in `slot`.
  const int* device_ints(const int* p, std::size_t n, DeviceBuffer<int>& slot);

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer<int> ints_a_, ints_b_;  // staged host ints (tokens or qpos; kpos)
  DeviceBuffer<char> workspace_;       // attention's
  DeviceBuffer<double> cosines_;       // row_cosines' output before it is copied out
  DeviceBuffer<double> reduce_;        // h2o_scores' scores, diff_stats' results
  DeviceBuffer<double> reduce_work_;   // diff_stats' partials
  std::unordered_map<const float*, DeviceBuffer<float>> resident_;  // host weights -> device
};

}  // namespace kvlab::gpu
