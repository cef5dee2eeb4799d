#include "reference/checkpoint.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "core/formats/config_json.hpp"
#include "core/formats/safetensors.hpp"
#include "reference/ops.hpp"

namespace kvlab::ref {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--model", path.parent_path().string(), "has no readable " + what);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const fs::path& path) {
  auto j = nlohmann::json::parse(read_text(path, path.filename().string()), nullptr, false);
  if (j.is_discarded()) {
    fail(path.string(), "(not JSON)", path.filename().string() + " must be valid JSON");
  }
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

bool is_standard(const KvPlan& p, int layers) {
  return p == KvPlan::parse("standard", layers);
}

// Fields of a Hugging Face config.json that would change the computation kvlab does not model.
void check_llama_fields(const nlohmann::json& j, const fs::path& cfg_path) {
  const std::string where = cfg_path.string() + ": ";
  auto str_field = [&](const char* key, const char* want) {
    if (!j.contains(key) || j[key].is_null()) return;
    if (!j[key].is_string() || j[key].get<std::string>() != want) {
      fail(where + key, j[key].dump(), std::string("kvlab runs Llama models (") + want + ")");
    }
  };
  str_field("model_type", "llama");
  str_field("hidden_act", "silu");
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && !(j[key].is_boolean() && !j[key].get<bool>())) {
      fail(where + key, j[key].dump(), "kvlab's Llama has no biases (must be false)");
    }
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    fail(where + "rope_scaling", j["rope_scaling"].dump(),
         "RoPE scaling is not supported (must be null)");
  }
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const auto& a : j["architectures"]) {
      if (!a.is_string() || a.get<std::string>() != "LlamaForCausalLM") {
        fail(where + "architectures", j["architectures"].dump(),
             "kvlab runs LlamaForCausalLM checkpoints");
      }
    }
  }
}

// The safetensors files of a directory: model.safetensors, or the shards of
// model.safetensors.index.json, with the file holding each tensor.
struct TensorFiles {
  std::vector<SafetensorsFile> files;
  std::map<std::string, size_t> where;  // tensor name -> index into files
  std::string describe;                 // for messages
  const SafetensorsFile& file_of(const std::string& name) const { return files[where.at(name)]; }
};

TensorFiles open_tensor_files(const fs::path& dir) {
  TensorFiles t;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  const bool has_single = fs::exists(single), has_index = fs::exists(index);
  if (has_single && has_index) {
    fail("--model", dir.string(),
         "holds both model.safetensors and model.safetensors.index.json (remove one)");
  }
  if (has_single) {
    t.files.push_back(open_safetensors(single.string()));
    for (const auto& n : t.files[0].names()) t.where[n] = 0;
    t.describe = single.string();
    return t;
  }
  if (!has_index) {
    fail("--model", dir.string(), "has neither model.safetensors nor model.safetensors.index.json");
  }
  t.describe = index.string();
  // Keys of "weight_map" given twice would silently keep the last: find them while parsing.
  std::string top_key, repeated;
  std::set<std::string> seen;
  nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev,
                                             nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key) {
      if (depth == 1) top_key = parsed.is_string() ? parsed.get<std::string>() : "";
      if (depth == 2 && top_key == "weight_map" && parsed.is_string()) {
        if (!seen.insert(parsed.get<std::string>()).second && repeated.empty()) {
          repeated = parsed.get<std::string>();
        }
      }
    }
    return true;
  };
  const nlohmann::json j =
      nlohmann::json::parse(read_text(index, "model.safetensors.index.json"), cb, false);
  if (j.is_discarded() || !j.is_object()) {
    fail(index.string(), "(not a JSON object)", "the shard index must be a JSON object");
  }
  if (!repeated.empty()) {
    fail(index.string() + ": weight_map", repeated, "is listed twice");
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object() || j["weight_map"].empty()) {
    fail(index.string() + ": weight_map",
         j.contains("weight_map") ? j["weight_map"].dump() : "(absent)",
         "must be an object {tensor name: shard file}");
  }
  std::map<std::string, std::string> wanted;  // tensor -> shard
  std::map<std::string, size_t> shard_index;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string())
      fail(index.string() + ": weight_map." + name, file.dump(), "must be a file name");
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos ||
        f == "." || f == "..") {
      fail(index.string() + ": weight_map." + name, f, "must be a file name in the same directory");
    }
    wanted[name] = f;
    if (!shard_index.count(f)) {
      const size_t k = shard_index.size();
      shard_index[f] = k;
    }
  }
  t.files.resize(shard_index.size());
  std::vector<std::string> shard_names(shard_index.size());
  for (const auto& [f, k] : shard_index) {
    shard_names[k] = f;
    const fs::path p = dir / f;
    if (!fs::exists(p)) fail(index.string() + ": shard", f, "is missing from " + dir.string());
    t.files[k] = open_safetensors(p.string());
  }
  for (size_t k = 0; k < t.files.size(); ++k) {
    for (const auto& n : t.files[k].names()) {
      auto it = t.where.find(n);
      if (it != t.where.end()) {
        fail(index.string() + ": tensor", n,
             "is held twice, by shards " + shard_names[it->second] + " and " + shard_names[k]);
      }
      t.where[n] = k;
      auto w = wanted.find(n);
      if (w == wanted.end()) {
        fail(index.string() + ": tensor", n,
             "is in shard " + shard_names[k] + " but not listed in weight_map");
      }
      if (w->second != shard_names[k]) {
        fail(index.string() + ": tensor", n,
             "is in shard " + shard_names[k] + " but weight_map says " + w->second);
      }
    }
  }
  for (const auto& [n, f] : wanted) {
    if (!t.where.count(n))
      fail(index.string() + ": tensor", n, "is listed for shard " + f + " which does not hold it");
  }
  return t;
}

// Names a Hugging Face checkpoint may carry that kvlab recomputes (RoPE frequencies).
bool ignorable(const std::string& name) {
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <typename S>
ModelWeights<S> load_directory(const fs::path& dir, CheckpointMeta* meta) {
  const fs::path cfg_path = dir / "config.json";
  if (!fs::exists(cfg_path)) {
    fail("--model", dir.string(), "is a directory without config.json");
  }
  const nlohmann::json j = read_json(cfg_path);
  ModelWeights<S> w;
  try {
    w.config = config_from_json(j);
  } catch (const Error& e) {
    throw Error(cfg_path.string() + ": " + e.what());
  }
  check_llama_fields(j, cfg_path);
  const ModelConfig& c = w.config;
  std::string pairing = "half";
  CheckpointMeta m;
  if (j.contains("kvlab")) {
    m.format = CheckpointFormat::kvlab;
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
  } else {
    m.format = CheckpointFormat::hf;
    m.tokenizer = fs::exists(dir / "tokenizer.json") ? "tokenizer.json" : "";
  }
  if (w.plan.layers() == 0) w.plan = KvPlan::parse("standard", c.num_hidden_layers);
  if (meta) *meta = m;

  const TensorFiles tf = open_tensor_files(dir);
  const auto specs = tensor_specs(c, w.plan);
  std::set<std::string> expected;
  for (const auto& s : specs) expected.insert(s.name);
  for (const auto& [name, k] : tf.where) {
    if (expected.count(name) || ignorable(name)) continue;
    // Hugging Face checkpoints with tied embeddings sometimes still carry lm_head.
    if (m.format == CheckpointFormat::hf && c.tie_word_embeddings && name == "lm_head.weight") {
      continue;
    }
    fail(tf.files[k].path() + ": tensor", name,
         "is not part of this model (plan " + w.plan.to_string() +
             "; only KV layers have k_proj/v_proj, and lm_head is absent when tied)");
  }
  w.layers.resize(c.num_hidden_layers);
  auto arrays = named_arrays(w);
  for (const auto& s : specs) {
    if (!tf.where.count(s.name)) fail(tf.describe + ": tensor", s.name, "is missing");
    const SafetensorsFile& st = tf.file_of(s.name);
    if (st.shape(s.name) != s.shape) {
      fail(st.path() + ": " + s.name + ".shape", shape_str(st.shape(s.name)),
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
    throw Error(tf.describe + ": " + e.what());
  }
  return w;
}

// A read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("--model", path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      fail("--model", path, "cannot stat the file");
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) {
        ::close(fd_);
        fail("--model", path, std::string("cannot map the file: ") + std::strerror(errno));
      }
      data_ = static_cast<const unsigned char*>(p);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::uint64_t size() const { return size_; }
  const unsigned char* data() const { return data_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  const unsigned char* data_ = nullptr;
};

constexpr std::uint64_t kLlama2cHeader = 7 * sizeof(std::int32_t);

// The llama2.c header as a ModelConfig; `shared` is whether the classifier is the embedding.
ModelConfig llama2c_config(const std::int32_t h[7], const std::string& path, bool* shared) {
  const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (h[i] == 0 || (h[i] < 0 && i != 5)) {
      fail(path + ": header." + names[i], std::to_string(h[i]),
           "must be positive (is this a llama2.c legacy .bin?)");
    }
  }
  if (h[0] % h[3] != 0) {
    fail(path + ": header.dim", std::to_string(h[0]),
         "must be a multiple of n_heads = " + std::to_string(h[3]));
  }
  ModelConfig c;
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.num_hidden_layers = h[2];
  c.num_attention_heads = h[3];
  c.num_key_value_heads = h[4];
  c.vocab_size = h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5];
  c.max_position_embeddings = h[6];
  c.head_dim = h[0] / h[3];
  c.rope_theta = 10000.0;  // llama2.c's run.c
  c.rms_norm_eps = 1e-5;
  *shared = h[5] > 0;
  c.tie_word_embeddings = *shared;
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(path + ": header: " + e.what());
  }
  return c;
}

// Float counts of the arrays in llama2.c's order.
std::uint64_t llama2c_floats(const ModelConfig& c) {
  const std::uint64_t C = c.hidden_size, F = c.intermediate_size, L = c.num_hidden_layers,
                      V = c.vocab_size, KV = std::uint64_t(c.num_key_value_heads) * c.head_dim,
                      T = c.max_position_embeddings, D = c.head_dim;
  std::uint64_t n = V * C + L * C + L * C * C + 2 * L * KV * C + L * C * C + L * C + 3 * L * F * C +
                    C + 2 * T * (D / 2);
  if (!c.tie_word_embeddings) n += V * C;
  return n;
}

template <typename S>
ModelWeights<S> load_llama2c(const std::string& path, CheckpointMeta* meta) {
  const MappedFile f(path);
  if (f.size() < kLlama2cHeader) {
    fail(path, std::to_string(f.size()) + " bytes",
         "is truncated: a llama2.c .bin starts with a 28-byte header");
  }
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".json" || ext == ".safetensors" || f.data()[0] == '{') {
    fail("--model", path,
         "is a file of a checkpoint directory, not a llama2.c .bin: give the directory");
  }
  std::int32_t h[7];
  std::memcpy(h, f.data(), sizeof h);
  if (static_cast<std::uint32_t>(h[0]) == 0x616b3432u) {
    fail(path, "magic \"ak42\"",
         "llama2.c's version 1/2 export is not supported (use the legacy one)");
  }
  bool shared = true;
  ModelWeights<S> w;
  w.config = llama2c_config(h, path, &shared);
  const ModelConfig& c = w.config;
  const std::uint64_t expected = kLlama2cHeader + 4 * llama2c_floats(c);
  if (f.size() < expected) {
    fail(path, std::to_string(f.size()) + " bytes",
         "is truncated: the header (dim " + std::to_string(h[0]) + ", " + std::to_string(h[2]) +
             " layers, vocab " + std::to_string(h[5]) + ") needs " + std::to_string(expected) +
             " bytes");
  }
  if (f.size() > expected) {
    fail(path, std::to_string(f.size()) + " bytes",
         "is longer than its header implies (" + std::to_string(expected) +
             " bytes): not a llama2.c legacy .bin for this shape");
  }
  w.plan = KvPlan::parse("standard", c.num_hidden_layers);
  w.layers.resize(c.num_hidden_layers);
  const long C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const long KV = static_cast<long>(c.num_key_value_heads) * c.head_dim;
  const long D = c.head_dim, T = c.max_position_embeddings;
  const unsigned char* p = f.data() + kLlama2cHeader;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::uint64_t released = 0;
  auto take = [&](Buffer<S>& out, long n) {
    out.resize(n);
    for (long i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = static_cast<S>(v);
    }
    p += 4 * n;
    // The mapped pages read so far are not needed again: drop them from the resident set, so
    // that loading holds one copy of the weights, not two.
    const std::uint64_t done = static_cast<std::uint64_t>(p - f.data()) / page * page;
    if (done > released) {
      ::madvise(const_cast<unsigned char*>(f.data()) + released, done - released, MADV_DONTNEED);
      released = done;
    }
  };
  auto per_layer = [&](Buffer<S> LayerWeights<S>::*field, long n) {
    for (auto& L : w.layers) take(L.*field, n);
  };
  take(w.embed, V * C);
  per_layer(&LayerWeights<S>::attn_norm, C);
  per_layer(&LayerWeights<S>::wq, C * C);
  per_layer(&LayerWeights<S>::wk, KV * C);
  per_layer(&LayerWeights<S>::wv, KV * C);
  per_layer(&LayerWeights<S>::wo, C * C);
  per_layer(&LayerWeights<S>::ffn_norm, C);
  per_layer(&LayerWeights<S>::w1, F * C);
  per_layer(&LayerWeights<S>::w2, C * F);
  per_layer(&LayerWeights<S>::w3, F * C);
  take(w.final_norm, C);
  p += 4 * 2 * T * (D / 2);  // freq_cis_real, freq_cis_imag: kvlab computes RoPE itself
  if (!shared) take(w.classifier, V * C);
  for (auto& L : w.layers) {
    L.wq = rope_rows_interleaved_to_half(L.wq, c.num_attention_heads, c.head_dim, c.hidden_size);
    L.wk = rope_rows_interleaved_to_half(L.wk, c.num_key_value_heads, c.head_dim, c.hidden_size);
  }
  try {
    check_weights(w);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  if (meta) {
    *meta = CheckpointMeta{};
    meta->format = CheckpointFormat::llama2c;
    meta->tokenizer = "";
  }
  return w;
}

void save_impl(const std::string& dir, const ModelWeights<float>& w, const CheckpointMeta& meta,
               bool interleaved, bool kvlab_section, TensorDtype store) {
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
    refs.push_back({spec.name, spec.shape, std::span<const float>(*data), store});
  }
  const fs::path st = fs::path(dir) / "model.safetensors";
  write_safetensors(st.string(), refs, {{"format", "pt"}});
  nlohmann::json j = config_to_json(c);
  if (store == TensorDtype::F16) j["torch_dtype"] = "float16";
  if (store == TensorDtype::BF16) j["torch_dtype"] = "bfloat16";
  if (kvlab_section) {
    j["kvlab"] = {{"plan", w.plan.to_string()},
                  {"plan_spec", meta.plan_spec.empty() ? w.plan.to_string() : meta.plan_spec},
                  {"tokenizer", meta.tokenizer},
                  {"rope_pairing", interleaved ? "interleaved" : "half"}};
  }
  try {
    write_file_atomic((fs::path(dir) / "config.json").string(),
                      [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  } catch (...) {
    fs::remove(st, ec);
    throw;
  }
}

}  // namespace

const char* checkpoint_format_name(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::kvlab:
      return "kvlab";
    case CheckpointFormat::hf:
      return "hf";
    case CheckpointFormat::llama2c:
      return "llama2c";
  }
  return "?";
}

CheckpointFormat parse_checkpoint_format(const std::string& field, const std::string& name) {
  if (name == "kvlab") return CheckpointFormat::kvlab;
  if (name == "hf") return CheckpointFormat::hf;
  if (name == "llama2c") return CheckpointFormat::llama2c;
  fail(field, name, "must be kvlab, hf or llama2c");
}

CheckpointFormat detect_checkpoint_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return CheckpointFormat::llama2c;
  if (!fs::is_directory(path, ec)) {
    fail("--model", path,
         "is neither a checkpoint directory (config.json + safetensors) nor a llama2.c .bin file");
  }
  const fs::path cfg = fs::path(path) / "config.json";
  if (!fs::exists(cfg)) fail("--model", path, "is a directory without config.json");
  const nlohmann::json j = read_json(cfg);
  return j.is_object() && j.contains("kvlab") ? CheckpointFormat::kvlab : CheckpointFormat::hf;
}

ModelConfig checkpoint_config(const std::string& path) {
  if (detect_checkpoint_format(path) != CheckpointFormat::llama2c) {
    return load_config((fs::path(path) / "config.json").string());
  }
  const MappedFile f(path);
  if (f.size() < kLlama2cHeader) {
    fail(path, std::to_string(f.size()) + " bytes",
         "is truncated: a llama2.c .bin starts with a 28-byte header");
  }
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".safetensors" || f.data()[0] == '{') {
    fail("--model", path,
         "is a file of a checkpoint directory, not a llama2.c .bin: give the directory");
  }
  std::int32_t h[7];
  std::memcpy(h, f.data(), sizeof h);
  bool shared = true;
  const ModelConfig c = llama2c_config(h, path, &shared);
  const std::uint64_t expected = kLlama2cHeader + 4 * llama2c_floats(c);
  if (f.size() < expected) {
    fail(path, std::to_string(f.size()) + " bytes",
         "is truncated: its header needs " + std::to_string(expected) + " bytes");
  }
  return c;
}

template <typename S>
ModelWeights<S> load_checkpoint(const std::string& path, CheckpointMeta* meta) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return load_llama2c<S>(path, meta);
  if (!fs::is_directory(path, ec)) {
    fail("--model", path,
         "is neither a checkpoint directory (config.json + safetensors) nor a llama2.c .bin file");
  }
  return load_directory<S>(path, meta);
}

void save_checkpoint(const std::string& dir, const ModelWeights<float>& w,
                     const CheckpointMeta& meta, TensorDtype store) {
  save_impl(dir, w, meta, false, true, store);
}

void save_checkpoint_interleaved(const std::string& dir, const ModelWeights<float>& w,
                                 const CheckpointMeta& meta) {
  save_impl(dir, w, meta, true, true, TensorDtype::F32);
}

void save_hf_checkpoint(const std::string& dir, const ModelWeights<float>& w, TensorDtype store) {
  if (!is_standard(w.plan, w.config.num_hidden_layers)) {
    fail("--to hf", "plan " + w.plan.to_string(),
         "a Hugging Face Llama has W_K, W_V in every layer and no sliding layers: only the "
         "standard plan can be written (use --to kvlab)");
  }
  save_impl(dir, w, {}, false, false, store);
}

void save_llama2c(const std::string& path, const ModelWeights<float>& w) {
  const ModelConfig& c = w.config;
  if (!is_standard(w.plan, c.num_hidden_layers)) {
    fail("--to llama2c", "plan " + w.plan.to_string(),
         "llama2.c has W_K, W_V in every layer: only the standard plan can be written");
  }
  if (c.rope_theta != 10000.0) {
    fail("--to llama2c: rope_theta", std::to_string(c.rope_theta),
         "llama2.c's run.c hard-codes 10000");
  }
  if (c.rms_norm_eps != 1e-5) {
    fail("--to llama2c: rms_norm_eps", std::to_string(c.rms_norm_eps),
         "llama2.c's run.c hard-codes 1e-5");
  }
  check_weights(w);
  const std::int32_t h[7] = {c.hidden_size,
                             c.intermediate_size,
                             c.num_hidden_layers,
                             c.num_attention_heads,
                             c.num_key_value_heads,
                             c.tie_word_embeddings ? c.vocab_size : -c.vocab_size,
                             c.max_position_embeddings};
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(h), sizeof h);
    auto put = [&](const float* p, std::size_t n) {
      out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n * sizeof(float)));
    };
    auto put_buf = [&](const Buffer<float>& b) { put(b.data(), b.size()); };
    put_buf(w.embed);
    for (const auto& L : w.layers) put_buf(L.attn_norm);
    for (const auto& L : w.layers) {
      put_buf(rope_rows_interleaved_to_half(L.wq, c.num_attention_heads, c.head_dim, c.hidden_size,
                                            /*inverse=*/true));
    }
    for (const auto& L : w.layers) {
      put_buf(rope_rows_interleaved_to_half(L.wk, c.num_key_value_heads, c.head_dim, c.hidden_size,
                                            /*inverse=*/true));
    }
    for (const auto& L : w.layers) put_buf(L.wv);
    for (const auto& L : w.layers) put_buf(L.wo);
    for (const auto& L : w.layers) put_buf(L.ffn_norm);
    for (const auto& L : w.layers) put_buf(L.w1);
    for (const auto& L : w.layers) put_buf(L.w2);
    for (const auto& L : w.layers) put_buf(L.w3);
    put_buf(w.final_norm);
    // freq_cis_real, freq_cis_imag (seq_len, head_size/2): unused by run.c, written for readers
    // of older versions.
    const int half = c.head_dim / 2;
    for (int part = 0; part < 2; ++part) {
      std::vector<float> f(static_cast<std::size_t>(c.max_position_embeddings) * half);
      for (int t = 0; t < c.max_position_embeddings; ++t) {
        for (int i = 0; i < half; ++i) {
          const double a = t * std::pow(c.rope_theta, -2.0 * i / c.head_dim);
          f[static_cast<std::size_t>(t) * half + i] =
              static_cast<float>(part == 0 ? std::cos(a) : std::sin(a));
        }
      }
      put(f.data(), f.size());
    }
    if (!c.tie_word_embeddings) put_buf(w.classifier);
  });
}

ModelWeights<float> average_kv_init(ModelWeights<float> w, const KvPlan& plan) {
  const int L = w.config.num_hidden_layers;
  if (plan.layers() != L) {
    fail("--plan", plan.to_string(),
         "has " + std::to_string(plan.layers()) + " layers; the model has " + std::to_string(L));
  }
  for (int l = 0; l < L; ++l) {
    if (w.layers[l].wk.empty() || w.layers[l].wv.empty()) {
      fail("--plan", plan.to_string(),
           "averaging needs W_K, W_V in every layer (a standard source); layer " +
               std::to_string(l) + " has none (source plan " + w.plan.to_string() + ")");
    }
  }
  // In place: each KV layer's mean is taken before any of its readers' arrays is dropped (a
  // reader's own K/V layer is itself or another KV layer, whose W_K, W_V are read first).
  std::vector<Buffer<float>> means_k(L), means_v(L);
  for (int l = 0; l < L; ++l) {
    if (!plan.is_kv_layer(l)) continue;
    const std::vector<int> readers = plan.readers(l);
    for (int which = 0; which < 2; ++which) {
      Buffer<float> LayerWeights<float>::*field =
          which == 0 ? &LayerWeights<float>::wk : &LayerWeights<float>::wv;
      std::vector<double> acc((w.layers[l].*field).size(), 0.0);
      for (int r : readers) {
        const Buffer<float>& src = w.layers[r].*field;
        for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += src[i];
      }
      Buffer<float> mean(acc.size());
      for (std::size_t i = 0; i < acc.size(); ++i) {
        mean[i] = static_cast<float>(acc[i] / static_cast<double>(readers.size()));
      }
      (which == 0 ? means_k : means_v)[l] = std::move(mean);
    }
  }
  for (int l = 0; l < L; ++l) {
    w.layers[l].wk = std::move(means_k[l]);  // empty for layers that are not KV layers
    w.layers[l].wv = std::move(means_v[l]);
  }
  w.plan = plan;
  return w;
}

template ModelWeights<float> load_checkpoint<float>(const std::string&, CheckpointMeta*);
template ModelWeights<double> load_checkpoint<double>(const std::string&, CheckpointMeta*);

}  // namespace kvlab::ref
