// What a Session runs: the weights SessionOptions::model names (a checkpoint, or random weights
// for a preset or a config.json) and the tokenizer that goes with them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/formats/config_json.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/weights.hpp"

namespace kvlab {

struct SessionOptions;

// Stands in when a model comes without a tokenizer (a llama2.c .bin without --tokenizer, a
// Hugging Face directory without tokenizer.json): runs with token ids work, text gives a named
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

template <typename S>
struct LoadedModel {
  std::shared_ptr<const ref::ModelWeights<S>> weights;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string format;     // "kvlab" | "hf" | "llama2c" | "random"
  std::string plan_spec;  // how the weights' plan was asked for; "" when unknown
};

// Reads options.model: a directory is a checkpoint (kvlab or Hugging Face), any other file a
// llama2.c .bin; with options.allow_random a .json file is a config and a name that is no file a
// model preset, both for random weights. Random weights are made in float32 (an f64 session
// converts them, so both precisions run the same model) under options.run.plan (default standard)
// with options.seed. The tokenizer: options.tokenizer when given; else the byte tokenizer for kvlab
// checkpoints that say "byte" and for random weights (when the vocabulary holds its 258 tokens),
// tokenizer.json in a directory, tokenizer.bin beside a .bin; else NoTokenizer. Throws
// kvlab::Error, also for a tokenizer with more tokens than the model's vocabulary.
template <typename S>
LoadedModel<S> load_model(const SessionOptions& options);

// A tokenizer for weights someone else made: `given`, or NoTokenizer when null; checked against
// the vocabulary.
std::shared_ptr<const Tokenizer> checked_tokenizer(std::shared_ptr<const Tokenizer> given,
                                                   int vocab_size);

// /proc/meminfo's MemAvailable in bytes; -1 when it cannot be read.
std::int64_t mem_available_bytes();

// Refuses to allocate: throws kvlab::Error naming `field` = `value` when `bytes` (what `what`
// needs) exceed MemAvailable, with both figures. Does nothing when MemAvailable is unknown.
void check_fits_in_memory(const std::string& field, const std::string& value, double bytes,
                          const std::string& what);

// The bytes of a text file; throws kvlab::Error naming `field` when it cannot be read.
std::string read_text_file(const std::string& path, const std::string& field = "--text-file");

}  // namespace kvlab
