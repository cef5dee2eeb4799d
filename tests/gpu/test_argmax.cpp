// gpu::argmax against ref::Sampler at temperature 0 (std::max_element: ties to the lowest id) on
// V = 1, 2, 255, 32000, 128257 and several rows: random logits, the maximum first, last, tied at
// several places, all equal, -inf everywhere but one, and one +inf.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/argmax.cuh"
#include "reference/sampling.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

TEST(GpuArgmax, MatchesGreedySampling) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const float inf = std::numeric_limits<float>::infinity();
  for (int V : {1, 2, 255, 32000, 128257}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    std::vector<std::vector<float>> rows;
    rows.push_back(uniform(V, 1u + V, -10, 10));
    auto r = uniform(V, 2u + V);
    r[0] = 5;
    rows.push_back(r);  // maximum first
    r = uniform(V, 3u + V);
    r[V - 1] = 5;
    rows.push_back(r);  // maximum last
    r = uniform(V, 4u + V);
    for (int v = V / 3; v < V; v += 97) r[v] = 7;  // ties
    rows.push_back(r);
    rows.push_back(std::vector<float>(V, 0.25f));  // all equal
    r.assign(V, -inf);
    r[V / 2] = -1e30f;
    rows.push_back(r);  // -inf but one
    r = uniform(V, 5u + V);
    r[(V * 2) / 3] = inf;
    rows.push_back(r);  // +inf
    const int R = static_cast<int>(rows.size());
    std::vector<float> flat;
    std::vector<int> want;
    for (const auto& row : rows) {
      flat.insert(flat.end(), row.begin(), row.end());
      kvlab::ref::Sampler greedy(0.0, 1.0, 1);
      want.push_back(greedy.next(row));
    }
    DeviceBuffer<float> dl = to_device(flat);
    GuardedOutput<int> out(R);
    kvlab::gpu::argmax(out.data(), dl.data(), R, V);
    std::vector<int> got;
    EXPECT_EQ(out.fetch(got), "");
    EXPECT_EQ(got, want);
    DeviceBuffer<int> scratch(1);
    EXPECT_EQ(kvlab::gpu::argmax_row(dl.data() + static_cast<long>(3) * V, V, scratch.data()),
              want[3]);
  }
}

TEST(GpuArgmaxArgs, RejectsBadShapes) {
  int* out = nullptr;
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::argmax(out, p, -1, 4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::argmax(out, p, 1, 0), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::argmax_row(p, 0, out), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::argmax(out, p, 0, 4));
}

}  // namespace
