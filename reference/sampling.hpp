// Choosing the next token from logits: greedy (temperature 0), or temperature + nucleus (top-p)
// sampling from a seeded generator that gives the same tokens on every machine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace kvlab::ref {

class Sampler {
 public:
  Sampler(double temperature, double top_p, std::uint64_t seed)
      : temperature_(temperature), top_p_(top_p), rng_(seed) {}

  // logits (V) -> a token id. Ties go to the lowest id.
  template <typename S>
  int next(const std::vector<S>& logits) {
    const int V = static_cast<int>(logits.size());
    if (temperature_ <= 0) {
      return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double mx = static_cast<double>(*std::max_element(logits.begin(), logits.end()));
    std::vector<double> p(V);
    double sum = 0;
    for (int i = 0; i < V; ++i) sum += p[i] = std::exp((logits[i] - mx) / temperature_);
    for (auto& x : p) x /= sum;
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    // Keep the smallest prefix whose mass reaches top_p.
    int keep = 0;
    double mass = 0;
    while (keep < V && (keep == 0 || mass < top_p_)) mass += p[order[keep++]];
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * mass;
    double acc = 0;
    for (int i = 0; i < keep; ++i) {
      acc += p[order[i]];
      if (u < acc) return order[i];
    }
    return order[keep - 1];
  }

 private:
  double temperature_, top_p_;
  std::mt19937_64 rng_;
};

}  // namespace kvlab::ref
