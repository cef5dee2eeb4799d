// gpu::abs_delta against a float64 loop written as reference/lckv.cpp's delta() (max and sum of
// |a - b| in double, max |a|) on n = 1, 255, 1000, 70001, 5000000 (more blocks than the partials
// hold: the grid-stride loop), with b and without (max |a|); a NaN anywhere makes the maxima NaN.
// Maxima exact; the sum within 1e-12 relative (double sums in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/abs_delta.cuh"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::AbsDelta;
using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

AbsDelta expected(const std::vector<float>& a, const std::vector<float>* b) {
  AbsDelta d;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i];
    const double diff = std::abs(b ? x - static_cast<double>((*b)[i]) : x);
    d.max_diff = std::max(d.max_diff, diff);
    d.sum_diff += diff;
    d.max_a = std::max(d.max_a, std::abs(x));
  }
  return d;
}

TEST(GpuAbsDelta, MatchesTheLoop) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (long n : {1L, 255L, 1000L, 70001L, 5000000L}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<float> a = uniform(n, 21u + n, -4, 4);
    std::vector<float> b = a;
    const std::vector<float> noise = uniform(n, 22u + n, -1e-3, 1e-3);
    for (long i = 0; i < n; ++i) b[i] += noise[i];
    b[n / 2] = a[n / 2] + 0.5f;  // one clear largest move
    DeviceBuffer<float> da = to_device(a), db = to_device(b);
    for (bool with_b : {true, false}) {
      SCOPED_TRACE(with_b ? "a - b" : "a alone");
      const AbsDelta want = expected(a, with_b ? &b : nullptr);
      const AbsDelta got = kvlab::gpu::abs_delta_host(da.data(), with_b ? db.data() : nullptr, n);
      EXPECT_EQ(got.max_diff, want.max_diff);
      EXPECT_EQ(got.max_a, want.max_a);
      EXPECT_NEAR(got.sum_diff, want.sum_diff, 1e-12 * want.sum_diff);
    }
  }
}

TEST(GpuAbsDelta, NaNIsNeverConverged) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  std::vector<float> a = uniform(10000, 3), b = a;
  b[7777] = std::numeric_limits<float>::quiet_NaN();
  DeviceBuffer<float> da = to_device(a), db = to_device(b);
  const AbsDelta got = kvlab::gpu::abs_delta_host(da.data(), db.data(), 10000);
  EXPECT_TRUE(std::isnan(got.max_diff));
  EXPECT_TRUE(std::isnan(got.sum_diff));
  EXPECT_FALSE(std::isnan(got.max_a));
}

TEST(GpuAbsDelta, EmptyGivesZeros) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const AbsDelta got = kvlab::gpu::abs_delta_host(nullptr, nullptr, 0);
  EXPECT_EQ(got.max_diff, 0.0);
  EXPECT_EQ(got.sum_diff, 0.0);
  EXPECT_EQ(got.max_a, 0.0);
}

TEST(GpuAbsDeltaArgs, RejectsANegativeCount) {
  EXPECT_THROW(kvlab::gpu::abs_delta(nullptr, nullptr, nullptr, -1, nullptr), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::abs_delta_host(nullptr, nullptr, -1), kvlab::Error);
}

}  // namespace
