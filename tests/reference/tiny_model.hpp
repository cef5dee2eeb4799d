// A tiny model shape for reference tests: awkward enough to catch indexing bugs (GQA 6/2, odd
// vocabulary, a window of 3) and small enough for float64 runs in milliseconds.
#pragma once

#include "core/config.hpp"

inline kvlab::ModelConfig tiny_config(int layers = 6) {
  kvlab::ModelConfig c;
  c.hidden_size = 48;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 40;
  c.vocab_size = 37;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 64;
  c.sliding_window = 3;
  c.tie_word_embeddings = false;
  return c;
}

// Every generator with at least one instance, for 6 layers.
inline const std::vector<std::string>& all_plan_specs() {
  static const std::vector<std::string> specs = {"standard",
                                                 "cla:2",
                                                 "cla:4",
                                                 "mlkv:3",
                                                 "lckv:2",
                                                 "pizza-bottom:3",
                                                 "pizza-top:3",
                                                 "pizza-middle:3",
                                                 "sandwich-bottom:4",
                                                 "sandwich-top:4",
                                                 "sandwich-middle:4",
                                                 "lasagna-bottom:4",
                                                 "lasagna-top:4",
                                                 "lasagna-middle:4",
                                                 "yoco",
                                                 "0s_0_2s_2_4_4s"};
  return specs;
}
