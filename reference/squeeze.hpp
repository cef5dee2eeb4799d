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
  // The flag the user typed, for errors: "--squeeze" (f0,f3 or f0,p=P in one value), or "" for
  // kvlab squeeze's aliases --f0, --f3, --p.
  std::string flag;

  double reduced() const { return p >= 0 ? p * f0 : f3; }
  // The field an error names: "--squeeze f3" or "--f3".
  std::string field(const std::string& name) const {
    return flag.empty() ? "--" + name : flag + " " + name;
  }
  void validate() const;  // throws kvlab::Error naming field("f0"), field("f3"), field("p")
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
  std::vector<int> budget;               // per bank: apportion_budgets (sums to U exactly)
  double a = 0;                          // the fraction of clusters 1 and 2
  int prompt_tokens = 0;
  std::vector<std::string> notes;  // budgets the policy could not honour, raised (policies.hpp)
};

// The tokens the uniform run keeps over `banks` banks (§6 step 3): U = banks · floor(f0 · N),
// floor(f0 · N) as BudgetSpec::resolve computes it (fraction_tokens). Callers that report the
// uniform total (kvlab squeeze) use this, so that it is the figure the budgets sum to.
long uniform_total_tokens(int banks, double f0, int prompt_tokens);

// Integer budgets with a fixed total (§6 step 3, largest remainders): the shares are scaled so
// that they sum to `total`, each bank gets the floor of its scaled share, and the tokens left go
// one each to the largest remainders (ties: the lower bank first). The result sums to `total`
// exactly, and equal shares get equal budgets whenever `total` divides evenly.
// Minimum: every bank gets at least `min_each` tokens. A bank whose scaled share is below it is
// held at `min_each` and the other banks share the rest in proportion (repeated until no share
// is below). A policy's own minimum (streaming's sinks, h2o's recent window) is checked per bank
// by check_bank_budget (reference/policies.hpp), not here.
// Throws kvlab::Error for no banks, a negative or non-finite share, or total < n · min_each.
std::vector<int> apportion_budgets(const std::vector<double>& shares, long total, int min_each = 1);

// Budgets from bank importances (§6 step 3): a = (n · f0 − |C3| · f3) / (|C1| + |C2|), which
// must lie in [0, 1]; the shares f_l · N are apportioned to U = uniform_total_tokens(n, f0, N)
// tokens, at least 1 per bank. Throws kvlab::Error naming --f0/--f3 when a is outside [0, 1],
// and --f0 when floor(f0 · N) is 0 (the uniform run would keep nothing).
SqueezeResult squeeze_budgets(const std::vector<double>& bank_importance, const SqueezeSpec& spec,
                              int prompt_tokens);

}  // namespace kvlab::ref
