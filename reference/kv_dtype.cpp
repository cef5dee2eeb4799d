#include "reference/kv_dtype.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.hpp"

namespace kvlab::ref {
namespace {

[[noreturn]] void refuse_unsimulated(Dtype d) {
  fail("--dtype", dtype_name(d),
       "K/V can be rounded to f16 or bf16 (or f32 under --precision f64); fp8 and int8 need "
       "scales the reference does not model");
}

}  // namespace

double round_to_dtype(double x, Dtype d) {
  int p = 0, emin = 0, emax = 0;  // significand bits (with the implicit one), exponent range
  switch (d) {
    case Dtype::f64:
      return x;
    case Dtype::f32:
      p = 24, emin = -126, emax = 127;
      break;
    case Dtype::f16:
      p = 11, emin = -14, emax = 15;
      break;
    case Dtype::bf16:
      p = 8, emin = -126, emax = 127;
      break;
    case Dtype::fp8:
    case Dtype::int8:
      refuse_unsimulated(d);
  }
  if (!std::isfinite(x) || x == 0) return x;
  int e = 0;
  std::frexp(x, &e);                      // |x| in [2^(e-1), 2^e)
  const int exp = std::max(e - 1, emin);  // below 2^emin: the subnormals' fixed quantum
  const int shift = p - 1 - exp;          // x · 2^shift: the kept bits before the point
  const double y = std::ldexp(std::nearbyint(std::ldexp(x, shift)), -shift);  // ties to even
  const double largest = std::ldexp(2.0 - std::ldexp(1.0, 1 - p), emax);
  if (std::fabs(y) > largest) return std::copysign(std::numeric_limits<double>::infinity(), x);
  return y;
}

Dtype check_kv_dtype(Dtype asked, int precision_bytes) {
  if (asked == Dtype::fp8 || asked == Dtype::int8) refuse_unsimulated(asked);
  if (dtype_bytes(asked) > precision_bytes) {
    fail("--dtype", dtype_name(asked),
         "is wider than the engine's precision f" + std::to_string(8 * precision_bytes) +
             " (give --precision f64 to hold f64 K/V)");
  }
  return asked;
}

}  // namespace kvlab::ref
