// gpu::swiglu against ref::swiglu in float64 (tolerance 1e-6 + 1e-6·|want|: expf is within 2 ulp)
// and gpu::add against ref::CpuBackend<float>::add (exact), on n = 1, 31, 1000, 100003 (grid-stride
// loops with a capped grid), inputs of mixed scales including ±30 (silu's tails).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/add.cuh"
#include "gpu/swiglu.cuh"
#include "reference/cpu_backend.hpp"
#include "reference/ops.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

constexpr long kNs[] = {1, 31, 1000, 100003, 17000001};

TEST(GpuSwiglu, MatchesTheReference) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (long n : kNs) {
    SCOPED_TRACE("n=" + std::to_string(n));
    std::vector<float> gate = uniform(n, 3u + n, -30.0, 30.0), up = uniform(n, 4u + n, -2.0, 2.0);
    std::vector<double> want(gate.begin(), gate.end()), upd(up.begin(), up.end());
    kvlab::ref::swiglu(want.data(), upd.data(), n);
    DeviceBuffer<float> dup = to_device(up);
    GuardedOutput<float> dg(n);
    CUDA_CHECK(cudaMemcpy(dg.data(), gate.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    kvlab::gpu::swiglu(dg.data(), dup.data(), n);
    std::vector<float> got;
    EXPECT_EQ(dg.fetch(got), "");
    EXPECT_EQ(compare(got, want, 1e-6, 1e-6), "");
    EXPECT_TRUE(to_host(dup) == up) << "swiglu wrote into up";
  }
}

TEST(GpuAdd, MatchesTheCpuBackendExactly) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  kvlab::ref::CpuBackend<float> cpu;
  for (long n : kNs) {
    SCOPED_TRACE("n=" + std::to_string(n));
    std::vector<float> x = uniform(n, 5u + n, -100.0, 100.0), y = uniform(n, 6u + n);
    std::vector<float> want = x;
    cpu.add(want.data(), y.data(), n);
    DeviceBuffer<float> dy = to_device(y);
    GuardedOutput<float> dx(n);
    CUDA_CHECK(cudaMemcpy(dx.data(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    kvlab::gpu::add(dx.data(), dy.data(), n);
    std::vector<float> got;
    EXPECT_EQ(dx.fetch(got), "");
    EXPECT_EQ(compare(got, want, 0, 0), "");
    EXPECT_TRUE(to_host(dy) == y) << "add wrote into y";
  }
}

TEST(GpuElementwiseArgs, RejectsNegativeCounts) {
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::swiglu(p, p, -1), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::add(p, p, -1), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::swiglu(p, p, 0));
  EXPECT_NO_THROW(kvlab::gpu::add(p, p, 0));
}

}  // namespace
