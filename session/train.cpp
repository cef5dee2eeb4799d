#include "session/train.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "core/formats/safetensors.hpp"
#include "reference/checkpoint.hpp"
#include "reference/train/adamw.hpp"
#include "reference/train/corpus.hpp"
#include "reference/train/grad.hpp"
#include "reference/train/presets.hpp"
#include "session/model_source.hpp"

namespace kvlab {
namespace fs = std::filesystem;
using nlohmann::json;
namespace rt = ref::train;

namespace {

constexpr const char* kStateFormat = "kvlab-train-state";
constexpr int kStateVersion = 1;

// ---------------------------------------------------------------- the run's identity

// Everything that decides the loss curve; stored in train_state.json and checked on resume.
struct RunSpec {
  std::string preset, plan, plan_map;
  Precision precision = Precision::f32;
  std::uint64_t seed = 1;
  int heads = 0, kv_heads = 0;
  rt::TrainPasses passes;
  double lr = 0;
  std::int64_t steps = 0;
  int val_every = 0, checkpoint_every = 0;
  std::string text_file;  // "" : fortunes
  double recall_fraction = 0;
  std::string tokenizer;  // "byte" | "tokenizer.json"
};

json spec_json(const RunSpec& r) {
  return {{"preset", r.preset},
          {"plan", r.plan},
          {"plan_map", r.plan_map},
          {"precision", precision_name(r.precision)},
          {"seed", r.seed},
          {"heads", r.heads},
          {"kv_heads", r.kv_heads},
          {"train_passes", {r.passes.m, r.passes.b}},
          {"kv_loss", r.passes.kv_loss_weight},
          {"lr", r.lr},
          {"steps", r.steps},
          {"val_every", r.val_every},
          {"checkpoint_every", r.checkpoint_every},
          {"text_file", r.text_file},
          {"recall_fraction", r.recall_fraction},
          {"tokenizer", r.tokenizer}};
}

rt::TrainPasses passes_of(const std::string& text) {
  return text.empty() ? rt::TrainPasses{} : parse_train_passes(text);
}

std::string fmt(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// FNV-1a over the token ids: a resumed run must see the same corpus.
std::string fingerprint(const rt::Corpus& c) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::vector<int>& v) {
    for (int x : v) {
      h ^= static_cast<std::uint32_t>(x);
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  mix(c.train);
  mix(c.val);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---------------------------------------------------------------- files

std::string read_all(const fs::path& p, const std::string& field) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(field, p.string(), "cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Makes `tmp` (complete, fsync'ed) the directory `dst` in one step: an atomic exchange when `dst`
// exists (the old one is then removed from tmp's name), a rename otherwise. A reader sees the old
// directory or the new one, never a mix, at every instant.
void publish_directory(const fs::path& tmp, const fs::path& dst) {
  std::error_code ec;
  if (fs::exists(dst, ec)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dst.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS) {
        fail("-o", dst.string(),
             std::string("cannot replace the checkpoint: ") + std::strerror(errno));
      }
      // A file system without the exchange: two renames (a kill between them leaves the
      // previous checkpoint as .<name>.old, which a resume names).
      const fs::path old = dst.parent_path() / ("." + dst.filename().string() + ".old");
      fs::remove_all(old, ec);
      if (std::rename(dst.c_str(), old.c_str()) != 0 ||
          std::rename(tmp.c_str(), dst.c_str()) != 0) {
        fail("-o", dst.string(),
             std::string("cannot replace the checkpoint: ") + std::strerror(errno));
      }
      fs::remove_all(old, ec);
      fsync_path(dst.parent_path(), true);
      return;
    }
    fs::remove_all(tmp, ec);
  } else if (std::rename(tmp.c_str(), dst.c_str()) != 0) {
    fail("-o", dst.string(), std::string("cannot write the checkpoint: ") + std::strerror(errno));
  }
  fsync_path(dst.parent_path(), true);
}

// Temporary checkpoint directories a killed run left behind.
void remove_stale_temporaries(const fs::path& out) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".last.tmp.", 0) == 0 || n.rfind(".best.tmp.", 0) == 0)
      fs::remove_all(e.path(), ec);
  }
}

// The tokenizer of a run: "byte", or a tokenizer.json whose bytes are copied into checkpoints.
struct TokenizerSource {
  std::string kind;   // "byte" | "tokenizer.json"
  std::string bytes;  // the file, for tokenizer.json
  std::shared_ptr<const Tokenizer> tokenizer;
};

TokenizerSource open_tokenizer(const std::string& path, const std::string& field) {
  TokenizerSource t;
  if (path == "byte") {
    t.kind = "byte";
    t.tokenizer = std::make_shared<ByteTokenizer>();
    return t;
  }
  if (path.empty()) {
    fail(field, "(none)", "give --tokenizer byte or a Hugging Face tokenizer.json");
  }
  if (fs::path(path).extension() != ".json") {
    fail(field, path, "must be byte or a Hugging Face tokenizer.json (checkpoints carry it)");
  }
  if (!fs::is_regular_file(path)) fail(field, path, "does not exist");
  t.kind = "tokenizer.json";
  t.bytes = read_all(path, field);
  t.tokenizer = std::shared_ptr<const Tokenizer>(load_tokenizer(path));
  return t;
}

// ---------------------------------------------------------------- the run

template <typename S>
class Trainer {
 public:
  Trainer(const RunSpec& spec, const rt::TrainPreset& preset, const TokenizerSource& tok,
          const rt::Corpus& corpus, const TrainSetup& setup, const fs::path& out)
      : spec_(spec),
        preset_(preset),
        tok_(tok),
        corpus_(corpus),
        setup_(setup),
        out_(out),
        cfg_(rt::train_config(preset, tok.tokenizer->vocab_size(), spec.kv_heads, spec.heads)),
        plan_(KvPlan::parse(spec.plan_map, cfg_.num_hidden_layers)),
        sampler_(corpus.train, preset.batch, preset.seq_len, spec.seed),
        gm_(cfg_, plan_, spec.passes, setup.threads) {
    const int T = preset_.seq_len;
    const int rows = std::min<std::int64_t>(
        preset_.val_rows, (static_cast<std::int64_t>(corpus_.val.size()) - 1) / T);
    if (rows < 1) {
      fail(setup.text_file.empty() ? "corpus" : "--text-file",
           "a validation split of " + std::to_string(corpus_.val.size()) + " tokens",
           "is smaller than one row of T+1 = " + std::to_string(T + 1) +
               " tokens: give a longer text");
    }
    val_rows_ = rows;
    for (int r = 0; r < rows; ++r) {
      val_.insert(val_.end(), corpus_.val.begin() + static_cast<std::ptrdiff_t>(r) * T,
                  corpus_.val.begin() + static_cast<std::ptrdiff_t>(r) * T + T + 1);
    }
    schedule_.peak = spec_.lr;
    schedule_.floor = spec_.lr * preset_.lr_floor_fraction;
    schedule_.total = spec_.steps;
    schedule_.warmup = std::min<std::int64_t>(preset_.warmup, spec_.steps / 10);
    schedule_.validate();
  }

  void start_fresh() {
    w_ = rt::init_for_training<S>(cfg_, plan_, spec_.seed);
    opt_ = std::make_unique<rt::AdamW<S>>(w_, options());
  }

  // Reads weights, moments and counters from a checkpoint directory; returns its log length.
  std::int64_t resume(const fs::path& dir, const json& state) {
    w_ = ref::load_checkpoint<S>(dir.string());
    if (w_.plan.to_string() != plan_.to_string() || w_.config.vocab_size != cfg_.vocab_size ||
        w_.config.num_attention_heads != cfg_.num_attention_heads ||
        w_.config.head_dim != cfg_.head_dim ||
        w_.config.num_key_value_heads != cfg_.num_key_value_heads) {
      fail("--resume", dir.string(), "holds a model whose shape or plan differs from train_state");
    }
    const SafetensorsFile st = open_safetensors((dir / "train_state.safetensors").string());
    const TensorDtype want = std::is_same_v<S, double> ? TensorDtype::F64 : TensorDtype::F32;
    auto fill = [&](ref::Buffer<S>& into, const std::string& name) {
      if (!st.has(name)) fail(st.path() + ": tensor", name, "is missing");
      if (st.dtype(name) != want) {
        fail(st.path() + ": " + name, tensor_dtype_name(st.dtype(name)),
             std::string("a ") + precision_name(spec_.precision) + " run stores " +
                 tensor_dtype_name(want));
      }
      std::vector<S> v;
      if constexpr (std::is_same_v<S, double>) {
        v = st.read_f64(name);
      } else {
        v = st.read_f32(name);
      }
      if (v.size() != into.size()) {
        fail(st.path() + ": " + name, std::to_string(v.size()) + " values",
             "the model has " + std::to_string(into.size()));
      }
      std::copy(v.begin(), v.end(), into.begin());
    };
    if constexpr (std::is_same_v<S, double>) {
      for (auto& p : rt::parameters(w_)) fill(*p.data, "weights." + p.name);
    }
    auto m = rt::zeros_like(w_);
    auto v = rt::zeros_like(w_);
    for (auto& p : rt::parameters(m)) fill(*p.data, "adamw.m." + p.name);
    for (auto& p : rt::parameters(v)) fill(*p.data, "adamw.v." + p.name);
    opt_ = std::make_unique<rt::AdamW<S>>(w_, options());
    opt_->restore(state.at("adamw_t").get<std::int64_t>(), std::move(m), std::move(v));
    step_ = state.at("step").get<std::int64_t>();
    rt::BatchSampler::State s;
    s.seed = state.at("sampler").at("seed").get<std::uint64_t>();
    s.step = state.at("sampler").at("step").get<std::uint64_t>();
    sampler_.restore(s);
    best_val_ = state.at("best_val_loss").get<double>();
    best_val_step_ = state.at("best_val_step").get<std::int64_t>();
    last_val_ = state.value("last_val_loss", -1.0);
    last_loss_ = state.value("last_loss", 0.0);
    return state.at("log_bytes").get<std::int64_t>();
  }

  TrainSummary run(const TrainInfo& info, std::FILE* log,
                   const std::function<void(const TrainProgress&)>& on_progress) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const int B = preset_.batch, T = preset_.seq_len;
    std::vector<int> batch(static_cast<size_t>(B) * (T + 1));
    auto grads = rt::zeros_like(w_);
    const std::int64_t first = step_;
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    auto progress = [&](TrainProgress::Kind kind, const std::string& ckpt = {}) {
      if (!on_progress) return;
      TrainProgress p;
      p.kind = kind;
      p.step = step_;
      p.total_steps = spec_.steps;
      p.loss = last_loss_;
      p.lr = last_lr_;
      p.grad_norm = last_norm_;
      p.elapsed_seconds = elapsed();
      const double done = static_cast<double>(step_ - first);
      p.tokens_per_second = p.elapsed_seconds > 0 ? done * B * T / p.elapsed_seconds : 0;
      p.eta_seconds =
          done > 0 ? p.elapsed_seconds / done * static_cast<double>(spec_.steps - step_) : 0;
      p.val_loss = last_val_;
      p.best_val_loss = best_val_;
      p.checkpoint = ckpt;
      on_progress(p);
    };
    bool stopped = false;
    while (step_ < spec_.steps) {
      const auto ts = clock::now();
      const double lr = schedule_.lr_at(step_);
      sampler_.next(batch.data());
      const rt::LossReport rep = gm_.loss_and_grad(w_, batch.data(), B, T, grads);
      if (!std::isfinite(rep.total())) {
        fail("--lr", fmt(spec_.lr),
             "training diverged at step " + std::to_string(step_ + 1) + " (loss " +
                 fmt(rep.total()) + "): lower the learning rate");
      }
      const double norm = rt::clip_by_global_norm(grads, preset_.grad_clip);
      opt_->step(w_, grads, lr);
      ++step_;
      last_loss_ = rep.loss;
      last_lr_ = lr;
      last_norm_ = norm;
      const double secs = std::chrono::duration<double>(clock::now() - ts).count();
      json line = {{"step", step_}, {"loss", rep.loss}};
      if (spec_.passes.kv_loss_weight > 0) line["kv_loss"] = rep.kv_loss;
      line["lr"] = lr;
      line["grad_norm"] = norm;
      line["tokens_per_s"] = secs > 0 ? std::round(B * T / secs) : 0.0;
      write_line(log, line);
      progress(TrainProgress::Kind::step);
      const bool end = step_ == spec_.steps;
      stopped = !end && setup_.stop_at > 0 && step_ >= setup_.stop_at;
      if (step_ % spec_.val_every == 0 || end) {
        last_val_ = validate();
        write_line(log,
                   {{"step", step_}, {"val_loss", last_val_}, {"val_ppl", std::exp(last_val_)}});
        const bool better = best_val_ < 0 || last_val_ < best_val_;
        if (better) {
          best_val_ = last_val_;
          best_val_step_ = step_;
        }
        progress(TrainProgress::Kind::validation);
        if (better) {
          checkpoint(log, "best");
          progress(TrainProgress::Kind::checkpoint, (out_ / "best").string());
        }
      }
      if (step_ % spec_.checkpoint_every == 0 || end || stopped) {
        checkpoint(log, "last");
        progress(TrainProgress::Kind::checkpoint, (out_ / "last").string());
      }
      if (stopped) break;
    }
    TrainSummary s;
    s.info = info;
    s.steps_done = step_;
    s.stopped_early = stopped;
    s.final_loss = last_loss_;
    s.best_val_loss = best_val_;
    s.best_val_perplexity = best_val_ >= 0 ? std::exp(best_val_) : -1;
    s.best_val_step = best_val_step_;
    s.seconds = elapsed();
    s.tokens_per_second =
        s.seconds > 0 ? static_cast<double>(step_ - first) * B * T / s.seconds : 0;
    s.out = out_.string();
    return s;
  }

  const ModelConfig& config() const { return cfg_; }
  const KvPlan& plan() const { return plan_; }

 private:
  rt::AdamWOptions options() const {
    rt::AdamWOptions o;
    o.weight_decay = preset_.weight_decay;
    return o;
  }

  static void write_line(std::FILE* log, const json& j) {
    const std::string s = j.dump() + "\n";
    if (std::fwrite(s.data(), 1, s.size(), log) != s.size() || std::fflush(log) != 0) {
      fail("-o", "log.jsonl", "cannot write the training log");
    }
  }

  double validate() {
    const int B = preset_.batch, T = preset_.seq_len;
    double sum = 0;
    for (int r = 0; r < val_rows_; r += B) {
      const int n = std::min(B, val_rows_ - r);
      const rt::LossReport rep = gm_.loss(w_, val_.data() + static_cast<size_t>(r) * (T + 1), n, T);
      sum += rep.loss * n;
    }
    return sum / val_rows_;
  }

  // OUT/<name>: a kvlab checkpoint (F32 weights, config.json with the plan, the tokenizer) plus
  // train_state.json and train_state.safetensors; written into .<name>.tmp.<pid> and swapped in.
  void checkpoint(std::FILE* log, const std::string& name) {
    if (std::fflush(log) != 0 || ::fsync(::fileno(log)) != 0) {
      fail("-o", (out_ / "log.jsonl").string(), "cannot flush the training log");
    }
    const std::int64_t log_bytes = std::ftell(log);
    const fs::path tmp = out_ / ("." + name + ".tmp." + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp, ec);
    if (ec) fail("-o", tmp.string(), "cannot create the checkpoint directory: " + ec.message());
    ref::CheckpointMeta meta;
    meta.tokenizer = tok_.kind;
    meta.plan_spec = spec_.plan;
    if constexpr (std::is_same_v<S, float>) {
      ref::save_checkpoint(tmp.string(), w_, meta);
    } else {
      ref::save_checkpoint(tmp.string(), ref::convert_weights<float>(w_), meta);
    }
    if (tok_.kind == "tokenizer.json") {
      write_file_atomic((tmp / "tokenizer.json").string(),
                        [&](std::ostream& o) { o.write(tok_.bytes.data(), tok_.bytes.size()); });
    }
    std::vector<TensorRef> refs;
    auto add = [&](const std::string& prefix, ref::ModelWeights<S>& w) {
      for (auto& p : rt::parameters(w)) {
        refs.push_back({prefix + p.name,
                        {static_cast<std::int64_t>(p.data->size())},
                        std::span<const S>(p.data->data(), p.data->size())});
      }
    };
    if constexpr (std::is_same_v<S, double>) add("weights.", w_);
    add("adamw.m.", opt_->m());
    add("adamw.v.", opt_->v());
    write_safetensors((tmp / "train_state.safetensors").string(), refs);
    const rt::BatchSampler::State s = sampler_.state();
    json state = {{"format", kStateFormat},
                  {"version", kStateVersion},
                  {"run", spec_json(spec_)},
                  {"corpus",
                   {{"source", corpus_.source},
                    {"train_tokens", corpus_.train.size()},
                    {"val_tokens", corpus_.val.size()},
                    {"fingerprint", fingerprint(corpus_)}}},
                  {"step", step_},
                  {"adamw_t", opt_->t()},
                  {"lr_next", schedule_.lr_at(step_)},
                  {"warmup", schedule_.warmup},
                  {"sampler", {{"seed", s.seed}, {"step", s.step}}},
                  {"best_val_loss", best_val_},
                  {"best_val_step", best_val_step_},
                  {"last_val_loss", last_val_},
                  {"last_loss", last_loss_},
                  {"log_bytes", log_bytes}};
    write_file_atomic((tmp / "train_state.json").string(),
                      [&](std::ostream& o) { o << state.dump(2) << "\n"; });
    fsync_path(tmp, true);
    publish_directory(tmp, out_ / name);
  }

  RunSpec spec_;
  const rt::TrainPreset& preset_;
  const TokenizerSource& tok_;
  const rt::Corpus& corpus_;
  const TrainSetup& setup_;
  fs::path out_;
  ModelConfig cfg_;
  KvPlan plan_;
  rt::BatchSampler sampler_;
  rt::GradModel<S> gm_;
  rt::Schedule schedule_;
  ref::ModelWeights<S> w_;
  std::unique_ptr<rt::AdamW<S>> opt_;
  std::vector<int> val_;
  int val_rows_ = 0;
  std::int64_t step_ = 0, best_val_step_ = 0;
  double best_val_ = -1, last_val_ = -1, last_loss_ = 0, last_lr_ = 0, last_norm_ = 0;
};

// A value given on resume must equal the checkpoint's.
template <typename T>
void check_same(const std::string& dir, const std::string& flag, const T& stored, const T& given,
                const std::string& shown_stored, const std::string& shown_given) {
  if (stored != given) {
    fail("--resume", dir,
         "was trained with " + flag + " " + shown_stored + ", not " + shown_given +
             " (a resumed run continues the same run: same preset, plan, precision, seed and "
             "schedule)");
  }
}

template <typename S>
TrainSummary run_typed(const RunSpec& spec, const rt::TrainPreset& preset,
                       const TokenizerSource& tok, const rt::Corpus& corpus,
                       const TrainSetup& setup, const fs::path& out, const fs::path& resume_dir,
                       const json& state, const fs::path& resume_log,
                       const std::function<void(const TrainInfo&)>& on_start,
                       const std::function<void(const TrainProgress&)>& on_progress) {
  Trainer<S> tr(spec, preset, tok, corpus, setup, out);
  std::int64_t log_bytes = 0;
  if (resume_dir.empty()) {
    tr.start_fresh();
  } else {
    log_bytes = tr.resume(resume_dir, state);
  }
  // Everything is checked: now the output directory.
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out)) fail("-o", out.string(), "cannot create the output directory");
  remove_stale_temporaries(out);
  const fs::path log_path = out / "log.jsonl";
  if (!resume_dir.empty()) {
    // The log continues from the checkpoint's length: lines a killed run wrote after it go.
    const std::int64_t have = fs::exists(resume_log) ? fs::file_size(resume_log) : -1;
    if (have < log_bytes) {
      fail("--resume", resume_log.string(),
           "holds " + std::to_string(have) + " bytes, fewer than the " + std::to_string(log_bytes) +
               " the checkpoint recorded");
    }
    if (fs::equivalent(resume_log.parent_path(), out)) {
      fs::resize_file(log_path, static_cast<std::uintmax_t>(log_bytes));
    } else {
      const std::string head = read_all(resume_log, "--resume").substr(0, log_bytes);
      std::ofstream(log_path, std::ios::binary | std::ios::trunc).write(head.data(), head.size());
    }
  } else {
    std::ofstream(log_path, std::ios::binary | std::ios::trunc);
  }
  std::FILE* log = std::fopen(log_path.c_str(), "ab");
  if (!log) fail("-o", log_path.string(), "cannot open the training log");
  TrainInfo info;
  info.preset = spec.preset;
  info.plan = spec.plan;
  info.plan_map = spec.plan_map;
  info.precision = precision_name(spec.precision);
  info.tokenizer = tok.kind;
  info.corpus_source = corpus.source;
  info.layers = tr.config().num_hidden_layers;
  info.kv_layers = tr.plan().num_kv_layers();
  info.batch = preset.batch;
  info.seq_len = preset.seq_len;
  info.vocab = tr.config().vocab_size;
  info.heads = tr.config().num_attention_heads;
  info.kv_heads = tr.config().num_key_value_heads;
  info.head_dim = tr.config().head_dim;
  info.total_steps = spec.steps;
  info.start_step = resume_dir.empty() ? 0 : state.at("step").get<std::int64_t>();
  info.train_tokens = static_cast<std::int64_t>(corpus.train.size());
  info.val_tokens = static_cast<std::int64_t>(corpus.val.size());
  info.parameters = tr.config().parameter_count(info.kv_layers);
  info.kv_bytes_per_token = kv_bytes_per_token(tr.plan(), tr.config().num_key_value_heads,
                                               tr.config().head_dim, Dtype::f32);
  if (on_start) on_start(info);
  try {
    TrainSummary s = tr.run(info, log, on_progress);
    std::fclose(log);
    return s;
  } catch (...) {
    std::fclose(log);
    throw;
  }
}

}  // namespace

TrainSummary train(const TrainSetup& setup, const std::function<void(const TrainInfo&)>& on_start,
                   const std::function<void(const TrainProgress&)>& on_progress) {
  if (setup.out.empty()) fail("-o", "(none)", "give the run's output directory");
  if (setup.steps < 0) fail("--steps", std::to_string(setup.steps), "must be >= 1");
  if (setup.tokens < 0) fail("--tokens", std::to_string(setup.tokens), "must be >= 1");
  if (setup.steps > 0 && setup.tokens > 0) {
    fail("--steps/--tokens", "(both)", "give one of --steps N and --tokens N");
  }
  if (setup.lr < 0 || !std::isfinite(setup.lr)) fail("--lr", fmt(setup.lr), "must be > 0");
  if (setup.threads < 1 || setup.threads > 256) {
    fail("--threads", std::to_string(setup.threads), "must be in [1, 256]");
  }
  if (setup.val_every < 0) fail("--val-every", std::to_string(setup.val_every), "must be >= 1");
  if (setup.checkpoint_every < 0) {
    fail("--checkpoint-every", std::to_string(setup.checkpoint_every), "must be >= 1");
  }
  if (setup.kv_loss && !(*setup.kv_loss >= 0 && std::isfinite(*setup.kv_loss))) {
    fail("--kv-loss", fmt(*setup.kv_loss), "must be a number >= 0");
  }
  const fs::path out = setup.out;
  {
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
      fail("-o", setup.out, "is a file: give a directory for the run");
    }
  }

  RunSpec spec;
  json state;
  fs::path resume_dir, resume_log;
  TokenizerSource tok;
  if (!setup.resume.empty()) {
    const fs::path r = setup.resume;
    resume_dir = fs::exists(r / "train_state.json") ? r : r / "last";
    if (!fs::exists(resume_dir / "train_state.json") &&
        fs::exists(r / ".last.old" / "train_state.json")) {
      fail("--resume", setup.resume,
           "has no last/ but .last.old/ (killed between the two renames of a file system without "
           "RENAME_EXCHANGE): rename .last.old to last and resume");
    }
    if (!fs::exists(resume_dir / "train_state.json")) {
      fail("--resume", setup.resume,
           "holds no training checkpoint (no last/train_state.json): give the -o of a kvlab train "
           "run");
    }
    resume_log = resume_dir.parent_path() / "log.jsonl";
    state = json::parse(read_all(resume_dir / "train_state.json", "--resume"), nullptr, false);
    if (state.is_discarded() || !state.is_object() || state.value("format", "") != kStateFormat) {
      fail("--resume", (resume_dir / "train_state.json").string(), "is not a kvlab training state");
    }
    if (state.value("version", 0) != kStateVersion) {
      fail("--resume", (resume_dir / "train_state.json").string(),
           "has version " + state.value("version", json(0)).dump() + "; this kvlab reads " +
               std::to_string(kStateVersion));
    }
    try {
      const json& run = state.at("run");
      spec.preset = run.at("preset");
      // Fields added after the first checkpoints were written default to what those runs used:
      // the preset's query heads and recall share.
      const rt::TrainPreset& stored = rt::find_train_preset(spec.preset);
      spec.plan = run.at("plan");
      spec.plan_map = run.at("plan_map");
      spec.precision = parse_precision(run.at("precision"));
      spec.seed = run.at("seed");
      spec.heads = run.value("heads", stored.shape.num_attention_heads);
      spec.kv_heads = run.at("kv_heads");
      spec.passes.m = run.at("train_passes").at(0);
      spec.passes.b = run.at("train_passes").at(1);
      spec.passes.kv_loss_weight = run.at("kv_loss");
      spec.lr = run.at("lr");
      spec.steps = run.at("steps");
      spec.val_every = run.at("val_every");
      spec.checkpoint_every = run.at("checkpoint_every");
      spec.text_file = run.at("text_file");
      spec.recall_fraction = run.value("recall_fraction", stored.recall_fraction);
      spec.tokenizer = run.at("tokenizer");
      (void)state.at("step"), (void)state.at("sampler"), (void)state.at("log_bytes");
    } catch (const json::exception& e) {
      fail("--resume", (resume_dir / "train_state.json").string(),
           std::string("is incomplete: ") + e.what());
    }
    const std::string d = setup.resume;
    const rt::TrainPreset& preset = rt::find_train_preset(spec.preset);
    if (!setup.preset.empty())
      check_same(d, "--preset", spec.preset, setup.preset, spec.preset, setup.preset);
    if (!setup.plan.empty()) {
      std::string map;
      try {
        map = KvPlan::parse(setup.plan, preset.shape.num_hidden_layers).to_string();
      } catch (const Error&) {
        map = setup.plan;
      }
      check_same(d, "--plan", spec.plan_map, map, spec.plan + " (" + spec.plan_map + ")",
                 setup.plan + " (" + map + ")");
    }
    if (setup.precision) {
      check_same(d, "--precision", spec.precision, *setup.precision,
                 std::string(precision_name(spec.precision)),
                 std::string(precision_name(*setup.precision)));
    }
    if (setup.seed)
      check_same(d, "--seed", spec.seed, *setup.seed, std::to_string(spec.seed),
                 std::to_string(*setup.seed));
    if (setup.heads)
      check_same(d, "--heads", spec.heads, setup.heads, std::to_string(spec.heads),
                 std::to_string(setup.heads));
    if (setup.kv_heads)
      check_same(d, "--kv-heads", spec.kv_heads, setup.kv_heads, std::to_string(spec.kv_heads),
                 std::to_string(setup.kv_heads));
    if (!setup.train_passes.empty()) {
      const rt::TrainPasses p = passes_of(setup.train_passes);
      check_same(
          d, "--train-passes", std::to_string(spec.passes.m) + "," + std::to_string(spec.passes.b),
          std::to_string(p.m) + "," + std::to_string(p.b),
          std::to_string(spec.passes.m) + "," + std::to_string(spec.passes.b), setup.train_passes);
    }
    if (setup.kv_loss)
      check_same(d, "--kv-loss", spec.passes.kv_loss_weight, *setup.kv_loss,
                 fmt(spec.passes.kv_loss_weight), fmt(*setup.kv_loss));
    if (setup.lr > 0) check_same(d, "--lr", spec.lr, setup.lr, fmt(spec.lr), fmt(setup.lr));
    if (setup.steps > 0)
      check_same(d, "--steps", spec.steps, setup.steps, std::to_string(spec.steps),
                 std::to_string(setup.steps));
    if (setup.tokens > 0) {
      const std::int64_t per = static_cast<std::int64_t>(preset.batch) * preset.seq_len;
      const std::int64_t steps = (setup.tokens + per - 1) / per;
      check_same(d, "--tokens", spec.steps, steps, std::to_string(spec.steps * per),
                 std::to_string(setup.tokens));
    }
    if (setup.recall_fraction) {
      check_same(d, "--recall-fraction", spec.recall_fraction, *setup.recall_fraction,
                 fmt(spec.recall_fraction), fmt(*setup.recall_fraction));
    }
    if (!setup.text_file.empty())
      check_same(d, "--text-file", spec.text_file, fs::absolute(setup.text_file).string(),
                 spec.text_file.empty() ? "(fortunes)" : spec.text_file, setup.text_file);
    tok = open_tokenizer(
        spec.tokenizer == "byte" ? "byte" : (resume_dir / "tokenizer.json").string(), "--resume");
    if (!setup.tokenizer.empty()) {
      const TokenizerSource given = open_tokenizer(setup.tokenizer, "--tokenizer");
      if (given.kind != tok.kind || given.bytes != tok.bytes) {
        fail("--resume", d,
             "was trained with another tokenizer than --tokenizer " + setup.tokenizer);
      }
    }
    if (fs::exists(out / "last") &&
        !(fs::exists(resume_dir.parent_path()) && fs::equivalent(resume_dir.parent_path(), out))) {
      fail("-o", setup.out, "already holds another training run (last/): choose another directory");
    }
    if (setup.val_every > 0) spec.val_every = setup.val_every;
    if (setup.checkpoint_every > 0) spec.checkpoint_every = setup.checkpoint_every;
  } else {
    const rt::TrainPreset& preset = rt::find_train_preset(setup.preset);
    if (setup.plan.empty()) {
      fail("--plan", "(none)", "give the KV plan to train (e.g. standard, cla:2, lckv:2, 0_0_2_2)");
    }
    const int L = preset.shape.num_hidden_layers;
    KvPlan plan;
    try {
      plan = KvPlan::parse(setup.plan, L);
    } catch (const Error& e) {
      fail("--plan", setup.plan,
           "does not fit preset " + preset.name + " (" + std::to_string(L) +
               " layers): " + e.what());
    }
    spec.preset = preset.name;
    spec.plan = setup.plan;
    spec.plan_map = plan.to_string();
    spec.precision = setup.precision.value_or(Precision::f32);
    spec.seed = setup.seed.value_or(1);
    spec.heads = setup.heads ? setup.heads : preset.shape.num_attention_heads;
    spec.kv_heads = setup.kv_heads ? setup.kv_heads : spec.heads;
    spec.passes = passes_of(setup.train_passes);
    spec.passes.kv_loss_weight = setup.kv_loss.value_or(0.0);
    spec.passes.validate();
    spec.lr = setup.lr > 0 ? setup.lr : preset.lr;
    const std::int64_t per = static_cast<std::int64_t>(preset.batch) * preset.seq_len;
    spec.steps = setup.steps > 0    ? setup.steps
                 : setup.tokens > 0 ? (setup.tokens + per - 1) / per
                                    : preset.steps;
    spec.val_every = setup.val_every > 0 ? setup.val_every : preset.val_every;
    spec.checkpoint_every = setup.checkpoint_every > 0 ? setup.checkpoint_every : spec.val_every;
    spec.recall_fraction = setup.recall_fraction.value_or(preset.recall_fraction);
    spec.text_file = setup.text_file.empty() ? "" : fs::absolute(setup.text_file).string();
    tok = open_tokenizer(setup.tokenizer, "--tokenizer");
    spec.tokenizer = tok.kind;
    // --heads, --kv-heads: named errors before anything is written.
    (void)rt::train_config(preset, tok.tokenizer->vocab_size(), setup.kv_heads, setup.heads);
    if (fs::exists(out / "last")) {
      fail("-o", setup.out,
           "already holds a training run (last/): continue it with --resume " + setup.out +
               ", or choose another directory");
    }
  }
  const rt::TrainPreset& preset = rt::find_train_preset(spec.preset);

  rt::CorpusOptions co;
  co.text_file = spec.text_file;
  co.seed = spec.seed;
  co.recall_fraction = spec.recall_fraction;
  co.validate();
  const rt::Corpus corpus = rt::build_corpus(co, *tok.tokenizer, preset.seq_len);
  if (!resume_dir.empty()) {
    const std::string fp = state.at("corpus").value("fingerprint", "");
    if (fp != fingerprint(corpus)) {
      fail("--resume", setup.resume,
           "was trained on another corpus (" + state.at("corpus").value("source", "?") +
               ", fingerprint " + fp + "; now " + corpus.source + ", " + fingerprint(corpus) +
               "): the text changed");
    }
  }
  if (spec.precision == Precision::f64) {
    return run_typed<double>(spec, preset, tok, corpus, setup, out, resume_dir, state, resume_log,
                             on_start, on_progress);
  }
  return run_typed<float>(spec, preset, tok, corpus, setup, out, resume_dir, state, resume_log,
                          on_start, on_progress);
}

}  // namespace kvlab
