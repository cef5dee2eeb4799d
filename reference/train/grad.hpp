// Gradients of the model family under any KV plan (techniques.md §1, §2, §4): an llm.c-style
// forward that keeps its activations and a backward through every operation, in float32 and
// float64. The optimizer (reference/train/adamw.hpp), the data (reference/train/corpus.hpp) and
// the training loop (session/train.hpp) build on this; `kvlab grad` prints what it computes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/plan.hpp"
#include "reference/weights.hpp"

namespace kvlab::ref::train {

// The LCKV training schedule (techniques.md §4). Plans without upward edges ignore m and b and
// train in one ordinary pass.
struct TrainPasses {
  int m = 7;                  // passes without gradient (their target K/V are constants)
  int b = 2;                  // passes with gradient, the loss taken on the last; b >= 1
  double kv_loss_weight = 0;  // λ of the optional KV loss; 0: off
  void validate() const;      // throws kvlab::Error naming --train-passes / --kv-loss
};

struct LossReport {
  double loss = 0;            // mean next-token cross-entropy (nats) over the B*T predictions
  double kv_loss = 0;         // mean squared difference of the KV loss (before λ); 0 when off
  double kv_loss_weight = 0;  // λ it was computed with (TrainPasses::kv_loss_weight)
  double total() const;       // loss + λ kv_loss: what the gradient is of
};

// One named parameter of a ModelWeights, in tensor_specs() order (Hugging Face names).
template <typename S>
struct ParamRef {
  std::string name;  // e.g. "model.layers.3.self_attn.q_proj.weight"
  Buffer<S>* data;   // the array inside the ModelWeights
  bool matrix;       // 2-D (weight decay applies); norms are not
};
template <typename S>
std::vector<ParamRef<S>> parameters(ModelWeights<S>& w);

// Same config, plan and shapes as `w`, every array zero (gradients, optimizer moments).
template <typename S>
ModelWeights<S> zeros_like(const ModelWeights<S>& w);

template <typename S>
class GradModel {
 public:
  // `threads` as the rest of the engine ([1, 256]); force_nodiag as RunOptions.
  GradModel(const ModelConfig& cfg, const KvPlan& plan, TrainPasses passes, int threads = 1,
            bool force_nodiag = false);
  ~GradModel();
  GradModel(GradModel&&) noexcept;
  GradModel& operator=(GradModel&&) noexcept;

  // batch: B rows of T+1 token ids, row-major (inputs row[0..T-1], targets row[1..T]). Fills
  // `grads` (same shapes as `w`; overwritten, not accumulated) with d total() / d parameter.
  // Throws kvlab::Error on a token outside [0, V) or T > max_position_embeddings.
  LossReport loss_and_grad(const ModelWeights<S>& w, const int* batch, int B, int T,
                           ModelWeights<S>& grads);
  // The same loss without gradients (validation).
  LossReport loss(const ModelWeights<S>& w, const int* batch, int B, int T);

  // Tests: while frozen, the passes without gradient are skipped and the constant K/V they left
  // in the last call are reused, so finite differences of loss() see the K/V entering the first
  // gradient pass as the constants the gradient treats them as (same batch shape only).
  void freeze_constants(bool frozen);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvlab::ref::train
