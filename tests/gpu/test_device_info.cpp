// gpu/device_info and CUDA_CHECK. Listing devices needs one (skipped otherwise); the reason string,
// the bandwidth formula and the error message are checked on every machine.
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_info.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using namespace kvlab::gpu;

TEST(GpuDeviceInfo, UnavailableComesWithAReason) {
  std::string why = "unchanged";
  if (cuda_available(&why)) {
    EXPECT_TRUE(why.empty());
    EXPECT_FALSE(list_devices().empty());
  } else {
    EXPECT_FALSE(why.empty());
    EXPECT_NE(why, "unchanged");
    EXPECT_TRUE(list_devices().empty());
  }
}

TEST(GpuDeviceInfo, ListsEveryDevice) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  const auto devices = list_devices();
  ASSERT_EQ(static_cast<int>(devices.size()), count);
  for (int i = 0; i < count; ++i) {
    const DeviceInfo& d = devices[i];
    SCOPED_TRACE(d.name);
    EXPECT_EQ(d.index, i);
    EXPECT_FALSE(d.name.empty());
    EXPECT_GE(d.cc_major, 7);  // the oldest architecture built is sm_75
    EXPECT_GT(d.total_memory, std::size_t{1} << 30);
    EXPECT_GT(d.sm_count, 0);
    EXPECT_GT(d.memory_clock_khz, 0);
    EXPECT_GT(d.memory_bus_width_bits, 0);
    EXPECT_GT(d.peak_bandwidth, 1e11);  // every supported GPU has more than 100 GB/s
  }
}

TEST(GpuDeviceInfo, PeakBandwidthFormula) {
  // H100 SXM: 2619 MHz HBM3 on a 5120-bit bus -> 3.35 TB/s, as its data sheet says.
  EXPECT_NEAR(peak_bandwidth_estimate(2619000, 5120), 3.352e12, 1e9);
  // RTX 4090 reports 10501 MHz on 384 bits -> 1008 GB/s.
  EXPECT_NEAR(peak_bandwidth_estimate(10501000, 384), 1.008e12, 1e9);
}

TEST(GpuDeviceInfo, VersionsNameTheRuntime) {
  EXPECT_EQ(cuda_versions().rfind("CUDA runtime ", 0), 0u) << cuda_versions();
}

TEST(GpuCudaCheck, ThrowsWithFileLineCallAndMessage) {
  try {
    CUDA_CHECK(cudaErrorInvalidValue);
    FAIL() << "CUDA_CHECK did not throw";
  } catch (const kvlab::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test_device_info.cpp:"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorInvalidValue failed"), std::string::npos) << m;
    EXPECT_NE(m.find(cudaGetErrorString(cudaErrorInvalidValue)), std::string::npos) << m;
  }
  EXPECT_NO_THROW(CUDA_CHECK(cudaSuccess));
}

}  // namespace
