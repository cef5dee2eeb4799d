// The K/V storage dtype (reference/kv_dtype.hpp, generate/eval --dtype): the rounding against
// Eigen's IEEE half and bfloat16 and against the project's safetensors converters, and in a
// float64 engine: what a bank holds is the f16 / bf16 rounding of the values the default engine
// holds, the byte figures scale with the dtype, and the default changes nothing.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/formats/safetensors.hpp"
#include "reference/engine.hpp"
#include "reference/kv_dtype.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

namespace {

double eigen_half(float x) {
  return static_cast<double>(static_cast<float>(Eigen::half(x)));
}
double eigen_bf16(float x) {
  return static_cast<double>(static_cast<float>(Eigen::bfloat16(x)));
}

// Values spread over every binade f16 and bf16 care about (subnormals to past the largest), with
// both signs, and float-exact so that Eigen's float conversions see them unrounded.
std::vector<float> sample_floats(int n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-30, 20);
  std::vector<float> v;
  for (int i = 0; i < n; ++i) {
    const double x = std::ldexp(mantissa(gen), exponent(gen)) * (i % 2 ? -1 : 1);
    v.push_back(static_cast<float>(x));
  }
  // Ties, the largest finite values and the overflow thresholds, exactly.
  for (float x : {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65519.0f, 65520.0f, 0x1p-24f,
                  0x1p-25f, 3 * 0x1p-26f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()}) {
    v.push_back(x);
    v.push_back(-x);
  }
  return v;
}

// The f16 / bf16 values nearest x (a double) on either side, and whether x is a tie between them:
// the reference for doubles that are not floats, where Eigen's conversion (through float) could
// round twice.
bool is_nearest(double x, double r, Dtype d) {
  const double step = d == Dtype::f16 ? 0x1p-10 : 0x1p-7;  // ulp of [1, 2)
  int e = 0;
  std::frexp(x, &e);
  const int emin = d == Dtype::f16 ? -14 : -126;
  const double ulp = step * std::ldexp(1.0, std::max(e - 1, emin));
  return std::abs(r - x) <= ulp / 2;
}

}  // namespace

TEST(KvDtype, F16RoundingEqualsEigenHalfAndTheSafetensorsConverter) {
  for (float f : sample_floats(20000, 1)) {
    const double x = f;
    const double r = round_to_dtype(x, Dtype::f16);
    ASSERT_EQ(r, eigen_half(f)) << "x = " << x;
    if (std::isfinite(r)) {
      ASSERT_EQ(r, static_cast<double>(f16_to_f32(f32_to_f16(f)))) << "x = " << x;
    }
    ASSERT_EQ(round_to_dtype(r, Dtype::f16), r);  // a half stays itself
  }
}

TEST(KvDtype, Bf16RoundingEqualsEigenBfloat16AndTheSafetensorsConverter) {
  for (float f : sample_floats(20000, 2)) {
    const double x = f;
    const double r = round_to_dtype(x, Dtype::bf16);
    ASSERT_EQ(r, eigen_bf16(f)) << "x = " << x;
    ASSERT_EQ(r, static_cast<double>(bf16_to_f32(f32_to_bf16(f)))) << "x = " << x;
    ASSERT_EQ(round_to_dtype(r, Dtype::bf16), r);
  }
}

TEST(KvDtype, DoublesRoundOnceNotThroughFloat) {
  // 1 + 2^-11 is the tie between the halves 1 and 1 + 2^-10; a double just above it rounds up,
  // although through float it would land on the tie and go to the even 1.
  const double above = 1.0 + 0x1p-11 + 0x1p-40;
  EXPECT_EQ(static_cast<float>(above), 1.0f + 0x1p-11f);
  EXPECT_EQ(eigen_half(static_cast<float>(above)), 1.0);
  EXPECT_EQ(round_to_dtype(above, Dtype::f16), 1.0 + 0x1p-10);
  EXPECT_EQ(round_to_dtype(-above, Dtype::f16), -(1.0 + 0x1p-10));
  // Doubles in general: the nearest f16 / bf16 value; f32 is the hardware's double -> float.
  std::mt19937_64 gen(3);
  std::normal_distribution<double> normal(0.0, 3.0);
  for (int i = 0; i < 20000; ++i) {
    const double x = normal(gen);
    ASSERT_TRUE(is_nearest(x, round_to_dtype(x, Dtype::f16), Dtype::f16)) << x;
    ASSERT_TRUE(is_nearest(x, round_to_dtype(x, Dtype::bf16), Dtype::bf16)) << x;
    ASSERT_EQ(round_to_dtype(x, Dtype::f32), static_cast<double>(static_cast<float>(x))) << x;
    ASSERT_EQ(round_to_dtype(x, Dtype::f64), x);
  }
}

TEST(KvDtype, SpecialValuesAndRefusals) {
  EXPECT_TRUE(std::signbit(round_to_dtype(-0.0, Dtype::f16)));
  EXPECT_TRUE(std::signbit(round_to_dtype(-0x1p-40, Dtype::f16)));  // underflows to -0
  EXPECT_TRUE(std::isnan(round_to_dtype(std::nan(""), Dtype::bf16)));
  EXPECT_EQ(round_to_dtype(65519.9, Dtype::f16), 65504.0);
  EXPECT_EQ(round_to_dtype(65520.0, Dtype::f16), std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_dtype(-1e300, Dtype::bf16), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(round_to_dtype(0x1p-24 * 1.4, Dtype::f16), 0x1p-24);  // the least subnormal
  EXPECT_THROW(round_to_dtype(1.0, Dtype::fp8), Error);
  EXPECT_THROW(check_kv_dtype(Dtype::int8, 4), Error);
  EXPECT_THROW(check_kv_dtype(Dtype::f64, 4), Error);
  EXPECT_EQ(check_kv_dtype(Dtype::f32, 8), Dtype::f32);
  try {
    check_kv_dtype(Dtype::fp8, 4);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--dtype = fp8 is invalid"), std::string::npos)
        << e.what();
  }
}

// Layer 0 is a KV layer whose inputs (the embeddings) do not depend on the cache: its bank under
// --dtype f16 / bf16 holds exactly the rounding of what the default float64 engine holds, after
// the prefill and after decode steps, in both position modes.
TEST(KvDtype, Float64EngineHoldsTheRoundedValuesOfItsDefault) {
  const ModelConfig c = tiny_config();
  const KvPlan plan = KvPlan::parse("standard", c.num_hidden_layers);
  const auto w = std::make_shared<const ModelWeights<double>>(init_random<double>(c, plan, 5));
  const std::vector<int> prompt = {1, 5, 9, 2, 30, 7, 11, 3};
  for (const char* positions : {"absolute", "cache"}) {
    for (Dtype d : {Dtype::f16, Dtype::bf16}) {
      EngineOptions base;
      base.policy = PolicySpec::parse("window");
      base.budget = BudgetSpec::parse("32");
      if (std::string(positions) == "cache") base.policy.positions = PositionMode::cache;
      EngineOptions rounded = base;
      rounded.kv_dtype = d;
      Engine<double> a(w, base), b(w, rounded);
      EXPECT_EQ(a.kv_dtype(), Dtype::f64);
      EXPECT_EQ(b.kv_dtype(), d);
      const auto la = a.prefill(prompt), lb = b.prefill(prompt);
      for (int step = 0; step < 3; ++step) {
        const auto ha = a.held_kv(0), hb = b.held_kv(0);
        ASSERT_EQ(ha.cells, hb.cells);
        ASSERT_EQ(ha.k.size(), hb.k.size());
        for (std::size_t i = 0; i < ha.k.size(); ++i) {
          // The default's values are doubles; the reference rounds their float, which differs
          // from one rounding only at an exact f16 tie of that float (checked as nearest then).
          for (const auto& [x, r] : {std::pair{ha.k[i], hb.k[i]}, std::pair{ha.v[i], hb.v[i]}}) {
            const float f = static_cast<float>(x);
            const double eig = d == Dtype::f16 ? eigen_half(f) : eigen_bf16(f);
            if (r != eig) {
              ASSERT_TRUE(is_nearest(x, r, d)) << positions << " " << x << " -> " << r;
              ASSERT_NE(static_cast<double>(f), x) << "a float x must round as Eigen does";
            }
            ASSERT_EQ(round_to_dtype(r, d), r);
          }
        }
        a.decode(4 + step);
        b.decode(4 + step);
      }
      // The logits move, a little; the bytes are the dtype's, the memory the precision's.
      double diff = 0, scale = 0;
      for (std::size_t i = 0; i < la.size(); ++i) {
        diff = std::max(diff, std::abs(la[i] - lb[i]));
        scale = std::max(scale, std::abs(la[i]));
      }
      EXPECT_GT(diff, 0.0);
      EXPECT_LT(diff, 0.05 * scale);
      EXPECT_EQ(b.kv().bytes_held() * 4, a.kv().bytes_held());  // 2 bytes against 8
      EXPECT_EQ(b.kv().bytes_allocated() * 4, a.kv().bytes_allocated());
      EXPECT_EQ(b.kv().memory_bytes(), a.kv().memory_bytes());
    }
  }
}

TEST(KvDtype, TheDefaultAndThePrecisionItselfChangeNothing) {
  const ModelConfig c = tiny_config();
  const KvPlan plan = KvPlan::parse("lckv:2", c.num_hidden_layers);
  const auto w = std::make_shared<const ModelWeights<float>>(init_random<float>(c, plan, 9));
  EngineOptions same;
  same.kv_dtype = Dtype::f32;
  Engine<float> a(w), b(w, same);
  const std::vector<int> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  EXPECT_EQ(a.prefill(prompt), b.prefill(prompt));
  EXPECT_EQ(a.decode(3), b.decode(3));
  EXPECT_EQ(a.kv().bytes_held(), b.kv().bytes_held());
  EngineOptions wide;
  wide.kv_dtype = Dtype::f64;
  EXPECT_THROW(Engine<float>(w, wide), Error);
}
