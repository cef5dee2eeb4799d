// gpu::h2o_column_sums against ref::accumulate_h2o's scores (reference/h2o.cpp; its (N, H_kv)
// layout read transposed) on GQA ratios 1, 2, 4, 8, T = 1, 9, 40 and N = 1, 33, 700, written and
// accumulated. Tolerance 1e-12 + 1e-12·|want| (double sums of float probabilities; the same order
// as the reference when written, the earlier sum first when accumulated).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/h2o_sums.cuh"
#include "reference/cpu_backend.hpp"
#include "reference/h2o.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

TEST(GpuH2oSums, MatchesAccumulateH2o) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  kvlab::ref::CpuBackend<float> cpu;
  const int H = 8;
  for (int H_kv : {8, 4, 2, 1}) {
    for (int T : {1, 9, 40}) {
      for (int N : {1, 33, 700}) {
        SCOPED_TRACE("H_kv=" + std::to_string(H_kv) + " T=" + std::to_string(T) +
                     " N=" + std::to_string(N));
        const std::vector<float> probs =
            uniform(static_cast<std::size_t>(H) * T * N, 9u + N + T, 0.0, 1.0);
        std::vector<double> score(static_cast<std::size_t>(N) * H_kv, 0.0), count(score.size());
        std::vector<int> pos(score.size(), 0), qpos(T, 1 << 20);
        kvlab::ref::accumulate_h2o(cpu, score.data(), count.data(), pos.data(), probs.data(),
                                   qpos.data(), kvlab::ref::AttentionSet{}, H, T, N, H_kv);
        std::vector<double> want(score.size());  // (H_kv, N)
        for (int j = 0; j < N; ++j)
          for (int g = 0; g < H_kv; ++g)
            want[static_cast<std::size_t>(g) * N + j] =
                score[static_cast<std::size_t>(j) * H_kv + g];
        DeviceBuffer<float> dp = to_device(probs);
        GuardedOutput<double> out(want.size());
        kvlab::gpu::h2o_column_sums(out.data(), dp.data(), H, T, N, H_kv, false);
        std::vector<double> got;
        EXPECT_EQ(out.fetch(got), "");
        EXPECT_EQ(compare(got, want, 1e-12, 1e-12), "");
        // Accumulating a second time doubles every sum.
        kvlab::gpu::h2o_column_sums(out.data(), dp.data(), H, T, N, H_kv, true);
        for (double& w : want) w *= 2;
        EXPECT_EQ(out.fetch(got), "");
        EXPECT_EQ(compare(got, want, 1e-12, 1e-12), "");
      }
    }
  }
}

// Accumulating in the bank's (N, H_kv) layout into scores that already hold values gives the
// reference's bits exactly: the same additions in the same order.
TEST(GpuH2oSums, CellMajorAccumulationHasTheReferencesBits) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  kvlab::ref::CpuBackend<float> cpu;
  const int H = 8;
  for (int H_kv : {8, 2, 1}) {
    for (int T : {1, 13}) {
      const int N = 301;
      SCOPED_TRACE("H_kv=" + std::to_string(H_kv) + " T=" + std::to_string(T));
      const std::vector<float> probs =
          uniform(static_cast<std::size_t>(H) * T * N, 31u + T + H_kv, 0.0, 1.0);
      const std::vector<float> start = uniform(static_cast<std::size_t>(N) * H_kv, 5, 0.0, 50.0);
      std::vector<double> want(start.begin(), start.end()), count(want.size());
      std::vector<int> pos(want.size(), 0), qpos(T, 1 << 20);
      kvlab::ref::accumulate_h2o(cpu, want.data(), count.data(), pos.data(), probs.data(),
                                 qpos.data(), kvlab::ref::AttentionSet{}, H, T, N, H_kv);
      DeviceBuffer<float> dp = to_device(probs);
      GuardedOutput<double> out(want.size());
      const std::vector<double> start_d(start.begin(), start.end());
      CUDA_CHECK(cudaMemcpy(out.data(), start_d.data(), start_d.size() * sizeof(double),
                            cudaMemcpyHostToDevice));
      kvlab::gpu::h2o_column_sums(out.data(), dp.data(), H, T, N, H_kv, true,
                                  kvlab::gpu::H2oLayout::cell_major);
      std::vector<double> got;
      EXPECT_EQ(out.fetch(got), "");
      EXPECT_EQ(compare(got, want, 0, 0), "");
    }
  }
}

TEST(GpuH2oSumsArgs, RejectsBadShapes) {
  double* out = nullptr;
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::h2o_column_sums(out, p, 0, 1, 1, 1, false), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::h2o_column_sums(out, p, 8, 1, 1, 3, false), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::h2o_column_sums(out, p, 8, -1, 1, 2, false), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::h2o_column_sums(out, p, 8, 1, -1, 2, false), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::h2o_column_sums(out, p, 8, 1, 0, 2, false));
}

}  // namespace
