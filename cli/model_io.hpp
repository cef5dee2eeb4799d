// Loading a runnable model for the commands that run one (generate, forward, ppl).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/checkpoint.hpp"
#include "reference/engine.hpp"

namespace kvlab::cli {

template <typename S>
struct LoadedModel {
  ref::ModelWeights<S> weights;
  ref::CheckpointMeta meta;
  std::unique_ptr<Tokenizer> tokenizer;
};

// Stands in when a model comes without a tokenizer (a llama2.c .bin without --tokenizer, a
// Hugging Face directory without tokenizer.json): runs with --tokens work, text gives a named
// error.
class NoTokenizer final : public Tokenizer {
 public:
  NoTokenizer(std::string why, int vocab) : why_(std::move(why)), vocab_(vocab) {}
  std::vector<int> encode(std::string_view, bool) const override { refuse(); }
  std::string decode(const std::vector<int>&) const override { refuse(); }
  std::string decode_token(int) const override { refuse(); }
  int vocab_size() const override { return vocab_; }
  int bos_id() const override { return 1; }  // the Llama convention
  int eos_id() const override { return 2; }
  std::string name() const override { return "none"; }

 private:
  [[noreturn]] void refuse() const {
    fail("--tokenizer", "(none)",
         "this model has no tokenizer (" + why_ +
             "): give one with --tokenizer PATH, or token ids with --tokens");
  }
  std::string why_;
  int vocab_;
};

// Reads a checkpoint (kvlab directory, Hugging Face directory or llama2.c .bin) and its
// tokenizer: `tokenizer_path` (--tokenizer: a tokenizer.json or llama2.c tokenizer.bin) when
// given; else the byte tokenizer for kvlab checkpoints that say "byte", tokenizer.json in a
// directory, tokenizer.bin beside a .bin. Throws kvlab::Error, also for a tokenizer with more
// tokens than the model's vocabulary.
template <typename S>
LoadedModel<S> load_model(const std::string& path, const std::string& tokenizer_path = "") {
  namespace fs = std::filesystem;
  LoadedModel<S> m;
  m.weights = ref::load_checkpoint<S>(path, &m.meta);
  const int V = m.weights.config.vocab_size;
  std::string file = tokenizer_path, field = "--tokenizer";
  if (file.empty()) {
    field = "tokenizer of " + path;
    std::error_code ec;
    const fs::path beside = m.meta.format == ref::CheckpointFormat::llama2c
                                ? fs::path(path).parent_path() / "tokenizer.bin"
                                : fs::path(path) / "tokenizer.json";
    if (m.meta.format == ref::CheckpointFormat::kvlab && m.meta.tokenizer == "byte") {
      m.tokenizer = std::make_unique<ByteTokenizer>();
    } else if (fs::is_regular_file(beside, ec)) {
      file = beside.string();
    } else {
      m.tokenizer = std::make_unique<NoTokenizer>(
          m.meta.format == ref::CheckpointFormat::llama2c
              ? "a llama2.c .bin holds none and there is no tokenizer.bin beside it"
              : "no tokenizer.json in the directory",
          V);
      return m;
    }
  } else if (!fs::exists(file)) {
    fail("--tokenizer", file, "does not exist");
  }
  if (!file.empty()) m.tokenizer = load_tokenizer(file);
  if (V < m.tokenizer->vocab_size()) {
    fail(field, file.empty() ? m.tokenizer->name() : file,
         "has " + std::to_string(m.tokenizer->vocab_size()) +
             " tokens, more than the model's vocab_size = " + std::to_string(V));
  }
  return m;
}

// --plan SPEC for a run: empty = the checkpoint's own plan.
inline std::optional<KvPlan> plan_option(const std::string& spec, int layers) {
  if (spec.empty()) return std::nullopt;
  return KvPlan::parse(spec, layers);
}

// The LCKV prefill schedule flags shared by generate, forward, ppl, bench and trace-prefill.
struct ScheduleFlags {
  int passes = 0;       // --passes N: always N iterative passes (0: not given)
  double converge = 0;  // --converge EPS (0: not given)
  int max_passes = 64;  // --max-passes N (with --converge)
  bool token_by_token = false;
};

inline void add_schedule_options(CLI::App* cmd, ScheduleFlags& f) {
  cmd->add_option("--passes", f.passes,
                  "Upward plans: N iterative passes (default: 9, token by token for prompts of "
                  "at most 9 tokens)");
  cmd->add_option("--converge", f.converge,
                  "Upward plans: iterate until the largest relative K/V change < EPS");
  cmd->add_option("--max-passes", f.max_passes, "With --converge: at most N passes")
      ->capture_default_str();
  cmd->add_flag("--token-by-token", f.token_by_token, "Upward plans: encode one token at a time");
}

// `iterative_default`: what no flag means (trace-prefill always iterates; others follow the
// official schedule).
inline ref::PrefillSchedule to_schedule(const ScheduleFlags& f, bool iterative_default = false) {
  const int given = (f.passes != 0) + (f.converge != 0) + f.token_by_token;
  if (given > 1) {
    fail("--passes/--converge/--token-by-token", "(several)", "choose at most one schedule");
  }
  ref::PrefillSchedule s;
  s.max_passes = f.max_passes;
  if (f.passes != 0) {
    s.mode = ref::PrefillMode::fixed;
    s.passes = f.passes;
  } else if (f.converge != 0) {
    s.mode = ref::PrefillMode::converge;
    s.eps = f.converge;
  } else if (f.token_by_token) {
    s.mode = ref::PrefillMode::token_by_token;
  } else if (iterative_default) {
    s.mode = ref::PrefillMode::fixed;
  }
  s.validate();
  return s;
}

// --policy and --positions together: a PolicySpec, or a named error.
inline ref::PolicySpec policy_option(const std::string& policy, const std::string& positions) {
  ref::PolicySpec p = ref::PolicySpec::parse(policy);
  if (positions == "cache") {
    p.positions = ref::PositionMode::cache;
  } else if (positions != "absolute") {
    fail("--positions", positions, "must be absolute or cache");
  }
  return p;
}

// Token ids from exactly one of --prompt, --tokens, --text-file (text gets BOS first).
std::vector<int> prompt_tokens(const Tokenizer& tokenizer, int vocab_size,
                               const std::string& prompt, const std::string& tokens,
                               const std::string& text_file);

// Printable text of generated bytes: control characters other than newline and tab as \xNN.
std::string printable(const std::string& bytes);

}  // namespace kvlab::cli
