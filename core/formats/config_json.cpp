#include "core/formats/config_json.hpp"

#include <fstream>
#include <sstream>
#include <type_traits>

#include "core/error.hpp"

namespace kvlab {
namespace {

template <typename T>
T get_field(const nlohmann::json& j, const char* field, T fallback, bool required) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (required) fail(field, "(absent)", "config.json must define it");
    return fallback;
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) fail(field, it->dump(), "must be true or false");
    return it->template get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) fail(field, it->dump(), "must be an integer");
    long long v = it->template get<long long>();
    if (v < -(1LL << 31) || v > (1LL << 31) - 1) fail(field, it->dump(), "must fit in 32 bits");
    return static_cast<T>(v);
  } else {
    if (!it->is_number()) fail(field, it->dump(), "must be a number");
    return it->template get<T>();
  }
}

}  // namespace

ModelConfig config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("config", j.dump().substr(0, 40), "must be a JSON object");
  ModelConfig c;
  c.hidden_size = get_field<int>(j, "hidden_size", 0, true);
  c.num_hidden_layers = get_field<int>(j, "num_hidden_layers", 0, true);
  c.num_attention_heads = get_field<int>(j, "num_attention_heads", 0, true);
  c.num_key_value_heads = get_field<int>(j, "num_key_value_heads", c.num_attention_heads, false);
  c.head_dim = get_field<int>(
      j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0, false);
  c.intermediate_size = get_field<int>(j, "intermediate_size", 0, true);
  c.vocab_size = get_field<int>(j, "vocab_size", 0, true);
  c.rope_theta = get_field<double>(j, "rope_theta", 10000.0, false);
  c.rms_norm_eps = get_field<double>(j, "rms_norm_eps", 1e-6, false);
  c.max_position_embeddings = get_field<int>(j, "max_position_embeddings", 2048, false);
  c.tie_word_embeddings = get_field<bool>(j, "tie_word_embeddings", false, false);
  c.sliding_window = get_field<int>(j, "sliding_window", 4096, false);
  c.validate();
  return c;
}

nlohmann::json config_to_json(const ModelConfig& c) {
  return nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"hidden_act", "silu"},
                        {"hidden_size", c.hidden_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"num_key_value_heads", c.num_key_value_heads},
                        {"head_dim", c.head_dim},
                        {"intermediate_size", c.intermediate_size},
                        {"vocab_size", c.vocab_size},
                        {"rope_theta", c.rope_theta},
                        {"rms_norm_eps", c.rms_norm_eps},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"tie_word_embeddings", c.tie_word_embeddings},
                        {"sliding_window", c.sliding_window},
                        {"attention_bias", false},
                        {"mlp_bias", false},
                        {"torch_dtype", "float32"}};
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("--config", path, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("--config", path, "is not valid JSON");
  try {
    return config_from_json(j);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace kvlab
