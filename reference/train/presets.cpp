#include "reference/train/presets.hpp"

#include <cmath>

#include "core/error.hpp"

namespace kvlab::ref::train {
namespace {

ModelConfig shape(int L, int C, int H, int D, int F, int T) {
  ModelConfig c;
  c.num_hidden_layers = L;
  c.hidden_size = C;
  c.num_attention_heads = H;
  c.num_key_value_heads = H;
  c.head_dim = D;
  c.intermediate_size = F;
  c.max_position_embeddings = T;
  c.tie_word_embeddings = true;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  return c;
}

}  // namespace

const std::vector<TrainPreset>& train_presets() {
  static const std::vector<TrainPreset> presets = [] {
    std::vector<TrainPreset> p;
    TrainPreset tiny;
    tiny.name = "tiny";
    tiny.description = "L=6 C=128 H=4 D=32 F=384 T=128 B=16: minutes on 2 cores";
    tiny.shape = shape(6, 128, 4, 32, 384, 128);
    tiny.batch = 16;
    tiny.seq_len = 128;
    tiny.lr = 2e-3;
    tiny.steps = 300;
    tiny.warmup = 30;
    tiny.val_every = 50;
    tiny.val_rows = 64;
    p.push_back(tiny);
    TrainPreset small;
    small.name = "small";
    small.description = "L=8 C=256 H=8 D=32 F=704 T=256 B=16: about an hour on 2 cores";
    small.shape = shape(8, 256, 8, 32, 704, 256);
    small.batch = 16;
    small.seq_len = 256;
    small.lr = 1e-3;
    small.steps = 600;
    small.warmup = 60;
    small.val_every = 100;
    small.val_rows = 64;
    p.push_back(small);
    TrainPreset micro;
    micro.name = "micro";
    micro.description = "L=2 C=32 H=2 D=16 F=64 T=16 B=4: tests";
    micro.hidden = true;
    micro.shape = shape(2, 32, 2, 16, 64, 16);
    micro.batch = 4;
    micro.seq_len = 16;
    micro.lr = 3e-3;
    micro.steps = 20;
    micro.warmup = 2;
    micro.val_every = 5;
    micro.val_rows = 8;
    micro.recall_fraction = 0;  // rows of 17 tokens hold no passkey example
    p.push_back(micro);
    return p;
  }();
  return presets;
}

const TrainPreset& find_train_preset(const std::string& name) {
  for (const auto& p : train_presets()) {
    if (p.name == name) return p;
  }
  std::string known;
  for (const auto& p : train_presets()) {
    if (!p.hidden) known += (known.empty() ? "" : ", ") + p.name;
  }
  fail("--preset", name.empty() ? "(none)" : name, "must be one of " + known);
}

ModelConfig train_config(const TrainPreset& preset, int vocab, int kv_heads, int heads) {
  ModelConfig c = preset.shape;
  c.vocab_size = vocab;
  if (heads != 0) {
    const int C = c.hidden_size;
    if (heads < 1 || C % heads != 0 || (C / heads) % 2 != 0) {
      fail("--heads", std::to_string(heads),
           "must divide the preset's hidden_size = " + std::to_string(C) +
               " into an even head_dim (head_dim = hidden_size / heads; preset " + preset.name +
               " has " + std::to_string(c.num_attention_heads) + ")");
    }
    c.num_attention_heads = heads;
    c.num_key_value_heads = heads;
    c.head_dim = C / heads;
  }
  if (kv_heads != 0) {
    if (kv_heads < 0 || c.num_attention_heads % kv_heads != 0) {
      fail("--kv-heads", std::to_string(kv_heads),
           std::string(heads != 0 ? "must divide --heads = "
                                  : "must divide the preset's num_attention_heads = ") +
               std::to_string(c.num_attention_heads) + " (1: MQA)");
    }
    c.num_key_value_heads = kv_heads;
  }
  c.validate();
  return c;
}

template <typename S>
ModelWeights<S> init_for_training(const ModelConfig& c, const KvPlan& plan, std::uint64_t seed) {
  c.validate();
  if (plan.layers() != c.num_hidden_layers) {
    fail("--plan", plan.to_string(),
         "has " + std::to_string(plan.layers()) + " layers; the model has " +
             std::to_string(c.num_hidden_layers));
  }
  return init_random<S>(c, plan, seed);
}

template ModelWeights<float> init_for_training<float>(const ModelConfig&, const KvPlan&,
                                                      std::uint64_t);
template ModelWeights<double> init_for_training<double>(const ModelConfig&, const KvPlan&,
                                                        std::uint64_t);

}  // namespace kvlab::ref::train
