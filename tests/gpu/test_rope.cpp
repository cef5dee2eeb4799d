// gpu::rope against ref::rope in float64 on the same inputs, both pairings, T = 1, 5, 64 rows at
// scattered positions (0 .. 100000), heads 1 and 7, D = 2, 64, 80, 128. Tolerance: 2e-6 + 2e-6·|x|
// (the angle in double on both sides; a float cosine or sine may differ in its last bit).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/rope.cuh"
#include "reference/ops.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using kvlab::ref::RopePairing;
using namespace kvlab::gpu::testing;

TEST(GpuRope, MatchesTheReferenceForBothPairings) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (RopePairing pairing : {RopePairing::half, RopePairing::interleaved}) {
    for (int T : {1, 5, 64}) {
      for (int heads : {1, 7}) {
        for (int D : {2, 64, 80, 128}) {
          SCOPED_TRACE(std::string(pairing == RopePairing::half ? "half" : "interleaved") +
                       " T=" + std::to_string(T) + " heads=" + std::to_string(heads) +
                       " D=" + std::to_string(D));
          const std::size_t n = static_cast<std::size_t>(T) * heads * D;
          std::vector<float> x = uniform(n, 5u + T * 3u + D);
          std::vector<int> pos(T);
          for (int t = 0; t < T; ++t) pos[t] = t == 0 ? 0 : (t * 1571) % 100001;
          std::vector<double> want(x.begin(), x.end());
          kvlab::ref::rope(want.data(), pos.data(), T, heads, D, 10000.0, pairing);
          DeviceBuffer<int> dpos = to_device(pos);
          GuardedOutput<float> dx(n);
          CUDA_CHECK(cudaMemcpy(dx.data(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
          kvlab::gpu::rope(dx.data(), dpos.data(), T, heads, D, 10000.0, pairing);
          std::vector<float> got;
          EXPECT_EQ(dx.fetch(got), "");
          EXPECT_EQ(compare(got, want, 2e-6, 2e-6), "");
        }
      }
    }
  }
}

TEST(GpuRopeArgs, RejectsBadShapes) {
  float* x = nullptr;
  int* pos = nullptr;
  EXPECT_THROW(kvlab::gpu::rope(x, pos, -1, 2, 64, 1e4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rope(x, pos, 1, 0, 64, 1e4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rope(x, pos, 1, 2, 63, 1e4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rope(x, pos, 1, 2, 0, 1e4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rope(x, pos, 1, 2, 64, 0.0), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::rope(x, pos, 0, 2, 64, 1e4));
}

}  // namespace
