// The weights of a Llama-style model under a KV plan, as plain row-major arrays. Only KV layers
// have W_K and W_V. RoPE pairing is always `half` (Hugging Face) inside kvlab.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/plan.hpp"
#include "reference/buffer.hpp"

namespace kvlab::ref {

template <typename S>
struct LayerWeights {
  Buffer<S> attn_norm;  // (C)
  Buffer<S> wq;         // (H*D, C)
  Buffer<S> wk, wv;     // (H_kv*D, C), empty unless the layer is a KV layer
  Buffer<S> wo;         // (C, H*D)
  Buffer<S> ffn_norm;   // (C)
  Buffer<S> w1;         // (F, C)  gate_proj
  Buffer<S> w3;         // (F, C)  up_proj
  Buffer<S> w2;         // (C, F)  down_proj
};

template <typename S>
struct ModelWeights {
  ModelConfig config;
  KvPlan plan;      // the plan the checkpoint was made for
  Buffer<S> embed;  // (V, C)
  std::vector<LayerWeights<S>> layers;
  Buffer<S> final_norm;  // (C)
  Buffer<S> classifier;  // (V, C); empty when tied to `embed`

  const S* cls() const { return classifier.empty() ? embed.data() : classifier.data(); }
  std::int64_t bytes() const;  // bytes of all weight arrays
};

// Random weights as GPT-2 / llm.c / nanoGPT initialise them (kvlab init, random-weight presets,
// and training: train::init_for_training is this): every matrix ~ N(0, 0.02^2), the residual
// projections W_O and W_2 ~ N(0, (0.02 / sqrt(2L))^2), norms = 1; W_K, W_V only for the plan's KV
// layers. Logits stay near 0 (a tied classifier of std 0.02), so an untrained model's perplexity
// is close to the vocabulary size. Deterministic for a seed on every machine (SplitMix64 bits,
// Box-Muller, drawn in tensor_specs order).
template <typename S>
ModelWeights<S> init_random(const ModelConfig& cfg, const KvPlan& plan, std::uint64_t seed);

// Converts every array to another scalar type (float <-> double).
template <typename To, typename From>
ModelWeights<To> convert_weights(const ModelWeights<From>& w);

// Throws kvlab::Error naming the first tensor with a NaN or infinity, or a wrong size.
template <typename S>
void check_weights(const ModelWeights<S>& w);

// The Hugging Face name of every tensor the plan needs, with its shape, in a fixed order.
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
};
std::vector<TensorSpec> tensor_specs(const ModelConfig& cfg, const KvPlan& plan);

}  // namespace kvlab::ref
