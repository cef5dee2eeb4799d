// KV banks in device memory. Contract: gpu/kv_storage.hpp. CPU twin: ref::HostKvStorage.
#include "gpu/kv_storage.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"

namespace kvlab::gpu {

template <typename S>
DeviceKvStorage<S>::DeviceKvStorage(const std::vector<int>& rows, int H_kv, int D,
                                    cudaStream_t stream)
    : row_(H_kv * D), d_(D), hkv_(H_kv), stream_(stream) {
  if (H_kv < 1) fail("DeviceKvStorage H_kv", std::to_string(H_kv), "a KV head count >= 1");
  if (D < 1) fail("DeviceKvStorage D", std::to_string(D), "a head size >= 1");
  for (std::size_t b = 0; b < rows.size(); ++b) {
    if (rows[b] < 0)
      fail("DeviceKvStorage rows[" + std::to_string(b) + "]", std::to_string(rows[b]),
           "a row count >= 0");
  }
  banks_.resize(rows.size());
  for (std::size_t b = 0; b < rows.size(); ++b) resize(static_cast<int>(b), rows[b], 0);
}

template <typename S>
void DeviceKvStorage<S>::check_bank(int b, const char* what) const {
  if (b < 0 || b >= static_cast<int>(banks_.size()))
    fail(std::string("DeviceKvStorage ") + what + " bank", std::to_string(b),
         "a bank in [0, " + std::to_string(banks_.size()) + ")");
}

template <typename S>
int DeviceKvStorage<S>::rows(int b) const {
  check_bank(b, "rows");
  return banks_[b].rows;
}

template <typename S>
void DeviceKvStorage<S>::resize(int b, int rows, int live) {
  check_bank(b, "resize");
  Bank& bank = banks_[b];
  if (rows < 0) fail("DeviceKvStorage resize rows", std::to_string(rows), "a row count >= 0");
  if (live < 0) fail("DeviceKvStorage resize live", std::to_string(live), "a row count >= 0");
  live = std::min({live, rows, bank.rows});  // as BackendKvStorage: rows that exist on both sides
  if (rows == bank.rows && bank.k.size() == static_cast<std::size_t>(rows) * row_) return;
  const std::size_t n = static_cast<std::size_t>(rows) * row_;
  DeviceBuffer<S> k(n), v(n);
  if (live > 0) {
    const std::size_t bytes = static_cast<std::size_t>(live) * row_ * sizeof(S);
    CUDA_CHECK(cudaMemcpyAsync(k.data(), bank.k.data(), bytes, cudaMemcpyDeviceToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(v.data(), bank.v.data(), bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  // The old buffers are freed below: wait for the copies and for any kernel still reading them.
  if (bank.k.size() > 0) CUDA_CHECK(cudaStreamSynchronize(stream_));
  bank.k = std::move(k);
  bank.v = std::move(v);
  bank.rows = rows;
}

template <typename S>
void DeviceKvStorage<S>::move_head(int b, int g, int from, int to) {
  check_bank(b, "move_head");
  const Bank& bank = banks_[b];
  if (g < 0 || g >= hkv_)
    fail("DeviceKvStorage move_head g", std::to_string(g),
         "a KV head in [0, " + std::to_string(hkv_) + ")");
  if (from < 0 || from >= bank.rows)
    fail("DeviceKvStorage move_head from", std::to_string(from),
         "a row in [0, " + std::to_string(bank.rows) + ")");
  if (to < 0 || to >= bank.rows)
    fail("DeviceKvStorage move_head to", std::to_string(to),
         "a row in [0, " + std::to_string(bank.rows) + ")");
  if (from == to) return;
  const std::size_t f = static_cast<std::size_t>(from) * row_ + static_cast<std::size_t>(g) * d_;
  const std::size_t t = static_cast<std::size_t>(to) * row_ + static_cast<std::size_t>(g) * d_;
  const std::size_t bytes = static_cast<std::size_t>(d_) * sizeof(S);
  Bank& mb = banks_[b];
  CUDA_CHECK(
      cudaMemcpyAsync(mb.k.data() + t, mb.k.data() + f, bytes, cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(
      cudaMemcpyAsync(mb.v.data() + t, mb.v.data() + f, bytes, cudaMemcpyDeviceToDevice, stream_));
}

template <typename S>
void DeviceKvStorage<S>::write(int b, int slot, const S* k, const S* v, int n) {
  check_bank(b, "write");
  Bank& bank = banks_[b];
  if (n < 0) fail("DeviceKvStorage write n", std::to_string(n), "a row count >= 0");
  if (slot < 0 || slot > bank.rows - n)
    fail("DeviceKvStorage write rows",
         "[" + std::to_string(slot) + ", " + std::to_string(static_cast<long>(slot) + n) + ")",
         "rows inside the bank's " + std::to_string(bank.rows));
  if (n == 0) return;
  const std::size_t at = static_cast<std::size_t>(slot) * row_;
  const std::size_t bytes = static_cast<std::size_t>(n) * row_ * sizeof(S);
  CUDA_CHECK(cudaMemcpyAsync(bank.k.data() + at, k, bytes, cudaMemcpyDefault, stream_));
  CUDA_CHECK(cudaMemcpyAsync(bank.v.data() + at, v, bytes, cudaMemcpyDefault, stream_));
}

template <typename S>
const S* DeviceKvStorage<S>::keys(int b) const {
  check_bank(b, "keys");
  return banks_[b].k.data();
}

template <typename S>
const S* DeviceKvStorage<S>::values(int b) const {
  check_bank(b, "values");
  return banks_[b].v.data();
}

template <typename S>
std::int64_t DeviceKvStorage<S>::bytes_allocated() const {
  std::int64_t s = 0;
  for (const Bank& bank : banks_)
    s += static_cast<std::int64_t>(bank.k.size() + bank.v.size()) * sizeof(S);
  return s;
}

template class DeviceKvStorage<float>;

}  // namespace kvlab::gpu
