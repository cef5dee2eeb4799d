// The reference's elementary operations, one function each, outputs first, shapes on every
// argument (legend in core/dims.hpp). Written to be read; templated on the scalar (float, double).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "reference/op_types.hpp"

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

// Rotates, in place, every head of x (T, n_heads*D) by its row's position: pairs (a, b) become
// (a cos θ - b sin θ, b cos θ + a sin θ) with θ = pos · theta^(-2i/D), i in [0, D/2).
template <typename S>
void rope(S* x, const int* positions, int T, int n_heads, int D, double theta,
          RopePairing pairing = RopePairing::half) {
  const int half = D / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / D);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double angle = positions[t] * inv_freq[i];
      const S c = static_cast<S>(std::cos(angle)), s = static_cast<S>(std::sin(angle));
      for (int h = 0; h < n_heads; ++h) {
        S* head = x + (static_cast<long>(t) * n_heads + h) * D;
        const int ia = pairing == RopePairing::half ? i : 2 * i;
        const int ib = pairing == RopePairing::half ? i + half : 2 * i + 1;
        const S a = head[ia], b = head[ib];
        head[ia] = a * c - b * s;
        head[ib] = b * c + a * s;
      }
    }
  }
}

// Row permutation of a projection W (n_heads*D, C) from interleaved to half pairing: within each
// head, row 2i + p (p = 0, 1) moves to row p·D/2 + i. `inverse` goes the other way.
template <typename Array>
Array rope_rows_interleaved_to_half(const Array& w, int n_heads, int D, int C,
                                    bool inverse = false) {
  Array out(w.size());
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < D / 2; ++i) {
      for (int p = 0; p < 2; ++p) {
        long inter = static_cast<long>(h) * D + 2 * i + p;
        long halfr = static_cast<long>(h) * D + p * (D / 2) + i;
        const long from = inverse ? halfr : inter, to = inverse ? inter : halfr;
        std::copy_n(w.begin() + from * C, C, out.begin() + to * C);
      }
    }
  }
  return out;
}

// gate (T, F) = silu(gate) ⊙ up (T, F), in place: silu(z) = z / (1 + e^-z).
template <typename S>
void swiglu(S* gate, const S* up, long n) {
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  Eigen::Map<Arr> g(gate, n);
  Eigen::Map<const Arr> u(up, n);
  g = g / (S(1) + (-g).exp()) * u;  // Eigen's vectorised exp
}

// In place over one row of n scores; entries equal to -inf get probability 0. Returns false (and
// leaves zeros) when every entry is -inf, i.e. the attention set is empty.
template <typename S>
bool softmax_row(S* x, int n) {
  S mx = -std::numeric_limits<S>::infinity();
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<S>::infinity()) {
    std::fill(x, x + n, S(0));
    return false;
  }
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  Eigen::Map<Arr> a(x, n);
  // Masked entries get exactly 0: Eigen's vectorized exp clamps its argument, so exp(-inf) would
  // come out near 1e-308 (the unmasked entries keep the same bits either way).
  const S neg_inf = -std::numeric_limits<S>::infinity();
  a = (a == neg_inf).select(Arr::Zero(n), (a - mx).exp());
  a /= a.sum();
  return true;
}

}  // namespace kvlab::ref
