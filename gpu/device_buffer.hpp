// DeviceBuffer<T>: an owning, move-only array in GPU global memory (cudaMalloc / cudaFree), with
// checked copies to and from host memory. Plain C++: include from .cpp or .cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"

namespace kvlab::gpu {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n > 0) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) (void)cudaFree(p_);  // never throw from a destructor
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }

  // Copies `count` elements host -> device, into [offset, offset + count). Synchronous.
  void upload(const T* host, std::size_t count, std::size_t offset = 0) {
    check_range(count, offset);
    if (count > 0)
      CUDA_CHECK(cudaMemcpy(p_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  // Copies `count` elements device -> host, from [offset, offset + count). Synchronous.
  void download(T* host, std::size_t count, std::size_t offset = 0) const {
    check_range(count, offset);
    if (count > 0)
      CUDA_CHECK(cudaMemcpy(host, p_ + offset, count * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  void check_range(std::size_t count, std::size_t offset) const {
    if (offset > n_ || count > n_ - offset)
      fail("DeviceBuffer copy",
           "[" + std::to_string(offset) + ", " + std::to_string(offset + count) + ")",
           "a range inside the buffer's " + std::to_string(n_) + " elements");
  }

  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace kvlab::gpu
