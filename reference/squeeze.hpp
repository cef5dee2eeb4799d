// SqueezeAttention (techniques.md §6): per-layer importance from how much attention changes the
// residual stream during the prompt, three clusters by 1-D k-means, and budgets that give the
// least important cluster less while keeping the uniform total.
#pragma once

#include <string>
#include <vector>

namespace kvlab::ref {

struct SqueezeSpec {
  bool enabled = false;
  double f0 = 0;   // the uniform fraction of the prompt each bank would get
  double f3 = -1;  // the reduced fraction of cluster 3 (or, with p >= 0, f3 = p · f0)
  double p = -1;
  bool bank_mean = false;  // a shared bank's importance: mean of its readers (default: minimum)

  double reduced() const { return p >= 0 ? p * f0 : f3; }
  void validate() const;  // throws kvlab::Error naming --f0, --f3, --p
};

// Optimal k-means of 1-D values into min(3, distinct) clusters (exact: the optimal partition of
// sorted values is contiguous, found by trying every split), labelled by centre: 1 = lowest
// centre (lowest s: most important) ... 3 = highest. Deterministic on every machine.
std::vector<int> kmeans3_1d(const std::vector<double>& values);

struct SqueezeResult {
  std::vector<double> layer_importance;  // s_l per layer (L)
  std::vector<double> bank_importance;   // per bank (min or mean over its readers)
  std::vector<int> cluster;              // per bank: 1, 2, 3
  std::vector<double> fraction;          // per bank: a, a, f3
  std::vector<int> budget;               // per bank: floor(f · N)
  double a = 0;                          // the fraction of clusters 1 and 2
  int prompt_tokens = 0;
};

// Budgets from bank importances (§6 step 3): a = (n · f0 − |C3| · f3) / (|C1| + |C2|), which
// must lie in [0, 1]; B = floor(f · N). Throws kvlab::Error naming --f0/--f3 when a is outside.
SqueezeResult squeeze_budgets(const std::vector<double>& bank_importance, const SqueezeSpec& spec,
                              int prompt_tokens);

}  // namespace kvlab::ref
