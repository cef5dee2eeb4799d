// config.json round trip, presets (public facts), and a named error per bad field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/formats/config_json.hpp"

using kvlab::ModelConfig;
using nlohmann::json;

namespace {

json tiny() {
  return json{{"hidden_size", 64},        {"num_hidden_layers", 4}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"intermediate_size", 96}, {"vocab_size", 100}};
}

void expect_error(const json& j, const std::string& fragment) {
  try {
    kvlab::config_from_json(j);
    FAIL() << "should have been rejected: " << j.dump();
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message: " << e.what() << "\nexpected: " << fragment;
  }
}

}  // namespace

TEST(Config, DefaultsLikeTransformers) {
  const ModelConfig c = kvlab::config_from_json(tiny());
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_key_value_heads, 2);
  json j = tiny();
  j.erase("num_key_value_heads");
  EXPECT_EQ(kvlab::config_from_json(j).num_key_value_heads, 4);
}

TEST(Config, RoundTrip) {
  for (const auto& p : kvlab::model_presets()) {
    const ModelConfig back = kvlab::config_from_json(kvlab::config_to_json(p.config));
    EXPECT_EQ(kvlab::config_to_json(back), kvlab::config_to_json(p.config)) << p.name;
  }
}

TEST(Config, PresetsAreValidPublicShapes) {
  ASSERT_GE(kvlab::model_presets().size(), 13u);
  for (const auto& p : kvlab::model_presets()) EXPECT_NO_THROW(p.config.validate()) << p.name;
  const auto& t = kvlab::find_model_preset("TinyLlama-1.1B").config;
  EXPECT_EQ(t.num_hidden_layers, 22);
  EXPECT_EQ(t.num_key_value_heads, 4);
  EXPECT_EQ(t.head_dim, 64);
  // Parameter counts of public models, to 1%.
  EXPECT_NEAR(t.parameter_count() / 1e9, 1.100, 0.011);
  EXPECT_NEAR(kvlab::find_model_preset("llama-2-7b").config.parameter_count() / 1e9, 6.738, 0.07);
  EXPECT_NEAR(kvlab::find_model_preset("llama-3-8b").config.parameter_count() / 1e9, 8.030, 0.08);
  EXPECT_NEAR(kvlab::find_model_preset("llama-2-70b").config.parameter_count() / 1e9, 68.98, 0.7);
  EXPECT_NEAR(kvlab::find_model_preset("stories110m").config.parameter_count() / 1e6, 110, 2);
  EXPECT_NEAR(kvlab::find_model_preset("stories15m").config.parameter_count() / 1e6, 15.2, 0.5);
  EXPECT_NEAR(kvlab::find_model_preset("smollm-135m").config.parameter_count() / 1e6, 134.5, 1.5);
  EXPECT_THROW(kvlab::find_model_preset("gpt-5"), kvlab::Error);
}

TEST(ConfigErrors, MissingField) {
  json j = tiny();
  j.erase("vocab_size");
  expect_error(j, "vocab_size = (absent)");
}
TEST(ConfigErrors, WrongType) {
  json j = tiny();
  j["hidden_size"] = "64";
  expect_error(j, "hidden_size = \"64\" is invalid: must be an integer");
  j = tiny();
  j["tie_word_embeddings"] = 1;
  expect_error(j, "tie_word_embeddings");
}
TEST(ConfigErrors, NegativeOrAbsurd) {
  json j = tiny();
  j["num_hidden_layers"] = -3;
  expect_error(j, "num_hidden_layers = -3");
  j = tiny();
  j["vocab_size"] = 1LL << 40;
  expect_error(j, "vocab_size");
  j = tiny();
  j["rms_norm_eps"] = -1.0;
  expect_error(j, "rms_norm_eps");
}
TEST(ConfigErrors, HeadsThatDoNotDivide) {
  json j = tiny();
  j["num_key_value_heads"] = 3;
  expect_error(j, "num_key_value_heads = 3 is invalid: must divide num_attention_heads = 4");
}
TEST(ConfigErrors, ContradictoryHeadDim) {
  json j = tiny();
  j["head_dim"] = 32;
  expect_error(j, "head_dim = 32 is invalid: must equal hidden_size / num_attention_heads");
}
TEST(ConfigErrors, MalformedFile) {
  const auto path = std::filesystem::temp_directory_path() / "kvlab_bad_config.json";
  std::ofstream(path) << "{\"hidden_size\": 64,";
  EXPECT_THROW(kvlab::load_config(path.string()), kvlab::Error);
  std::ofstream(path) << "[1, 2]";
  EXPECT_THROW(kvlab::load_config(path.string()), kvlab::Error);
  std::filesystem::remove(path);
  EXPECT_THROW(kvlab::load_config("/nonexistent/config.json"), kvlab::Error);
}
