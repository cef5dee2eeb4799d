#include "reference/squeeze.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.hpp"

namespace kvlab::ref {

void SqueezeSpec::validate() const {
  if (!(f0 > 0) || f0 > 1) fail("--f0", std::to_string(f0), "must be a fraction in (0, 1]");
  if (p >= 0) {
    if (!(p > 0) || p > 1) fail("--p", std::to_string(p), "must be in (0, 1] (f3 = p · f0)");
  } else if (!(f3 > 0) || f3 > 1) {
    fail("--f3", std::to_string(f3), "must be a fraction in (0, 1] (or give --p)");
  }
}

std::vector<int> kmeans3_1d(const std::vector<double>& values) {
  const int n = static_cast<int>(values.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return values[a] < values[b]; });
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = values[order[i]];
  // Prefix sums give the within-cluster sum of squares of any run [i, j) in O(1).
  std::vector<double> s1(n + 1, 0), s2(n + 1, 0);
  for (int i = 0; i < n; ++i) {
    s1[i + 1] = s1[i] + v[i];
    s2[i + 1] = s2[i] + v[i] * v[i];
  }
  auto sse = [&](int i, int j) {
    if (j <= i) return 0.0;
    const double m = (s1[j] - s1[i]) / (j - i);
    return std::max(0.0, s2[j] - s2[i] - m * (s1[j] - s1[i]));
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

SqueezeResult squeeze_budgets(const std::vector<double>& bank_importance, const SqueezeSpec& spec,
                              int prompt_tokens) {
  spec.validate();
  SqueezeResult r;
  r.bank_importance = bank_importance;
  r.prompt_tokens = prompt_tokens;
  r.cluster = kmeans3_1d(bank_importance);
  const int n = static_cast<int>(bank_importance.size());
  const int c3 = static_cast<int>(std::count(r.cluster.begin(), r.cluster.end(), 3));
  const double f3 = spec.reduced();
  r.a = c3 == n ? spec.f0 : (n * spec.f0 - c3 * f3) / (n - c3);
  if (r.a > 1 + 1e-12 || r.a < 0) {
    fail("--f0/--f3", std::to_string(spec.f0) + "/" + std::to_string(f3),
         "give clusters 1 and 2 a fraction a = (n·f0 − |C3|·f3)/(|C1|+|C2|) = " +
             std::to_string(r.a) + ", outside [0, 1]; lower f0 or raise f3");
  }
  r.a = std::min(r.a, 1.0);
  for (int b = 0; b < n; ++b) {
    const double f = r.cluster[b] == 3 && c3 < n ? f3 : r.a;
    r.fraction.push_back(f);
    r.budget.push_back(std::max(1, static_cast<int>(std::floor(f * prompt_tokens + 1e-9))));
  }
  return r;
}

}  // namespace kvlab::ref
