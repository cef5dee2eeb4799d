// gpu::linear (cuBLAS, row-major trick) against ref::linear in float64 on the same inputs: T = 1
// (decode), 3, 17, 130; K = 1, 7, 288, 1000; N = 1, 5, 288, 513. Tolerance 1e-5·(1 + √K) absolute
// plus 1e-5 relative (float32 dot products of K terms of magnitude <= 1).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/linear.hpp"
#include "reference/linear.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

TEST(GpuLinear, MatchesTheReference) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  cublasHandle_t h = nullptr;
  kvlab::gpu::cublas_check(cublasCreate(&h), "cublasCreate");
  for (int T : {1, 3, 17, 130}) {
    for (int K : {1, 7, 288, 1000}) {
      for (int N : {1, 5, 288, 513}) {
        SCOPED_TRACE("T=" + std::to_string(T) + " K=" + std::to_string(K) +
                     " N=" + std::to_string(N));
        const std::vector<float> x = uniform(static_cast<std::size_t>(T) * K, 1u + T + K);
        const std::vector<float> w = uniform(static_cast<std::size_t>(N) * K, 2u + N + K);
        const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
        std::vector<double> want(static_cast<std::size_t>(T) * N);
        kvlab::ref::linear(want.data(), xd.data(), wd.data(), T, K, N, 1);
        DeviceBuffer<float> dx = to_device(x), dw = to_device(w);
        GuardedOutput<float> out(want.size());
        kvlab::gpu::linear(h, out.data(), dx.data(), dw.data(), T, K, N);
        std::vector<float> got;
        EXPECT_EQ(out.fetch(got), "");
        EXPECT_EQ(compare(got, want, 1e-5 * (1 + std::sqrt(K)), 1e-5), "");
      }
    }
  }
  cublasDestroy(h);
}

TEST(GpuLinearArgs, RejectsBadShapes) {
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::linear(nullptr, p, p, p, -1, 4, 4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::linear(nullptr, p, p, p, 1, 0, 4), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::linear(nullptr, p, p, p, 1, 4, 0), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::linear(nullptr, p, p, p, 1, 4, 4), kvlab::Error);  // no handle
  EXPECT_NO_THROW(kvlab::gpu::linear(nullptr, p, p, p, 0, 4, 4));
  EXPECT_THROW(kvlab::gpu::cublas_check(CUBLAS_STATUS_INVALID_VALUE, "cublasSgemm"), kvlab::Error);
  try {
    kvlab::gpu::cublas_check(CUBLAS_STATUS_ALLOC_FAILED, "cublasSgemm");
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cublasSgemm failed: CUBLAS_STATUS_ALLOC_FAILED"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
