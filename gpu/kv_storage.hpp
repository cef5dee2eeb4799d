// DeviceKvStorage: reference/kv_storage.hpp's KvStorage in GPU global memory, checked against
// ref::HostKvStorage by tests/gpu/test_kv_storage.cpp. Plain C++ (cudaMemcpy calls, no kernels).
//
// One K and one V allocation per bank, (rows, H_kv*D) floats each. resize() allocates the new
// size, copies the first `live` rows over (device to device; as ref::BackendKvStorage, at
// most the rows both sizes have) and frees the old one; move_head()
// copies one KV head's D values of K and of V from one row to another; write() copies n rows in.
// Every copy is enqueued on the storage's stream (the backend's, so that kernels reading the
// banks see them in order). keys()/values() are device pointers, for the CUDA backend's attention.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gpu/device_buffer.hpp"
#include "reference/kv_storage.hpp"

namespace kvlab::gpu {

template <typename S>
class DeviceKvStorage final : public ref::KvStorage<S> {
 public:
  // Banks of rows[b] rows of H_kv*D values. Throws kvlab::Error for H_kv < 1, D < 1 or a negative
  // row count before any CUDA call (and CUDA's reason when an allocation fails).
  DeviceKvStorage(const std::vector<int>& rows, int H_kv, int D, cudaStream_t stream = nullptr);

  // The KvStorageOps: bad bank, row or head indices throw kvlab::Error before any CUDA call.
  void resize(int b, int rows, int live) override;
  void move_head(int b, int g, int from, int to) override;
  // k, v (n, H_kv*D): host or device memory (the copy's direction comes from the addresses,
  // cudaMemcpyDefault). Returns once the source may be reused; the copy is ordered on the stream.
  void write(int b, int slot, const S* k, const S* v, int n) override;
  const S* keys(int b) const override;
  const S* values(int b) const override;
  std::int64_t bytes_allocated() const override;

  int banks() const { return static_cast<int>(banks_.size()); }
  int rows(int b) const;
  cudaStream_t stream() const { return stream_; }

 private:
  struct Bank {
    DeviceBuffer<S> k, v;
    int rows = 0;
  };
  void check_bank(int b, const char* what) const;

  int row_, d_, hkv_;
  cudaStream_t stream_;
  std::vector<Bank> banks_;
};

extern template class DeviceKvStorage<float>;

}  // namespace kvlab::gpu
