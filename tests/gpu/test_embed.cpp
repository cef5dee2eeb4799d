// gpu::embed against ref::CpuBackend<float>::embed (a row copy: exact) on awkward sizes (T = 1, 7,
// 33; C = 1, 3, 288, 1001) through both the float4 and the scalar kernel (a misaligned table), with
// repeated ids, the first and last row of the table; an id outside [0, V) gives a row of NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/embed.cuh"
#include "reference/cpu_backend.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

TEST(GpuEmbed, MatchesTheCpuBackendExactly) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const int V = 50;
  for (int T : {1, 7, 33}) {
    for (int C : {1, 3, 288, 1001}) {
      for (int off : {0, 1}) {  // off = 1: a table that is not 16-byte aligned (scalar kernel)
        SCOPED_TRACE("T=" + std::to_string(T) + " C=" + std::to_string(C) +
                     " off=" + std::to_string(off));
        std::vector<float> table = uniform(static_cast<std::size_t>(V) * C + 1, 11u + C);
        std::vector<int> tokens(T);
        for (int t = 0; t < T; ++t) tokens[t] = t == 0 ? V - 1 : (t * 7) % V;  // last, repeats, 0
        std::vector<float> want(static_cast<std::size_t>(T) * C);
        kvlab::ref::CpuBackend<float> cpu;
        cpu.embed(want.data(), table.data() + off, tokens.data(), T, C);
        DeviceBuffer<float> dtable = to_device(table);
        DeviceBuffer<int> dtok = to_device(tokens);
        // off = 0: output and table 16-byte aligned (the float4 kernel when C % 4 == 0).
        GuardedOutput<float> out(want.size(), off == 0 ? 64 : kGuard);
        kvlab::gpu::embed(out.data(), dtable.data() + off, dtok.data(), T, C, V);
        std::vector<float> got;
        EXPECT_EQ(out.fetch(got), "");
        EXPECT_EQ(compare(got, want, 0, 0), "");
      }
    }
  }
}

TEST(GpuEmbed, OutOfRangeIdsGiveNaNRowsNotReadsPastTheTable) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const int V = 4, C = 8, T = 3;
  const std::vector<float> table = uniform(V * C, 3);
  const std::vector<int> tokens = {-1, 2, 4};
  DeviceBuffer<float> dtable = to_device(table);
  DeviceBuffer<int> dtok = to_device(tokens);
  GuardedOutput<float> out(T * C);
  kvlab::gpu::embed(out.data(), dtable.data(), dtok.data(), T, C, V);
  std::vector<float> got;
  EXPECT_EQ(out.fetch(got), "");
  for (int c = 0; c < C; ++c) {
    EXPECT_TRUE(std::isnan(got[c])) << c;
    EXPECT_EQ(got[C + c], table[2 * C + c]) << c;
    EXPECT_TRUE(std::isnan(got[2 * C + c])) << c;
  }
}

TEST(GpuEmbedArgs, RejectsBadShapes) {
  float* p = nullptr;
  int* ids = nullptr;
  EXPECT_THROW(kvlab::gpu::embed(p, p, ids, -1, 8, 10), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::embed(p, p, ids, 2, 0, 10), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::embed(p, p, ids, 2, 8, 0), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::embed(p, p, ids, 0, 8, 10));
}

}  // namespace
