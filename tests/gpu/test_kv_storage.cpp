// gpu::DeviceKvStorage against ref::BackendKvStorage over the CPU backend: the same writes (from
// host and from device memory), resizes that keep the live rows (growing and shrinking) and head
// moves (H2O compaction) on three banks of odd sizes; every row both hold as live must be equal bit
// for bit, and the byte counts equal. Bad indices throw kvlab::Error before any CUDA call.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/kv_storage.hpp"
#include "reference/backend.hpp"
#include "reference/cpu_backend.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using kvlab::gpu::DeviceKvStorage;
using namespace kvlab::gpu::testing;

constexpr int kHkv = 3, kD = 80, kRow = kHkv * kD;

struct Pair {
  kvlab::ref::CpuBackend<float> cpu;
  kvlab::ref::BackendKvStorage<float> host;
  DeviceKvStorage<float> dev;
  std::vector<std::vector<bool>> live;  // per bank, per row: written since the last resize
  Pair(const std::vector<int>& rows) : host(cpu, rows, kHkv, kD), dev(rows, kHkv, kD) {
    for (int r : rows) live.emplace_back(r, false);
  }
  void write(int b, int slot, int n, unsigned seed, bool from_device) {
    const auto k = uniform(static_cast<std::size_t>(n) * kRow, seed);
    const auto v = uniform(k.size(), seed + 1);
    host.write(b, slot, k.data(), v.data(), n);
    if (from_device) {
      DeviceBuffer<float> dk = to_device(k), dv = to_device(v);
      dev.write(b, slot, dk.data(), dv.data(), n);
      CUDA_CHECK(cudaDeviceSynchronize());  // before dk, dv are freed
    } else {
      dev.write(b, slot, k.data(), v.data(), n);
    }
    for (int r = slot; r < slot + n; ++r) live[b][r] = true;
  }
  void resize(int b, int rows, int keep) {
    host.resize(b, rows, keep);
    dev.resize(b, rows, keep);
    std::vector<bool> l(rows, false);
    for (int r = 0; r < keep; ++r) l[r] = live[b][r];
    live[b] = l;
  }
  void move_head(int b, int g, int from, int to) {
    host.move_head(b, g, from, to);
    dev.move_head(b, g, from, to);
  }
  std::string check() {
    CUDA_CHECK(cudaDeviceSynchronize());
    if (host.bytes_allocated() != dev.bytes_allocated())
      return "bytes " + std::to_string(dev.bytes_allocated()) + " != host's " +
             std::to_string(host.bytes_allocated());
    for (int b = 0; b < static_cast<int>(live.size()); ++b) {
      const int rows = static_cast<int>(live[b].size());
      if (dev.rows(b) != rows) return "bank " + std::to_string(b) + " rows";
      std::vector<float> k(static_cast<std::size_t>(rows) * kRow), v(k.size());
      if (rows > 0) {
        CUDA_CHECK(cudaMemcpy(k.data(), dev.keys(b), k.size() * 4, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(v.data(), dev.values(b), v.size() * 4, cudaMemcpyDeviceToHost));
      }
      for (int r = 0; r < rows; ++r) {
        if (!live[b][r]) continue;
        for (int e = 0; e < kRow; ++e) {
          const std::size_t i = static_cast<std::size_t>(r) * kRow + e;
          if (k[i] != host.keys(b)[i] || v[i] != host.values(b)[i])
            return "bank " + std::to_string(b) + " row " + std::to_string(r) + " element " +
                   std::to_string(e) + " differs";
        }
      }
    }
    return "";
  }
};

TEST(GpuKvStorage, FollowsTheHostStorage) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  Pair p({17, 1, 0});
  EXPECT_EQ(p.check(), "");
  p.write(0, 0, 17, 1, false);
  p.write(1, 0, 1, 2, true);
  EXPECT_EQ(p.check(), "");
  p.resize(0, 40, 17);  // grow, keeping 17
  p.write(0, 17, 23, 3, true);
  EXPECT_EQ(p.check(), "");
  p.move_head(0, 2, 39, 5);  // H2O compaction: head 2 of row 39 into row 5
  p.move_head(0, 0, 20, 3);
  p.move_head(0, 1, 8, 8);
  EXPECT_EQ(p.check(), "");
  p.resize(0, 11, 11);  // shrink, keeping 11
  EXPECT_EQ(p.check(), "");
  p.resize(2, 5, 0);  // an empty bank gets rows
  p.write(2, 2, 3, 4, false);
  EXPECT_EQ(p.check(), "");
  p.resize(1, 0, 0);
  EXPECT_EQ(p.check(), "");
}

TEST(GpuKvStorageArgs, RejectsBadIndicesBeforeAnyCudaCall) {
  EXPECT_THROW(DeviceKvStorage<float>({0}, 0, 4), kvlab::Error);
  EXPECT_THROW(DeviceKvStorage<float>({0}, 2, 0), kvlab::Error);
  EXPECT_THROW(DeviceKvStorage<float>({-1}, 2, 4), kvlab::Error);
  DeviceKvStorage<float> s({0, 0}, 2, 4);  // no rows: no allocation
  float f[8] = {};
  EXPECT_THROW(s.write(2, 0, f, f, 1), kvlab::Error);
  EXPECT_THROW(s.write(0, 0, f, f, 1), kvlab::Error);  // past the bank's 0 rows
  EXPECT_THROW(s.write(0, 0, f, f, -1), kvlab::Error);
  EXPECT_THROW(s.resize(-1, 0, 0), kvlab::Error);
  EXPECT_THROW(s.resize(0, -1, 0), kvlab::Error);
  EXPECT_THROW(s.resize(0, 4, -1), kvlab::Error);
  EXPECT_THROW(s.move_head(0, 0, 0, 0), kvlab::Error);
  EXPECT_THROW(s.keys(5), kvlab::Error);
  EXPECT_EQ(s.bytes_allocated(), 0);
  EXPECT_NO_THROW(s.write(1, 0, f, f, 0));
  try {
    s.write(0, 0, f, f, 1);
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("DeviceKvStorage write rows = [0, 1)"), std::string::npos)
        << e.what();
  }
}

}  // namespace
