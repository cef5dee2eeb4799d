// Training presets (docs/training.md): a model shape and the run's defaults (batch, sequence
// length, learning rate, steps, validation interval), and the initialisation training starts from.
//   tiny   L=6, C=128, H=4, D=32, F=384, T=128, B=16: a useful model in minutes on 2 cores
//   small  L=8, C=256, H=8, D=32, F=704, T=256, B=16: about an hour on 2 cores
//   micro  (hidden) L=2, C=32, H=2, D=16, F=64, T=16, B=4: tests, seconds
// The vocabulary is the tokenizer's; embeddings are tied.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/plan.hpp"
#include "reference/weights.hpp"

namespace kvlab::ref::train {

struct TrainPreset {
  std::string name;
  std::string description;
  bool hidden = false;             // not listed in --help or errors (tests)
  ModelConfig shape;               // vocab_size left 0: the tokenizer's
  int batch = 16;                  // B: rows per step
  int seq_len = 128;               // T: tokens per row (rows hold T + 1 ids)
  double lr = 1e-3;                // peak learning rate
  double lr_floor_fraction = 0.1;  // the cosine ends at lr * this
  std::int64_t steps = 1000;       // default run length
  std::int64_t warmup = 50;        // at most a tenth of the run
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  int val_every = 50;  // steps between validations (and checkpoints, unless asked otherwise)
  int val_rows = 64;   // validation rows of T + 1 tokens (fewer when the split is shorter)
  double recall_fraction = 0.2;  // share of training rows that are recall examples (corpus.hpp)
};

const std::vector<TrainPreset>& train_presets();
// Throws kvlab::Error naming --preset and listing the visible presets.
const TrainPreset& find_train_preset(const std::string& name);

// The preset's model for a tokenizer of `vocab` tokens, `heads` query heads (0: the preset's H;
// must divide the width C, head_dim = C / heads, even) and `kv_heads` KV heads (0: all `heads`,
// MHA; must divide the query heads: GQA, 1 = MQA). Throws kvlab::Error naming --heads or
// --kv-heads.
ModelConfig train_config(const TrainPreset& preset, int vocab, int kv_heads, int heads = 0);

// Initialisation for training (GPT-2 / llm.c / nanoGPT): every matrix ~ N(0, 0.02^2), the residual
// projections W_O and W_2 ~ N(0, (0.02 / sqrt(2L))^2), norms = 1; W_K, W_V only for the plan's KV
// layers. Deterministic for a seed on every machine (SplitMix64 bits, Box-Muller). It is
// ref::init_random (one implementation), with the plan's layer count checked under --plan's name.
template <typename S>
ModelWeights<S> init_for_training(const ModelConfig& cfg, const KvPlan& plan, std::uint64_t seed);

}  // namespace kvlab::ref::train
