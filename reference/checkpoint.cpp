#include "reference/checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/safetensors.hpp"
#include "reference/ops.hpp"

namespace kvlab::ref {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("--model", path.parent_path().string(), "has no readable config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail(path.string(), "(not JSON)", "config.json must be valid JSON");
  return j;
}

// Pointers to each weight array under its Hugging Face name, in tensor_specs order.
template <typename S>
std::map<std::string, Buffer<S>*> named_arrays(ModelWeights<S>& w) {
  std::map<std::string, Buffer<S>*> m;
  m["model.embed_tokens.weight"] = &w.embed;
  for (int l = 0; l < static_cast<int>(w.layers.size()); ++l) {
    auto& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m[p + "input_layernorm.weight"] = &L.attn_norm;
    m[p + "self_attn.q_proj.weight"] = &L.wq;
    m[p + "self_attn.k_proj.weight"] = &L.wk;
    m[p + "self_attn.v_proj.weight"] = &L.wv;
    m[p + "self_attn.o_proj.weight"] = &L.wo;
    m[p + "post_attention_layernorm.weight"] = &L.ffn_norm;
    m[p + "mlp.gate_proj.weight"] = &L.w1;
    m[p + "mlp.up_proj.weight"] = &L.w3;
    m[p + "mlp.down_proj.weight"] = &L.w2;
  }
  m["model.norm.weight"] = &w.final_norm;
  m["lm_head.weight"] = &w.classifier;
  return m;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

void save_impl(const std::string& dir, const ModelWeights<float>& w, const CheckpointMeta& meta,
               bool interleaved) {
  check_weights(w);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail("-o", dir, "cannot create the output directory");
  const ModelConfig& c = w.config;
  auto arrays = named_arrays(const_cast<ModelWeights<float>&>(w));
  std::vector<Buffer<float>> permuted;  // keeps interleaved copies alive while writing
  permuted.reserve(2 * c.num_hidden_layers);
  std::vector<TensorRef> refs;
  for (const auto& spec : tensor_specs(c, w.plan)) {
    const Buffer<float>* data = arrays.at(spec.name);
    const bool q = spec.name.find("q_proj") != std::string::npos;
    const bool k = spec.name.find("k_proj") != std::string::npos;
    if (interleaved && (q || k)) {
      permuted.push_back(rope_rows_interleaved_to_half(
          *data, q ? c.num_attention_heads : c.num_key_value_heads, c.head_dim, c.hidden_size,
          /*inverse=*/true));
      data = &permuted.back();
    }
    refs.push_back({spec.name, spec.shape, std::span<const float>(*data)});
  }
  const fs::path st = fs::path(dir) / "model.safetensors";
  write_safetensors(st.string(), refs, {{"format", "pt"}});
  nlohmann::json j = config_to_json(c);
  j["kvlab"] = {{"plan", w.plan.to_string()},
                {"plan_spec", meta.plan_spec.empty() ? w.plan.to_string() : meta.plan_spec},
                {"tokenizer", meta.tokenizer},
                {"rope_pairing", interleaved ? "interleaved" : "half"}};
  try {
    write_file_atomic((fs::path(dir) / "config.json").string(),
                      [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  } catch (...) {
    fs::remove(st, ec);
    throw;
  }
}

}  // namespace

template <typename S>
ModelWeights<S> load_checkpoint(const std::string& dir, CheckpointMeta* meta) {
  if (!fs::is_directory(dir)) {
    fail("--model", dir, "is not a directory holding config.json and model.safetensors");
  }
  const fs::path cfg_path = fs::path(dir) / "config.json";
  const nlohmann::json j = read_json(cfg_path);
  ModelWeights<S> w;
  try {
    w.config = config_from_json(j);
  } catch (const Error& e) {
    throw Error(cfg_path.string() + ": " + e.what());
  }
  const ModelConfig& c = w.config;
  std::string pairing = "half";
  CheckpointMeta m;
  if (j.contains("kvlab")) {
    const auto& k = j["kvlab"];
    if (!k.is_object()) fail("kvlab", k.dump(), "the kvlab section must be an object");
    if (k.contains("plan")) {
      if (!k["plan"].is_string()) fail("kvlab.plan", k["plan"].dump(), "must be a string");
      w.plan = KvPlan::parse(k["plan"].get<std::string>(), c.num_hidden_layers);
    }
    if (k.contains("tokenizer") && k["tokenizer"].is_string()) m.tokenizer = k["tokenizer"];
    if (k.contains("plan_spec") && k["plan_spec"].is_string()) m.plan_spec = k["plan_spec"];
    if (k.contains("rope_pairing")) {
      pairing = k["rope_pairing"].is_string() ? k["rope_pairing"].get<std::string>() : "?";
      if (pairing != "half" && pairing != "interleaved") {
        fail("kvlab.rope_pairing", k["rope_pairing"].dump(), "must be \"half\" or \"interleaved\"");
      }
    }
  }
  if (w.plan.layers() == 0) w.plan = KvPlan::parse("standard", c.num_hidden_layers);
  if (meta) *meta = m;

  const fs::path st_path = fs::path(dir) / "model.safetensors";
  const SafetensorsFile st = open_safetensors(st_path.string());
  const auto specs = tensor_specs(c, w.plan);
  std::set<std::string> expected;
  for (const auto& s : specs) expected.insert(s.name);
  for (const auto& name : st.names()) {
    if (!expected.count(name)) {
      fail(st_path.string() + ": tensor", name,
           "is not part of this model (plan " + w.plan.to_string() +
               "; only KV layers have k_proj/v_proj, and lm_head is absent when tied)");
    }
  }
  w.layers.resize(c.num_hidden_layers);
  auto arrays = named_arrays(w);
  for (const auto& s : specs) {
    if (!st.has(s.name)) fail(st_path.string() + ": tensor", s.name, "is missing");
    if (st.shape(s.name) != s.shape) {
      fail(st_path.string() + ": " + s.name + ".shape", shape_str(st.shape(s.name)),
           "config.json implies " + shape_str(s.shape));
    }
    if constexpr (std::is_same_v<S, double>) {
      const std::vector<double> values = st.read_f64(s.name);
      arrays.at(s.name)->assign(values.begin(), values.end());
    } else {
      const std::vector<float> values = st.read_f32(s.name);
      arrays.at(s.name)->assign(values.begin(), values.end());
    }
  }
  if (pairing == "interleaved") {
    for (auto& L : w.layers) {
      L.wq = rope_rows_interleaved_to_half(L.wq, c.num_attention_heads, c.head_dim, c.hidden_size);
      if (!L.wk.empty()) {
        L.wk =
            rope_rows_interleaved_to_half(L.wk, c.num_key_value_heads, c.head_dim, c.hidden_size);
      }
    }
  }
  try {
    check_weights(w);
  } catch (const Error& e) {
    throw Error(st_path.string() + ": " + e.what());
  }
  return w;
}

void save_checkpoint(const std::string& dir, const ModelWeights<float>& w,
                     const CheckpointMeta& meta) {
  save_impl(dir, w, meta, false);
}

void save_checkpoint_interleaved(const std::string& dir, const ModelWeights<float>& w,
                                 const CheckpointMeta& meta) {
  save_impl(dir, w, meta, true);
}

template ModelWeights<float> load_checkpoint<float>(const std::string&, CheckpointMeta*);
template ModelWeights<double> load_checkpoint<double>(const std::string&, CheckpointMeta*);

}  // namespace kvlab::ref
