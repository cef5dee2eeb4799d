// gpu::rmsnorm against kvlab::ref::rmsnorm computed in float64 on the same inputs, on awkward sizes
// (T = 1, 7, 33; C = 1, 17, 288, 1000, 4097) and block sizes (auto, 32, 96, 1024). Fails on any
// NaN, on any output left unwritten (the output starts as NaN) and on any write outside the output
// (guard regions before and after it must keep their bytes), and checks the inputs stay untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/rmsnorm.cuh"
#include "reference/ops.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;

constexpr int kTs[] = {1, 7, 33};
constexpr int kCs[] = {1, 17, 288, 1000, 4097};
constexpr int kBlocks[] = {0, 32, 96, 1024};  // 0 = rmsnorm_default_block(C)
constexpr double kEps = 1e-5;
constexpr std::size_t kGuard = 67;  // elements of guard before and after the output
constexpr unsigned char kGuardByte = 0xA5;

template <typename S>
double tolerance() {
  return std::is_same_v<S, float> ? 1e-5 : 1e-12;  // relative
}

// x (T, C): rows of very different scales (1e-2 .. 1e2), a zero row when T > 3; w (C) in
// [0.5, 1.5].
template <typename S>
void make_inputs(std::vector<S>& x, std::vector<S>& w, int T, int C) {
  std::mt19937 rng(1234u + static_cast<unsigned>(T) * 7919u + static_cast<unsigned>(C));
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  x.resize(static_cast<std::size_t>(T) * C);
  w.resize(C);
  for (int t = 0; t < T; ++t) {
    const double scale = std::pow(10.0, t % 5 - 2);
    for (int c = 0; c < C; ++c)
      x[static_cast<std::size_t>(t) * C + c] = t == 3 ? S(0) : static_cast<S>(scale * u(rng));
  }
  for (int c = 0; c < C; ++c) w[c] = static_cast<S>(1.0 + 0.5 * u(rng));
}

// The truth: the reference in float64 on the (widened) inputs.
template <typename S>
std::vector<double> truth(const std::vector<S>& x, const std::vector<S>& w, int T, int C) {
  std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), out(xd.size());
  kvlab::ref::rmsnorm(out.data(), xd.data(), wd.data(), T, C, kEps);
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// "" when every element is a number within tolerance of the truth; else the first bad element.
template <typename S>
std::string compare(const S* got, const std::vector<double>& want, int C) {
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = got[i];
    const bool ok = !std::isnan(g) && std::abs(g - want[i]) <= tolerance<S>() * std::abs(want[i]);
    if (ok) continue;
    if (bad++ == 0)
      first = "(t=" + std::to_string(i / C) + ", c=" + std::to_string(i % C) + "): got " + num(g) +
              (std::isnan(g) ? " (NaN: unwritten?)" : "") + ", want " + num(want[i]);
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " of " + std::to_string(want.size()) + " outputs wrong, first " +
         first;
}

// Guard bytes intact on both sides of the output?
template <typename S>
std::string check_guards(const std::vector<S>& image, std::size_t n) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(image.data());
  const std::size_t guard_bytes = kGuard * sizeof(S);
  const std::size_t after = (kGuard + n) * sizeof(S);
  for (std::size_t b = 0; b < guard_bytes; ++b) {
    if (bytes[b] != kGuardByte)
      return "write before the output, " + std::to_string(guard_bytes - b) + " bytes before it";
    if (bytes[after + b] != kGuardByte)
      return "write after the output, " + std::to_string(b) + " bytes past its end";
  }
  return "";
}

template <typename S>
class GpuRmsnorm : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GpuRmsnorm, Scalars);

TYPED_TEST(GpuRmsnorm, MatchesReferenceOnAwkwardSizes) {
  using S = TypeParam;
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (int T : kTs) {
    for (int C : kCs) {
      std::vector<S> x, w;
      make_inputs(x, w, T, C);
      const std::vector<double> want = truth(x, w, T, C);
      const std::size_t n = x.size();
      DeviceBuffer<S> dx(n), dw(C), dout(kGuard + n + kGuard);
      dx.upload(x.data(), n);
      dw.upload(w.data(), C);
      // Image of the output allocation: guard bytes | NaN canary where outputs go | guard bytes.
      std::vector<S> canvas(kGuard + n + kGuard);
      std::memset(canvas.data(), kGuardByte, canvas.size() * sizeof(S));
      std::fill_n(canvas.begin() + kGuard, n, std::numeric_limits<S>::quiet_NaN());
      for (int block : kBlocks) {
        SCOPED_TRACE("T=" + std::to_string(T) + " C=" + std::to_string(C) +
                     " block=" + std::to_string(block));
        dout.upload(canvas.data(), canvas.size());
        kvlab::gpu::rmsnorm(dout.data() + kGuard, dx.data(), dw.data(), T, C, kEps, block);
        CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<S> image(canvas.size());
        dout.download(image.data(), image.size());
        EXPECT_EQ(compare(image.data() + kGuard, want, C), "");
        EXPECT_EQ(check_guards(image, n), "");
        std::vector<S> x_after(n), w_after(C);
        dx.download(x_after.data(), n);
        dw.download(w_after.data(), C);
        EXPECT_TRUE(x_after == x) << "the kernel wrote into its input x";
        EXPECT_TRUE(w_after == w) << "the kernel wrote into its input w";
      }
    }
  }
}

TYPED_TEST(GpuRmsnorm, InPlace) {
  using S = TypeParam;
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (int C : kCs) {
    SCOPED_TRACE("C=" + std::to_string(C));
    const int T = 7;
    std::vector<S> x, w;
    make_inputs(x, w, T, C);
    const std::vector<double> want = truth(x, w, T, C);
    DeviceBuffer<S> dx(x.size()), dw(C);
    dx.upload(x.data(), x.size());
    dw.upload(w.data(), C);
    kvlab::gpu::rmsnorm(dx.data(), dx.data(), dw.data(), T, C, kEps);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<S> got(x.size());
    dx.download(got.data(), got.size());
    EXPECT_EQ(compare(got.data(), want, C), "");
  }
}

TYPED_TEST(GpuRmsnorm, HostWrapper) {
  using S = TypeParam;
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (int T : kTs) {
    for (int C : kCs) {
      SCOPED_TRACE("T=" + std::to_string(T) + " C=" + std::to_string(C));
      std::vector<S> x, w;
      make_inputs(x, w, T, C);
      const std::vector<double> want = truth(x, w, T, C);
      std::vector<S> got(x.size(), std::numeric_limits<S>::quiet_NaN());
      kvlab::gpu::rmsnorm_host(got.data(), x.data(), w.data(), T, C, kEps);
      EXPECT_EQ(compare(got.data(), want, C), "");
    }
  }
}

// Argument checks happen before any CUDA call, so this runs on machines without a GPU as well.
TEST(GpuRmsnormArgs, RejectsBadShapesAndBlocks) {
  float* p = nullptr;
  EXPECT_THROW(kvlab::gpu::rmsnorm(p, p, p, -1, 8, kEps), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rmsnorm(p, p, p, 4, 0, kEps), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rmsnorm(p, p, p, 4, 8, -1.0), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rmsnorm(p, p, p, 4, 8, kEps, 48), kvlab::Error);
  EXPECT_THROW(kvlab::gpu::rmsnorm(p, p, p, 4, 8, kEps, 2048), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::rmsnorm(p, p, p, 0, 8, kEps));  // no rows: nothing to launch
  try {
    kvlab::gpu::rmsnorm(p, p, p, 4, 8, kEps, 48);
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm block = 48"), std::string::npos) << e.what();
  }
  EXPECT_EQ(kvlab::gpu::rmsnorm_default_block(1), 32);
  EXPECT_EQ(kvlab::gpu::rmsnorm_default_block(33), 64);
  EXPECT_EQ(kvlab::gpu::rmsnorm_default_block(4097), 256);
}

}  // namespace
