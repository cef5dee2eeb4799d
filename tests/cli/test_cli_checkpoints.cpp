// Real-checkpoint formats end to end through the CLI (issue 6): kvlab convert round trips
// (kvlab -> hf -> kvlab, kvlab -> llama2c -> kvlab give identical logits), the averaged W_K, W_V
// of convert --plan, and every class of bad input (shards missing or holding a tensor twice,
// weight_map keys listed twice, unknown or missing tensors, an unsupported dtype, config fields
// absent or contradictory, a truncated .bin): a named error, exit status 2, no output left.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/formats/npy.hpp"
#include "core/formats/safetensors.hpp"
#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using kvlab::TensorDtype;
using nlohmann::json;

namespace {

const std::string kTokens = "1,72,101,108,108,111,44,32,119,111,114,108,100,33,10,7,299,0,3";

class Checkpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("kvlab_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // A kvlab checkpoint: 4 layers, GQA 4/2, vocab 300.
  fs::path make_kvlab(const std::string& name, bool tied = false,
                      const std::string& plan = "standard", double theta = 10000.0) {
    const fs::path cfg = dir_ / (name + ".json");
    std::ofstream(cfg) << json{
        {"hidden_size", 64},
        {"num_hidden_layers", 4},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"intermediate_size", 96},
        {"vocab_size", 300},
        {"max_position_embeddings", 64},
        {"rope_theta", theta},
        {"rms_norm_eps", 1e-5},
        {"tie_word_embeddings",
         tied}}.dump();
    const fs::path out = dir_ / name;
    const RunResult r = run_kvlab("init --config " + cfg.string() + " --plan " + plan +
                                  " --seed 11 -o " + out.string());
    EXPECT_EQ(r.status, 0) << r.output;
    return out;
  }

  RunResult convert(const fs::path& from, const std::string& to, const fs::path& out,
                    const std::string& extra = "") {
    return run_kvlab("convert --model " + from.string() + " --to " + to + " -o " + out.string() +
                     " " + extra);
  }

  std::string logits_bytes(const fs::path& model, const std::string& extra = "") {
    const fs::path out = dir_ / ("logits_" + std::to_string(counter_++) + ".npy");
    const RunResult r = run_kvlab("forward --model " + model.string() + " --tokens " + kTokens +
                                  " " + extra + " --out " + out.string());
    EXPECT_EQ(r.status, 0) << r.output;
    std::ifstream in(out, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Expects `kvlab forward` on `model` to fail with exit status 2 and `phrase` in the message.
  void expect_forward_error(const fs::path& model, const std::string& phrase) {
    const fs::path out = dir_ / "bad.npy";
    const RunResult r = run_kvlab("forward --model " + model.string() + " --tokens " + kTokens +
                                  " --out " + out.string());
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find(phrase), std::string::npos) << "want \"" << phrase << "\" in\n"
                                                        << r.output;
    EXPECT_FALSE(fs::exists(out));
  }

  // A Hugging Face directory with the tensors of `src` split over `shards` files and an index.
  fs::path make_sharded(const fs::path& src, const std::string& name, int shards = 3) {
    const fs::path out = dir_ / name;
    fs::create_directories(out);
    fs::copy_file(src / "config.json", out / "config.json");
    json cfg = json::parse(std::ifstream(out / "config.json"));
    cfg.erase("kvlab");
    std::ofstream(out / "config.json") << cfg.dump(2);
    const kvlab::SafetensorsFile st = kvlab::open_safetensors((src / "model.safetensors").string());
    const auto names = st.names();
    std::vector<std::vector<float>> store;
    store.reserve(names.size());
    json map = json::object();
    for (int k = 0; k < shards; ++k) {
      const std::string file = shard_name(k, shards);
      std::vector<kvlab::TensorRef> refs;
      for (size_t i = k; i < names.size(); i += shards) {
        store.push_back(st.read_f32(names[i]));
        refs.push_back({names[i], st.shape(names[i]), std::span<const float>(store.back())});
        map[names[i]] = file;
      }
      kvlab::write_safetensors((out / file).string(), refs);
    }
    std::ofstream(out / "model.safetensors.index.json")
        << json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump(2);
    return out;
  }
  static std::string shard_name(int k, int n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k + 1, n);
    return buf;
  }
  json read_index(const fs::path& d) {
    return json::parse(std::ifstream(d / "model.safetensors.index.json"));
  }
  void write_index(const fs::path& d, const json& j) {
    std::ofstream(d / "model.safetensors.index.json") << j.dump(2);
  }

  fs::path dir_;
  int counter_ = 0;
};

}  // namespace

TEST_F(Checkpoints, KvlabToHfToKvlabIdenticalLogits) {
  for (bool tied : {false, true}) {
    const std::string tag = tied ? "tied" : "untied";
    const fs::path a = make_kvlab("a_" + tag, tied);
    const fs::path hf = dir_ / ("hf_" + tag), back = dir_ / ("back_" + tag);
    RunResult r = convert(a, "hf", hf);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_FALSE(json::parse(std::ifstream(hf / "config.json")).contains("kvlab"));
    r = convert(hf, "kvlab", back);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string ref = logits_bytes(a);
    ASSERT_FALSE(ref.empty());
    EXPECT_EQ(logits_bytes(hf), ref);
    EXPECT_EQ(logits_bytes(back), ref);
  }
}

TEST_F(Checkpoints, KvlabToLlama2cToKvlabIdenticalLogits) {
  for (bool tied : {false, true}) {
    const std::string tag = tied ? "tied" : "untied";
    const fs::path a = make_kvlab("a_" + tag, tied);
    const fs::path bin = dir_ / ("m_" + tag + ".bin"), back = dir_ / ("back_" + tag);
    RunResult r = convert(a, "llama2c", bin);
    ASSERT_EQ(r.status, 0) << r.output;
    // The header says whether the classifier is shared.
    std::int32_t h[7];
    std::ifstream(bin, std::ios::binary).read(reinterpret_cast<char*>(h), sizeof h);
    EXPECT_EQ(h[5], tied ? 300 : -300);
    r = convert(bin, "kvlab", back);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string ref = logits_bytes(a);
    EXPECT_EQ(logits_bytes(bin), ref);
    EXPECT_EQ(logits_bytes(back), ref);
    // And in float64.
    EXPECT_EQ(logits_bytes(bin, "--precision f64"), logits_bytes(a, "--precision f64"));
  }
}

TEST_F(Checkpoints, ShardedHfDirectoryMatchesSingleFile) {
  const fs::path a = make_kvlab("a");
  const fs::path sharded = make_sharded(a, "sharded");
  EXPECT_EQ(logits_bytes(sharded), logits_bytes(a));
  // Extra tensors transformers may carry (RoPE frequencies) are ignored by name.
  const fs::path extra = dir_ / "extra";
  fs::copy(sharded, extra);
  std::vector<float> inv(8, 1.0f);
  kvlab::write_safetensors(
      (extra / "rope.safetensors").string(),
      {{"model.layers.0.self_attn.rotary_emb.inv_freq", {8}, std::span<const float>(inv)}});
  json idx = read_index(extra);
  idx["weight_map"]["model.layers.0.self_attn.rotary_emb.inv_freq"] = "rope.safetensors";
  write_index(extra, idx);
  EXPECT_EQ(logits_bytes(extra), logits_bytes(a));
}

TEST_F(Checkpoints, ConvertPlanAveragesReadersKeysAndValues) {
  const fs::path a = make_kvlab("a");
  const fs::path c2 = dir_ / "cla2";
  RunResult r = convert(a, "kvlab", c2, "--plan cla:2");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto src = kvlab::open_safetensors((a / "model.safetensors").string());
  const auto dst = kvlab::open_safetensors((c2 / "model.safetensors").string());
  // cla:2 on 4 layers: KV layers 0 and 2, read by (0, 1) and (2, 3).
  for (int kv : {0, 2}) {
    for (const char* proj : {"k_proj", "v_proj"}) {
      const auto name = [&](int l) {
        return "model.layers." + std::to_string(l) + ".self_attn." + proj + ".weight";
      };
      const auto x = src.read_f32(name(kv)), y = src.read_f32(name(kv + 1)),
                 m = dst.read_f32(name(kv));
      ASSERT_EQ(m.size(), x.size());
      for (size_t i : {size_t(0), size_t(17), m.size() - 1}) {
        EXPECT_FLOAT_EQ(m[i], (x[i] + y[i]) / 2) << name(kv) << "[" << i << "]";
      }
      EXPECT_FALSE(dst.has(name(kv + 1)));
    }
  }
  // Everything else is copied.
  EXPECT_EQ(src.read_f32("model.layers.3.self_attn.q_proj.weight"),
            dst.read_f32("model.layers.3.self_attn.q_proj.weight"));
  const json cfg = json::parse(std::ifstream(c2 / "config.json"));
  EXPECT_EQ(cfg["kvlab"]["plan_spec"], "cla:2");
  // The new checkpoint runs.
  EXPECT_FALSE(logits_bytes(c2).empty());
}

TEST_F(Checkpoints, ConvertRefusesWhatTheTargetCannotExpress) {
  const fs::path cla = make_kvlab("cla", false, "cla:2");
  for (const auto& [to, out] :
       {std::pair<std::string, std::string>{"hf", "o_hf"}, {"llama2c", "o.bin"}}) {
    const RunResult r = convert(cla, to, dir_ / out);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("standard plan"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir_ / out));
  }
  // Averaging needs W_K, W_V in every layer.
  RunResult r = convert(cla, "kvlab", dir_ / "o2", "--plan cla:4");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("averaging needs W_K, W_V in every layer"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "o2"));
  // llama2.c hard-codes rope_theta = 10000.
  const fs::path theta = make_kvlab("theta", false, "standard", 500000.0);
  r = convert(theta, "llama2c", dir_ / "t.bin");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("rope_theta"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "t.bin"));
  // --plan writes kvlab only; an existing output is not overwritten; a bad --to is named.
  r = convert(theta, "hf", dir_ / "o3", "--plan cla:2");
  EXPECT_EQ(r.status, 2) << r.output;
  r = convert(theta, "hf", theta);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  r = convert(theta, "gguf", dir_ / "o4");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--to"), std::string::npos) << r.output;
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST_F(Checkpoints, ConvertStoresF16AndBf16RoundedToNearest) {
  const fs::path a = make_kvlab("a_half", true, "cla:2");
  const kvlab::SafetensorsFile src = kvlab::open_safetensors((a / "model.safetensors").string());
  for (const std::string dtype : {"f16", "bf16"}) {
    const fs::path out = dir_ / ("half_" + dtype);
    const RunResult r = convert(a, "kvlab", out, "--dtype " + dtype);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(dtype == "f16" ? "F16" : "BF16"), std::string::npos) << r.output;
    const kvlab::SafetensorsFile half =
        kvlab::open_safetensors((out / "model.safetensors").string());
    ASSERT_EQ(half.names().size(), src.names().size());
    for (const std::string& name : src.names()) {
      EXPECT_EQ(half.dtype(name), dtype == "f16" ? TensorDtype::F16 : TensorDtype::BF16);
      const std::vector<float> want = src.read_f32(name), got = half.read_f32(name);
      ASSERT_EQ(got.size(), want.size()) << name;
      for (size_t i = 0; i < want.size(); ++i) {
        const float rounded = dtype == "f16" ? kvlab::f16_to_f32(kvlab::f32_to_f16(want[i]))
                                             : kvlab::bf16_to_f32(kvlab::f32_to_bf16(want[i]));
        ASSERT_EQ(got[i], rounded) << name << "[" << i << "]";
      }
    }
    EXPECT_LT(fs::file_size(out / "model.safetensors"),
              fs::file_size(a / "model.safetensors") * 6 / 10);
    EXPECT_FALSE(logits_bytes(out).empty());  // and it runs
  }
  RunResult r = convert(a, "kvlab", dir_ / "h8", "--dtype f8");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--dtype"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("f8"), std::string::npos) << r.output;
  const fs::path std_model = make_kvlab("std_half", false);
  r = convert(std_model, "llama2c", dir_ / "h.bin", "--dtype f16");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("float32"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "h8"));
  EXPECT_FALSE(fs::exists(dir_ / "h.bin"));
}

TEST_F(Checkpoints, MissingShard) {
  const fs::path s = make_sharded(make_kvlab("a"), "s");
  fs::remove(s / shard_name(1, 3));
  expect_forward_error(s, "shard = " + shard_name(1, 3) + " is invalid: is missing");
}

TEST_F(Checkpoints, TensorHeldByTwoShards) {
  const fs::path a = make_kvlab("a");
  const fs::path s = make_sharded(a, "s");
  // Shard 2 rewritten with one more tensor that shard 1 already holds.
  const auto st = kvlab::open_safetensors((s / shard_name(1, 3)).string());
  const auto one = kvlab::open_safetensors((s / shard_name(0, 3)).string());
  std::vector<std::vector<float>> store;
  std::vector<kvlab::TensorRef> refs;
  auto names = st.names();
  names.push_back(one.names()[0]);
  store.reserve(names.size());
  for (const auto& n : names) {
    const auto& src = st.has(n) ? st : one;
    store.push_back(src.read_f32(n));
    refs.push_back({n, src.shape(n), std::span<const float>(store.back())});
  }
  kvlab::write_safetensors((s / shard_name(1, 3)).string(), refs);
  expect_forward_error(s, "is held twice");
}

TEST_F(Checkpoints, WeightMapKeyListedTwice) {
  const fs::path s = make_sharded(make_kvlab("a"), "s");
  const json idx = read_index(s);
  std::string text = idx.dump(2);
  const std::string first = idx["weight_map"].begin().key();
  const std::string entry =
      "\"" + first + "\": \"" + idx["weight_map"][first].get<std::string>() + "\"";
  const size_t at = text.find(entry);
  ASSERT_NE(at, std::string::npos);
  text.insert(at, entry + ",\n    ");
  std::ofstream(s / "model.safetensors.index.json") << text;
  expect_forward_error(s, "weight_map = " + first + " is invalid: is listed twice");
}

TEST_F(Checkpoints, UnknownAndMissingTensors) {
  const fs::path a = make_kvlab("a");
  const fs::path s = make_sharded(a, "s");
  // A tensor in the index that no shard holds.
  json idx = read_index(s);
  idx["weight_map"]["model.layers.9.mlp.up_proj.weight"] = shard_name(0, 3);
  write_index(s, idx);
  expect_forward_error(s, "which does not hold it");
  // A tensor kvlab does not know.
  const fs::path u = make_sharded(a, "u");
  std::vector<float> v(4, 0.5f);
  kvlab::write_safetensors(
      (u / "extra.safetensors").string(),
      {{"model.layers.0.self_attn.q_norm.weight", {4}, std::span<const float>(v)}});
  idx = read_index(u);
  idx["weight_map"]["model.layers.0.self_attn.q_norm.weight"] = "extra.safetensors";
  write_index(u, idx);
  expect_forward_error(
      u, "model.layers.0.self_attn.q_norm.weight is invalid: is not part of this model");
  // A tensor missing from the index and its shard.
  const fs::path m = make_sharded(a, "m");
  idx = read_index(m);
  const std::string gone = "model.layers.2.mlp.down_proj.weight";
  const std::string file = idx["weight_map"][gone];
  idx["weight_map"].erase(gone);
  write_index(m, idx);
  const auto st = kvlab::open_safetensors((m / file).string());
  std::vector<std::vector<float>> store;
  std::vector<kvlab::TensorRef> refs;
  const auto names = st.names();
  store.reserve(names.size());
  for (const auto& n : names) {
    if (n == gone) continue;
    store.push_back(st.read_f32(n));
    refs.push_back({n, st.shape(n), std::span<const float>(store.back())});
  }
  kvlab::write_safetensors((m / file).string(), refs);
  expect_forward_error(m, "tensor = " + gone + " is invalid: is missing");
  // A tensor in a shard the index does not list it for.
  const fs::path n2 = make_sharded(a, "n2");
  idx = read_index(n2);
  idx["weight_map"].erase("model.norm.weight");
  write_index(n2, idx);
  expect_forward_error(n2, "not listed in weight_map");
}

TEST_F(Checkpoints, UnsupportedDtype) {
  const fs::path a = make_kvlab("a");
  const fs::path hf = dir_ / "hf";
  ASSERT_EQ(convert(a, "hf", hf).status, 0);
  // Rewrite the header of model.safetensors: model.norm.weight (64 F32 = 256 bytes) as I32.
  std::string bytes;
  {
    std::ifstream in(hf / "model.safetensors", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::string header = bytes.substr(8, n);
  json h = json::parse(header);
  h["model.norm.weight"]["dtype"] = "I32";
  std::string nh = h.dump();
  ASSERT_LE(nh.size(), n);
  nh.resize(n, ' ');
  bytes.replace(8, n, nh);
  std::ofstream(hf / "model.safetensors", std::ios::binary) << bytes;
  expect_forward_error(hf, "I32");
}

TEST_F(Checkpoints, ConfigFieldsAbsentOrContradictory) {
  const fs::path a = make_kvlab("a");
  const fs::path hf = dir_ / "hf";
  ASSERT_EQ(convert(a, "hf", hf).status, 0);
  const json good = json::parse(std::ifstream(hf / "config.json"));
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    std::ofstream(hf / "config.json") << j.dump(2);
  };
  with([](json& j) { j.erase("hidden_size"); });
  expect_forward_error(hf, "hidden_size");
  with([](json& j) { j["head_dim"] = 8; });
  expect_forward_error(hf, "head_dim");
  with([](json& j) { j["num_key_value_heads"] = 3; });
  expect_forward_error(hf, "num_key_value_heads");
  with([](json& j) { j["model_type"] = "gpt2"; });
  expect_forward_error(hf, "model_type");
  with([](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; });
  expect_forward_error(hf, "rope_scaling");
  with([](json& j) { j["attention_bias"] = true; });
  expect_forward_error(hf, "attention_bias");
  with([](json& j) { j["intermediate_size"] = 97; });
  expect_forward_error(hf, "config.json implies");
  // Both a single file and an index: ambiguous.
  with([](json&) {});
  std::ofstream(hf / "model.safetensors.index.json") << "{\"weight_map\": {}}";
  expect_forward_error(hf, "holds both model.safetensors and model.safetensors.index.json");
  fs::remove(hf / "model.safetensors.index.json");
  fs::remove(hf / "model.safetensors");
  expect_forward_error(hf, "has neither model.safetensors nor");
}

TEST_F(Checkpoints, TruncatedOrForeignBin) {
  const fs::path a = make_kvlab("a");
  const fs::path bin = dir_ / "m.bin";
  ASSERT_EQ(convert(a, "llama2c", bin).status, 0);
  const auto size = fs::file_size(bin);
  const fs::path cut = dir_ / "cut.bin";
  fs::copy_file(bin, cut);
  fs::resize_file(cut, size - 4);
  expect_forward_error(cut, "is truncated");
  fs::resize_file(cut, 12);
  expect_forward_error(cut, "28-byte header");
  fs::copy_file(bin, dir_ / "long.bin");
  fs::resize_file(dir_ / "long.bin", size + 8);
  expect_forward_error(dir_ / "long.bin", "longer than its header implies");
  // A header with a negative or zero field.
  fs::copy_file(bin, dir_ / "neg.bin");
  {
    std::fstream f(dir_ / "neg.bin", std::ios::in | std::ios::out | std::ios::binary);
    const std::int32_t bad = -4;
    f.seekp(8);
    f.write(reinterpret_cast<const char*>(&bad), 4);
  }
  expect_forward_error(dir_ / "neg.bin", "header.n_layers");
  expect_forward_error(dir_ / "nothing_here", "is neither a checkpoint directory");
  expect_forward_error(a / "config.json", "not a llama2.c .bin: give the directory");
  expect_forward_error(a / "model.safetensors", "not a llama2.c .bin: give the directory");
}

TEST_F(Checkpoints, PromptNeedsATokenizerForForeignModels) {
  const fs::path a = make_kvlab("a");
  const fs::path bin = dir_ / "m.bin";
  ASSERT_EQ(convert(a, "llama2c", bin).status, 0);
  const RunResult r = run_kvlab("forward --model " + bin.string() + " --prompt hello --out " +
                                (dir_ / "p.npy").string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("has no tokenizer"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "p.npy"));
  // Likewise a Hugging Face directory without tokenizer.json.
  ASSERT_EQ(convert(a, "hf", dir_ / "hf").status, 0);
  const RunResult h = run_kvlab("forward --model " + (dir_ / "hf").string() +
                                " --prompt hello --out " + (dir_ / "p.npy").string());
  EXPECT_EQ(h.status, 2) << h.output;
  EXPECT_NE(h.output.find("no tokenizer.json"), std::string::npos) << h.output;
}

TEST_F(Checkpoints, Llama2cBinWithItsTokenizer) {
  const fs::path a = make_kvlab("a");
  const fs::path bin = dir_ / "m.bin";
  ASSERT_EQ(convert(a, "llama2c", bin).status, 0);
  const fs::path tok = dir_ / "tok.bin";
  write_llama2c_tokenizer(tok, 20);
  // run.c's encoding of "hello" with byte tokens only: BOS, the dummy-prefix " " (259), h e l l o
  // (byte + 3).
  const fs::path out = dir_ / "text.npy";
  RunResult r = run_kvlab("forward --model " + bin.string() + " --tokenizer " + tok.string() +
                          " --prompt hello --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_kvlab("forward --model " + bin.string() + " --tokens 1,259,107,104,111,111,114 --out " +
                (dir_ / "ids.npy").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(kvlab::read_npy(out.string()).values,
            kvlab::read_npy((dir_ / "ids.npy").string()).values);
  // tokenizer.bin beside the .bin is found without --tokenizer; generate decodes with it.
  fs::copy_file(tok, dir_ / "tokenizer.bin");
  r = run_kvlab("generate --model " + bin.string() + " --prompt hello --max-new 3");
  EXPECT_EQ(r.status, 0) << r.output;
  // A tokenizer with more tokens than the model's vocabulary is a named error.
  write_llama2c_tokenizer(tok, 60);
  r = run_kvlab("forward --model " + bin.string() + " --tokenizer " + tok.string() +
                " --prompt hello --out " + (dir_ / "big.npy").string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("more than the model's vocab_size = 300"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "big.npy"));
  r = run_kvlab("forward --model " + bin.string() + " --tokenizer " + (dir_ / "nope.bin").string() +
                " --prompt hello --out " + (dir_ / "big.npy").string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
}
