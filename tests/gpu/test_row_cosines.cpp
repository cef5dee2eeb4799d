// gpu::row_cosines against ref::CpuBackend<float>::row_cosines (double sums on both sides) on T =
// 1, 6, 40 and C = 1, 17, 288, 4097, with a zero row (cosine 0, not NaN), a row equal to its
// partner (1) and one opposite (-1). Tolerance 1e-12 absolute (double sums in another order).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/row_cosines.cuh"
#include "reference/cpu_backend.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

TEST(GpuRowCosines, MatchesTheCpuBackend) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (int T : {1, 6, 40}) {
    for (int C : {1, 17, 288, 4097}) {
      SCOPED_TRACE("T=" + std::to_string(T) + " C=" + std::to_string(C));
      const std::size_t n = static_cast<std::size_t>(T) * C;
      std::vector<float> a = uniform(n, 7u + C), b = uniform(n, 8u + C);
      for (int c = 0; c < C; ++c) {
        if (T > 1) a[C + c] = 0.0f;              // row 1: zero
        if (T > 2) b[2 * C + c] = a[2 * C + c];  // row 2: equal
        if (T > 3)
          b[3 * static_cast<std::size_t>(C) + c] =
              -a[3 * static_cast<std::size_t>(C) + c];  // opposite
      }
      std::vector<double> want(T);
      kvlab::ref::CpuBackend<float> cpu;
      cpu.row_cosines(want.data(), a.data(), b.data(), T, C);
      DeviceBuffer<float> da = to_device(a), db = to_device(b);
      GuardedOutput<double> out(T);
      kvlab::gpu::row_cosines(out.data(), da.data(), db.data(), T, C);
      std::vector<double> got;
      EXPECT_EQ(out.fetch(got), "");
      EXPECT_EQ(compare(got, want, 1e-12, 0), "");
      if (T > 1) {
        EXPECT_EQ(got[1], 0.0);
      }
    }
  }
}

TEST(GpuRowCosinesArgs, RejectsBadShapes) {
  double* out = nullptr;
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::row_cosines(out, p, p, -1, 4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::row_cosines(out, p, p, 1, 0), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::row_cosines(out, p, p, 0, 4));
}

}  // namespace
