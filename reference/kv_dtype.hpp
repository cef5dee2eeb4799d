// The dtype K and V are stored at (generate/eval --dtype). The reference computes in its precision
// (f32 or f64) and, by default, stores K/V at it. A narrower storage dtype (f16, bf16; f32 under
// f64) is simulated: each K and V value is rounded to it where the engine writes it
// (Engine::write_kv), before any attention reads it, and held rounded in the engine's own memory.
// The values are what a cache of that dtype would hold; the byte figures are counted at the dtype;
// the memory actually allocated is still the precision's. fp8 and int8 need scales the reference
// does not model and are refused.
#pragma once

#include "core/accounting.hpp"

namespace kvlab::ref {

// x rounded to the nearest value of dtype `d` (f32, f16 or bf16), ties to even, straight from the
// double (no double rounding through float); subnormals included, past the largest finite value
// ±infinity, NaN and signed zeros kept. f64: x itself. Throws kvlab::Error naming --dtype for fp8
// and int8.
double round_to_dtype(double x, Dtype d);

// x[0, n) rounded in place to `d`.
template <typename S>
void round_to_dtype(S* x, long n, Dtype d) {
  for (long i = 0; i < n; ++i) x[i] = static_cast<S>(round_to_dtype(static_cast<double>(x[i]), d));
}

// The K/V storage dtype of an engine computing in elements of `precision_bytes` bytes (4: f32,
// 8: f64): `asked`, or the precision itself when `asked` is that. Throws kvlab::Error naming
// --dtype for fp8 and int8 (not simulated) and for a dtype wider than the precision.
Dtype check_kv_dtype(Dtype asked, int precision_bytes);

}  // namespace kvlab::ref
