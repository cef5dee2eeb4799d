// A seeded generator whose every draw is the same on every machine and standard library, for the
// tasks' examples (reference/tasks.cpp): a seed names one task everywhere. std::shuffle and the
// std::*_distribution classes are implementation-defined (libstdc++ and libc++ give different
// sequences), so the draws are written out here: SplitMix64 bits, a uniform integer by
// rejection, a Fisher–Yates shuffle, and a discrete draw from weights.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace kvlab::ref {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  // SplitMix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro).
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), n >= 1: draws at or above the largest multiple of n are rejected, so
  // there is no modulo bias.
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t reject_from = -(-n % n);  // 2^64 − (2^64 mod n); 0 when n divides 2^64
    std::uint64_t x = next();
    while (reject_from != 0 && x >= reject_from) x = next();
    return x % n;
  }

  // Uniform in [0, 1), 53 bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Fisher–Yates: for i = n−1 … 1, swap v[i] with v[below(i + 1)].
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

  // An index drawn with probability weight[i] / Σ weight (weights >= 0, not all 0): the first i
  // whose running sum exceeds unit() · Σ weight. A zero weight is never drawn.
  int draw(const std::vector<double>& weight) {
    double total = 0;
    for (double w : weight) total += w;
    const double u = unit() * total;
    double sum = 0;
    int last = -1;
    for (std::size_t i = 0; i < weight.size(); ++i) {
      if (weight[i] <= 0) continue;
      sum += weight[i];
      last = static_cast<int>(i);
      if (u < sum) return last;
    }
    return last;  // u rounded up to the total: the last index with weight
  }

 private:
  std::uint64_t state_;
};

}  // namespace kvlab::ref
