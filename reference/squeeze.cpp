#include "reference/squeeze.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "reference/policies.hpp"

namespace kvlab::ref {

void SqueezeSpec::validate() const {
  if (!(f0 > 0) || f0 > 1) fail(field("f0"), std::to_string(f0), "must be a fraction in (0, 1]");
  if (p >= 0) {
    if (!(p > 0) || p > 1) fail(field("p"), std::to_string(p), "must be in (0, 1] (f3 = p · f0)");
  } else if (!(f3 > 0) || f3 > 1) {
    fail(field("f3"), std::to_string(f3), "must be a fraction in (0, 1] (or give p)");
  } else if (f3 > f0) {
    fail(field("f3"), std::to_string(f3),
         "must be at most f0 = " + std::to_string(f0) +
             ": the least important cluster gets the reduced fraction (f3 = f0 is the uniform "
             "run)");
  }
}

std::vector<int> kmeans3_1d(const std::vector<double>& values) {
  const int n = static_cast<int>(values.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return values[a] < values[b]; });
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = values[order[i]];
  // The within-cluster sum of squares of the run [i, j), computed directly in two passes (the
  // mean, then the squared deviations from it), both relative to the run's first value: the
  // differences of nearby values are exact, so SSEs of 1e-16 near s = 1 keep their digits
  // (prefix sums of v² lose them). n is the number of banks, so O(n³) in all is nothing.
  // squeeze.cpp is compiled with -ffp-contract=off (reference/CMakeLists.txt): no FMA here, so
  // the same input gives the same clusters on every machine.
  auto sse = [&](int i, int j) {
    if (j - i < 2) return 0.0;
    double mean = 0;
    for (int t = i; t < j; ++t) mean += v[t] - v[i];
    mean /= j - i;
    double sum = 0;
    for (int t = i; t < j; ++t) {
      const double d = (v[t] - v[i]) - mean;
      sum += d * d;
    }
    return sum;
  };
  int distinct = n ? 1 : 0;
  for (int i = 1; i < n; ++i) distinct += v[i] != v[i - 1];
  const int k = std::min(3, distinct);
  std::vector<int> label_sorted(n, 1);
  if (k == 2 || k == 3) {
    double best = std::numeric_limits<double>::infinity();
    int b1 = 0, b2 = n;  // clusters [0, b1), [b1, b2), [b2, n)
    for (int i = 1; i < n; ++i) {
      if (v[i] == v[i - 1]) continue;  // equal values stay together
      if (k == 2) {
        const double c = sse(0, i) + sse(i, n);
        if (c < best) best = c, b1 = i, b2 = n;
        continue;
      }
      for (int j = i + 1; j < n; ++j) {
        if (v[j] == v[j - 1]) continue;
        const double c = sse(0, i) + sse(i, j) + sse(j, n);
        if (c < best) best = c, b1 = i, b2 = j;
      }
    }
    for (int i = 0; i < n; ++i) label_sorted[i] = i < b1 ? 1 : (i < b2 ? 2 : 3);
    if (k == 2) {
      for (int i = 0; i < n; ++i) label_sorted[i] = i < b1 ? 1 : 3;  // two clusters: low, high
    }
  }
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[order[i]] = label_sorted[i];
  return labels;
}

long uniform_total_tokens(int banks, double f0, int prompt_tokens) {
  return static_cast<long>(banks) * fraction_tokens(f0, prompt_tokens);
}

std::vector<int> apportion_budgets(const std::vector<double>& shares, long total, int min_each) {
  const int n = static_cast<int>(shares.size());
  if (n == 0) fail("budgets", "no banks", "need at least one bank to share the tokens");
  for (double s : shares) {
    if (!std::isfinite(s) || s < 0) {
      fail("budget share", std::to_string(s), "must be a finite number >= 0");
    }
  }
  if (min_each < 0 || total < static_cast<long>(n) * min_each) {
    fail("budget total", std::to_string(total),
         "must give each of the " + std::to_string(n) + " banks at least " +
             std::to_string(min_each) + " tokens (>= " + std::to_string(long{n} * min_each) + ")");
  }
  // Banks whose share falls below the minimum are held at it; the rest share what is left.
  std::vector<char> held(n, 0);
  std::vector<double> quota(n, 0.0);
  for (bool changed = true; changed;) {
    changed = false;
    long left = total;
    double share_sum = 0;
    int free_banks = 0;
    for (int b = 0; b < n; ++b) {
      if (held[b]) {
        left -= min_each;
      } else {
        share_sum += shares[b];
        ++free_banks;
      }
    }
    for (int b = 0; b < n; ++b) {
      if (held[b]) continue;
      quota[b] = share_sum > 0 ? shares[b] * static_cast<double>(left) / share_sum
                               : static_cast<double>(left) / free_banks;
      if (quota[b] < min_each) held[b] = 1, changed = true;
    }
  }
  std::vector<int> budget(n);
  long given = 0;
  for (int b = 0; b < n; ++b) {
    // A share a rounding error below a whole number is that number (1e-9 of a token).
    budget[b] = held[b] ? min_each : static_cast<int>(std::floor(quota[b] + 1e-9));
    given += budget[b];
  }
  // The tokens left, one each, to the largest remainders; ties to the lower bank.
  std::vector<int> order;
  for (int b = 0; b < n; ++b) {
    if (!held[b]) order.push_back(b);
  }
  if (order.empty()) return budget;  // every bank held: then total == n · min_each == given
  // Remainders on a grid of 1e-9 tokens, so that shares equal in exact arithmetic (x.5 and x.5
  // computed along different float paths) tie, and the tie goes to the lower bank as §6 says.
  std::vector<double> rem(n, 0.0);
  for (int b : order) rem[b] = std::max(0.0, std::round((quota[b] - budget[b]) * 1e9));
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return rem[x] > rem[y]; });
  for (std::size_t i = 0; given < total; i = (i + 1) % order.size(), ++given) ++budget[order[i]];
  return budget;
}

SqueezeResult squeeze_budgets(const std::vector<double>& bank_importance, const SqueezeSpec& spec,
                              int prompt_tokens) {
  spec.validate();
  for (std::size_t b = 0; b < bank_importance.size(); ++b) {
    if (!std::isfinite(bank_importance[b])) {
      char value[64];
      std::snprintf(value, sizeof value, "%g", bank_importance[b]);
      fail("squeeze: bank " + std::to_string(b) + " cos_sim", value,
           "is not finite: the model's hidden states hold NaN or Inf on this prompt (check the "
           "weights with kvlab forward), so no layer importance can be measured");
    }
  }
  SqueezeResult r;
  r.bank_importance = bank_importance;
  r.prompt_tokens = prompt_tokens;
  r.cluster = kmeans3_1d(bank_importance);
  const int n = static_cast<int>(bank_importance.size());
  const int c3 = static_cast<int>(std::count(r.cluster.begin(), r.cluster.end(), 3));
  const double f3 = spec.reduced();
  r.a = c3 == n ? spec.f0 : (n * spec.f0 - c3 * f3) / (n - c3);
  if (r.a > 1 + 1e-12 || r.a < 0) {
    fail(spec.flag.empty() ? "--f0/--f3" : spec.flag,
         std::to_string(spec.f0) + "/" + std::to_string(f3),
         "give clusters 1 and 2 a fraction a = (n·f0 − |C3|·f3)/(|C1|+|C2|) = " +
             std::to_string(r.a) + ", outside [0, 1]; lower f0 or raise f3");
  }
  r.a = std::min(r.a, 1.0);
  if (fraction_tokens(spec.f0, prompt_tokens) < 1) {
    fail(spec.field("f0"), std::to_string(spec.f0),
         "floor(f0 · N) = 0 tokens for a prompt of " + std::to_string(prompt_tokens) +
             " tokens: the uniform run would keep nothing; use a larger fraction");
  }
  std::vector<double> share;
  for (int b = 0; b < n; ++b) {
    r.fraction.push_back(r.cluster[b] == 3 && c3 < n ? f3 : r.a);
    share.push_back(r.fraction.back() * prompt_tokens);
  }
  r.budget = apportion_budgets(share, uniform_total_tokens(n, spec.f0, prompt_tokens));
  return r;
}

}  // namespace kvlab::ref
