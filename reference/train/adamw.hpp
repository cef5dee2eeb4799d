// The optimizer of the training loop (docs/training.md): AdamW (Loshchilov & Hutter; PyTorch's
// torch.optim.AdamW update, bias-corrected) with decoupled weight decay on matrices only, gradient
// clipping by global norm, and the learning-rate schedule (linear warmup, then cosine to a floor),
// in float32 and float64. The moments are ModelWeights-shaped (zeros_like), so a checkpoint stores
// them under the parameters' own names.
#pragma once

#include <cstdint>

#include "reference/train/grad.hpp"
#include "reference/weights.hpp"

namespace kvlab::ref::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // decoupled: p -= lr * weight_decay * p, matrices only
  void validate() const;      // throws kvlab::Error naming the field
};

// Linear warmup over `warmup` steps to `peak`, then a half cosine down to `floor` at step `total`.
// lr_at(s) is the rate of the update that makes step s + 1 (s counts updates done, from 0):
//   s < warmup:  peak * (s + 1) / warmup
//   else:        floor + (peak - floor) * (1 + cos(pi * min(1, (s - warmup) / (total - warmup)))) /
//   2
struct Schedule {
  double peak = 1e-3;
  double floor = 1e-4;
  std::int64_t warmup = 0;
  std::int64_t total = 1;
  double lr_at(std::int64_t step) const;
  void validate() const;  // throws kvlab::Error naming --lr / --steps
};

// sqrt(sum of squares) of every gradient array, accumulated in double in parameters() order.
template <typename S>
double global_norm(ModelWeights<S>& grads);

// Scales every gradient by max_norm / norm when the global norm exceeds max_norm (> 0); returns
// the norm before clipping. max_norm <= 0: no clipping.
template <typename S>
double clip_by_global_norm(ModelWeights<S>& grads, double max_norm);

template <typename S>
class AdamW {
 public:
  // Moments shaped like `like`, all zero; t = 0.
  AdamW(const ModelWeights<S>& like, const AdamWOptions& options);

  // One update with learning rate `lr`: t += 1, then per element of every parameter
  //   p -= lr * wd * p                       (ParamRef::matrix only; decoupled)
  //   m  = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  // computed in double and stored in S. `grads` must have `w`'s shapes.
  void step(ModelWeights<S>& w, ModelWeights<S>& grads, double lr);

  std::int64_t t() const { return t_; }
  ModelWeights<S>& m() { return m_; }
  ModelWeights<S>& v() { return v_; }
  const AdamWOptions& options() const { return options_; }
  // A checkpoint's state: the update count and both moments (shapes checked).
  void restore(std::int64_t t, ModelWeights<S> m, ModelWeights<S> v);

 private:
  AdamWOptions options_;
  std::int64_t t_ = 0;
  ModelWeights<S> m_, v_;
};

}  // namespace kvlab::ref::train
