// The reference's elementary operations, one function each, outputs first, shapes on every
// argument (legend in core/dims.hpp). Written to be read; templated on the scalar (float, double).
#pragma once

#include <cmath>

namespace kvlab::ref {

// out (T, C) = x (T, C) · w (C) / sqrt(mean_c x² + eps), row by row. `out` may alias `x`.
template <typename S>
void rmsnorm(S* out, const S* x, const S* w, int T, int C, double eps) {
  for (int t = 0; t < T; ++t) {
    const S* xr = x + static_cast<long>(t) * C;
    S* orow = out + static_cast<long>(t) * C;
    S ss = 0;
    for (int c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const S inv = S(1) / std::sqrt(ss / S(C) + S(eps));
    for (int c = 0; c < C; ++c) orow[c] = xr[c] * inv * w[c];
  }
}

}  // namespace kvlab::ref
