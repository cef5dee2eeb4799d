// SqueezeAttention's layer importance (techniques.md §6 step 1), measured during a prompt's
// prefill: s_l = mean_t cos(x_t, x_t + W_O · Attn_l(RMSNorm(x_t))), the stream before and after
// layer l's attention (the MLP is not included). Higher s_l: the layer changed the stream less,
// so it is less important. A bank's importance is the minimum (or mean) over its readers.
#pragma once

#include <vector>

#include "core/plan.hpp"
#include "reference/backend.hpp"

namespace kvlab::ref {

template <typename S>
class ImportanceMeter {
 public:
  void reset(int layers) { sum_.assign(layers, 0.0), count_.assign(layers, 0.0); }
  // Restarts layer l (an LCKV block measures its last pass only).
  void restart(int l) { sum_[l] = count_[l] = 0; }
  // Keeps the stream x (T, C) entering layer l's attention (backend memory, as x in after()).
  void before(Backend<S>& backend, const S* x, long n) {
    if (x_in_.size() != n) x_in_ = backend.alloc(n);
    backend.copy(x_in_.data(), x, n);
  }
  // Adds cos(x_in_t, x_t) of every row of x (T, C) after layer l's attention.
  void after(Backend<S>& backend, int l, const S* x, int T, int C);
  // s_l per layer (0 for a layer that saw no token).
  std::vector<double> values() const;

 private:
  std::vector<double> sum_, count_;  // per layer: Σ_t cos, tokens
  BackendArray<S> x_in_;             // (T, C), backend memory
  std::vector<double> cos_;          // (T)
};

// A bank's importance from its readers' s_l: the minimum (the most important reader decides), or
// the mean with `mean`. One value per KV layer in `kv_layers`.
std::vector<double> bank_importance(const KvPlan& plan, const std::vector<int>& kv_layers,
                                    const std::vector<double>& layer_s, bool mean);

}  // namespace kvlab::ref
