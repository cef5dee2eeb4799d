// config.json: the Hugging Face Llama config file <-> ModelConfig (core/config.hpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/config.hpp"

namespace kvlab {

// Parses a Hugging Face style config object. Unknown fields are ignored; `head_dim` and
// `num_key_value_heads` default as in transformers. Validates. Throws kvlab::Error.
ModelConfig config_from_json(const nlohmann::json& j);
nlohmann::json config_to_json(const ModelConfig& c);  // HF field names, "model_type": "llama"

ModelConfig load_config(const std::string& path);  // reads and validates a config.json

}  // namespace kvlab
