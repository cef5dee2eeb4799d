// gpu::round_to_half against ref::round_to_dtype (reference/kv_dtype.cpp), bit for bit, for f16
// and bf16 on: every float whose low 13 bits follow a pattern of halfway/just-below/just-above
// cases across every exponent (so ties to even, subnormals of both formats, the overflow to
// infinity, signed zeros, infinities and NaN are all met), plus 2^20 random bit patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/kv_round.cuh"
#include "reference/kv_dtype.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;
using kvlab::gpu::HalfFormat;
using namespace kvlab::gpu::testing;

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::vector<float> inputs() {
  std::vector<float> x;
  // Every sign and exponent, with mantissas around the f16 (13 dropped bits) and bf16 (16 dropped
  // bits) rounding points: halfway, one below, one above, with the kept bit odd and even.
  const std::uint32_t lows[] = {0x0000,   0x0001,   0x0FFF,   0x1000,   0x1001,  0x1FFF,  0x2000,
                                0x3000,   0x7FFF,   0x8000,   0x8001,   0xFFFF,  0x18000, 0x17FFF,
                                0x7FFFFF, 0x7FE000, 0x7FF000, 0x7F8000, 0x400000};
  for (std::uint32_t sign : {0u, 0x80000000u})
    for (std::uint32_t e = 0; e < 256; ++e)
      for (std::uint32_t low : lows)
        for (std::uint32_t high : {0u, 0x2000u, 0x10000u, 0x12000u})
          x.push_back(from_bits(sign | (e << 23) | ((high | low) & 0x7FFFFFu)));
  std::mt19937 rng(2026);
  for (int i = 0; i < (1 << 20); ++i) x.push_back(from_bits(static_cast<std::uint32_t>(rng())));
  return x;
}

TEST(GpuKvRound, MatchesRoundToDtypeBitForBit) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const std::vector<float> x = inputs();
  for (HalfFormat f : {HalfFormat::f16, HalfFormat::bf16}) {
    const kvlab::Dtype d = f == HalfFormat::f16 ? kvlab::Dtype::f16 : kvlab::Dtype::bf16;
    SCOPED_TRACE(f == HalfFormat::f16 ? "f16" : "bf16");
    std::vector<float> want = x;
    kvlab::ref::round_to_dtype(want.data(), static_cast<long>(want.size()), d);
    GuardedOutput<float> dx(x.size());
    CUDA_CHECK(cudaMemcpy(dx.data(), x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    kvlab::gpu::round_to_half(dx.data(), static_cast<long>(x.size()), f);
    std::vector<float> got;
    EXPECT_EQ(dx.fetch(got), "");
    std::size_t bad = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const bool same =
          bits(got[i]) == bits(want[i]) || (std::isnan(got[i]) && std::isnan(want[i]));
      if (same) continue;
      if (bad++ < 5)
        ADD_FAILURE() << "x bits 0x" << std::hex << bits(x[i]) << ": got 0x" << bits(got[i])
                      << ", want 0x" << bits(want[i]);
    }
    EXPECT_EQ(bad, 0u);
  }
}

TEST(GpuKvRoundArgs, RejectsANegativeCount) {
  EXPECT_THROW(kvlab::gpu::round_to_half(nullptr, -1, HalfFormat::f16), kvlab::Error);
  EXPECT_NO_THROW(kvlab::gpu::round_to_half(nullptr, 0, HalfFormat::bf16));
}

}  // namespace
