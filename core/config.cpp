#include "core/config.hpp"

#include <algorithm>
#include <cctype>

#include "core/error.hpp"

namespace kvlab {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void check_range(const char* field, long long v, long long lo, long long hi) {
  if (v < lo || v > hi) {
    fail(field, std::to_string(v),
         "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

}  // namespace

void ModelConfig::validate() const {
  check_range("hidden_size", hidden_size, 1, 1 << 17);
  check_range("num_hidden_layers", num_hidden_layers, 1, 1024);
  check_range("num_attention_heads", num_attention_heads, 1, 4096);
  check_range("num_key_value_heads", num_key_value_heads, 1, num_attention_heads);
  check_range("head_dim", head_dim, 2, 4096);
  check_range("intermediate_size", intermediate_size, 1, 1 << 20);
  check_range("vocab_size", vocab_size, 1, 1 << 22);
  check_range("max_position_embeddings", max_position_embeddings, 1, 1 << 24);
  check_range("sliding_window", sliding_window, 1, 1 << 24);
  if (num_attention_heads % num_key_value_heads != 0) {
    fail("num_key_value_heads", std::to_string(num_key_value_heads),
         "must divide num_attention_heads = " + std::to_string(num_attention_heads));
  }
  if (head_dim % 2 != 0) fail("head_dim", std::to_string(head_dim), "must be even (RoPE pairs)");
  if (static_cast<long long>(num_attention_heads) * head_dim != hidden_size) {
    fail("head_dim", std::to_string(head_dim),
         "must equal hidden_size / num_attention_heads = " + std::to_string(hidden_size) + " / " +
             std::to_string(num_attention_heads));
  }
  if (!(rope_theta > 0.0) || rope_theta > 1e12) {
    fail("rope_theta", std::to_string(rope_theta), "must be a positive number (e.g. 10000)");
  }
  if (!(rms_norm_eps > 0.0) || rms_norm_eps > 1.0) {
    fail("rms_norm_eps", std::to_string(rms_norm_eps), "must be in (0, 1]");
  }
}

long long ModelConfig::parameter_count(int kv_layers) const {
  const long long c = hidden_size, f = intermediate_size, v = vocab_size;
  const long long q = static_cast<long long>(num_attention_heads) * head_dim;
  const long long kv = static_cast<long long>(num_key_value_heads) * head_dim;
  const long long n_kv = kv_layers < 0 ? num_hidden_layers : kv_layers;
  long long n = v * c;                                           // embedding
  n += num_hidden_layers * (c * q + q * c + 3 * c * f + 2 * c);  // W_Q, W_O, MLP, two norms
  n += n_kv * 2 * c * kv;                                        // W_K, W_V of KV layers
  n += c;                                                        // final norm
  if (!tie_word_embeddings) n += v * c;                          // classifier
  return n;
}

namespace {

ModelConfig make(int c, int l, int h, int kv, int d, int f, int v, double theta, double eps,
                 int max_pos, bool tied) {
  ModelConfig m;
  m.hidden_size = c;
  m.num_hidden_layers = l;
  m.num_attention_heads = h;
  m.num_key_value_heads = kv;
  m.head_dim = d;
  m.intermediate_size = f;
  m.vocab_size = v;
  m.rope_theta = theta;
  m.rms_norm_eps = eps;
  m.max_position_embeddings = max_pos;
  m.tie_word_embeddings = tied;
  return m;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  // Shapes from each model's public config.json (Hugging Face hub) or llama2.c's README.
  static const std::vector<ModelPreset> presets = [] {
    std::vector<ModelPreset> p = {
        {"tinyllama-1.1b", "TinyLlama/TinyLlama-1.1B (22 layers, GQA 32/4)",
         make(2048, 22, 32, 4, 64, 5632, 32000, 10000, 1e-5, 2048, false)},
        {"llama-2-7b", "meta-llama/Llama-2-7b-hf (MHA)",
         make(4096, 32, 32, 32, 128, 11008, 32000, 10000, 1e-5, 4096, false)},
        {"llama-2-13b", "meta-llama/Llama-2-13b-hf (MHA)",
         make(5120, 40, 40, 40, 128, 13824, 32000, 10000, 1e-5, 4096, false)},
        {"llama-2-70b", "meta-llama/Llama-2-70b-hf (GQA 64/8)",
         make(8192, 80, 64, 8, 128, 28672, 32000, 10000, 1e-5, 4096, false)},
        {"llama-30b", "LLaMA-30B (first LLaMA, 32.5B parameters, MHA)",
         make(6656, 60, 52, 52, 128, 17920, 32000, 10000, 1e-6, 2048, false)},
        {"llama-3-8b", "meta-llama/Meta-Llama-3-8B (GQA 32/8)",
         make(4096, 32, 32, 8, 128, 14336, 128256, 500000, 1e-5, 8192, false)},
        {"llama-3-70b", "meta-llama/Meta-Llama-3-70B (GQA 64/8)",
         make(8192, 80, 64, 8, 128, 28672, 128256, 500000, 1e-5, 8192, false)},
        {"mistral-7b", "mistralai/Mistral-7B-v0.1 (GQA 32/8, sliding window 4096)",
         make(4096, 32, 32, 8, 128, 14336, 32000, 10000, 1e-5, 32768, false)},
        {"smollm-135m", "HuggingFaceTB/SmolLM-135M (GQA 9/3, tied)",
         make(576, 30, 9, 3, 64, 1536, 49152, 10000, 1e-5, 2048, true)},
        {"stories15m", "llama2.c stories15M (TinyStories)",
         make(288, 6, 6, 6, 48, 768, 32000, 10000, 1e-5, 256, true)},
        {"stories42m", "llama2.c stories42M (TinyStories)",
         make(512, 8, 8, 8, 64, 1376, 32000, 10000, 1e-5, 1024, true)},
        {"stories110m", "llama2.c stories110M (TinyStories)",
         make(768, 12, 12, 12, 64, 2048, 32000, 10000, 1e-5, 1024, true)},
        {"cla-1b",
         "CLA paper 1B shape: 20 layers, width 2048, MQA, head dim 128 (MLP width assumed)",
         make(2048, 20, 16, 1, 128, 5632, 32000, 10000, 1e-5, 2048, false)},
    };
    return p;
  }();
  return presets;
}

const ModelPreset& find_model_preset(const std::string& name) {
  const std::string key = lower(name);
  for (const auto& p : model_presets()) {
    if (p.name == key) return p;
  }
  std::string known;
  for (const auto& p : model_presets()) known += (known.empty() ? "" : ", ") + p.name;
  fail("--model", name, "unknown preset; known presets: " + known);
}

}  // namespace kvlab
