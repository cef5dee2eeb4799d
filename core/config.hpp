// Model configuration with Hugging Face Llama field names; config.json: core/formats/config_json.
#pragma once

#include <string>
#include <vector>

namespace kvlab {

struct ModelConfig {
  int hidden_size = 0;               // C
  int num_hidden_layers = 0;         // L
  int num_attention_heads = 0;       // H
  int num_key_value_heads = 0;       // H_kv (GQA; = H for MHA, 1 for MQA)
  int head_dim = 0;                  // D (H * D == C)
  int intermediate_size = 0;         // F (SwiGLU width)
  int vocab_size = 0;                // V
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  int sliding_window = 4096;         // window W of layers the plan marks as sliding ("s")

  // Throws kvlab::Error naming the first field that is out of range or inconsistent.
  void validate() const;

  // Number of parameters (embedding, all layers, norms, classifier if untied), assuming every
  // layer has W_K and W_V; `kv_layers` (if >= 0) counts only that many layers with W_K, W_V.
  long long parameter_count(int kv_layers = -1) const;
};

struct ModelPreset {
  std::string name;         // e.g. "tinyllama-1.1b"
  std::string description;  // where the shape comes from
  ModelConfig config;
};
const std::vector<ModelPreset>& model_presets();
// Case-insensitive lookup; throws kvlab::Error listing the known names.
const ModelPreset& find_model_preset(const std::string& name);

}  // namespace kvlab
