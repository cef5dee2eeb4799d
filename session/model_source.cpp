#include "session/model_source.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.hpp"
#include "reference/checkpoint.hpp"
#include "session/builtin_models.hpp"
#include "session/session.hpp"

namespace kvlab {
namespace {

namespace fs = std::filesystem;

// The config of random weights, when options.model names one (a config.json file or a preset);
// nullptr for a checkpoint.
std::unique_ptr<ModelConfig> random_config(const std::string& model) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return nullptr;
  if (fs::is_regular_file(model, ec)) {
    if (fs::path(model).extension() != ".json") return nullptr;  // a llama2.c .bin
    // The config.json of a checkpoint directory: the user means its weights, and random ones
    // would be a silent surprise; the checkpoint loader asks for the directory.
    const fs::path dir = fs::path(model).parent_path();
    if (fs::exists(dir / "model.safetensors", ec) ||
        fs::exists(dir / "model.safetensors.index.json", ec)) {
      return nullptr;
    }
    return std::make_unique<ModelConfig>(load_config(model));
  }
  // No such file: a preset, unless it reads as a path (then the checkpoint loader names it).
  if (model.find('/') != std::string::npos) return nullptr;
  return std::make_unique<ModelConfig>(find_model_preset(model).config);
}

void check_vocab(const Tokenizer& t, int vocab_size, const std::string& field,
                 const std::string& file) {
  if (vocab_size < t.vocab_size()) {
    fail(field, file.empty() ? t.name() : file,
         "has " + std::to_string(t.vocab_size()) +
             " tokens, more than the model's vocab_size = " + std::to_string(vocab_size));
  }
}

// `builtin` (the byte tokenizer), a file beside the model, or NoTokenizer saying why there is
// none; --tokenizer (`path`) wins over all three.
std::shared_ptr<const Tokenizer> resolve_tokenizer(const std::string& path,
                                                   const std::string& model, int vocab_size,
                                                   bool builtin, const fs::path& beside,
                                                   const std::string& why) {
  std::string file = path, field = "--tokenizer";
  std::shared_ptr<const Tokenizer> t;
  if (file.empty()) {
    field = "tokenizer of " + model;
    std::error_code ec;
    if (builtin) {
      t = std::make_shared<ByteTokenizer>();
    } else if (!beside.empty() && fs::is_regular_file(beside, ec)) {
      file = beside.string();
    } else {
      return std::make_shared<NoTokenizer>(why, vocab_size);
    }
  } else if (!fs::exists(file)) {
    fail("--tokenizer", file, "does not exist");
  }
  if (!file.empty()) t = load_tokenizer(file);
  check_vocab(*t, vocab_size, field, file);
  return t;
}

}  // namespace

template <typename S>
LoadedModel<S> load_model(const SessionOptions& options) {
  SessionOptions o = options;
  o.model = resolve_model(options.model);  // a built-in trained model by name
  LoadedModel<S> m;
  if (auto config = o.allow_random ? random_config(o.model) : nullptr) {
    ModelConfig& c = *config;
    c.max_position_embeddings = std::max(c.max_position_embeddings, o.min_positions);
    m.plan_spec = o.run.plan.empty() ? "standard" : o.run.plan;
    const KvPlan plan = KvPlan::parse(m.plan_spec, c.num_hidden_layers);
    // float32 weights, plus their float64 copy in an f64 session.
    const double params = static_cast<double>(c.parameter_count(plan.num_kv_layers()));
    check_fits_in_memory("--model", o.model, params * (std::is_same_v<S, float> ? 4 : 12),
                         "its random weights");
    auto w = ref::init_random<float>(c, plan, o.seed);
    if constexpr (std::is_same_v<S, float>) {
      m.weights = std::make_shared<const ref::ModelWeights<float>>(std::move(w));
    } else {
      m.weights = std::make_shared<const ref::ModelWeights<S>>(ref::convert_weights<S>(w));
    }
    m.format = "random";
    const int V = c.vocab_size;
    m.tokenizer = resolve_tokenizer(
        o.tokenizer, o.model, V, V >= ByteTokenizer::kVocabSize, {},
        "random weights with vocab_size = " + std::to_string(V) + " < 258 hold no byte tokenizer");
    return m;
  }
  ref::CheckpointMeta meta;
  m.weights = std::make_shared<const ref::ModelWeights<S>>(ref::load_checkpoint<S>(o.model, &meta));
  m.format = ref::checkpoint_format_name(meta.format);
  m.plan_spec = meta.plan_spec;
  const bool llama2c = meta.format == ref::CheckpointFormat::llama2c;
  m.tokenizer = resolve_tokenizer(
      o.tokenizer, o.model, m.weights->config.vocab_size,
      meta.format == ref::CheckpointFormat::kvlab && meta.tokenizer == "byte",
      llama2c ? fs::path(o.model).parent_path() / "tokenizer.bin"
              : fs::path(o.model) / "tokenizer.json",
      llama2c ? "a llama2.c .bin holds none and there is no tokenizer.bin beside it"
              : "no tokenizer.json in the directory");
  return m;
}

template LoadedModel<float> load_model<float>(const SessionOptions&);
template LoadedModel<double> load_model<double>(const SessionOptions&);

std::shared_ptr<const Tokenizer> checked_tokenizer(std::shared_ptr<const Tokenizer> given,
                                                   int vocab_size) {
  if (!given) return std::make_shared<NoTokenizer>("none was given", vocab_size);
  check_vocab(*given, vocab_size, "tokenizer", "");
  return given;
}

std::int64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    long long kib = 0;
    if (key == "MemAvailable:" && in >> kib) return static_cast<std::int64_t>(kib) * 1024;
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

void check_fits_in_memory(const std::string& field, const std::string& value, double bytes,
                          const std::string& what) {
  const std::int64_t available = mem_available_bytes();
  if (available < 0 || bytes <= static_cast<double>(available)) return;
  char text[256];
  std::snprintf(text, sizeof text,
                "%s need %.1f GiB (%.0f bytes), more than this machine's available memory: "
                "%.1f GiB (MemAvailable in /proc/meminfo); choose a smaller model",
                what.c_str(), bytes / 1073741824.0, bytes,
                static_cast<double>(available) / 1073741824.0);
  fail(field, value, text);
}

std::string read_text_file(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(field, path, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kvlab
