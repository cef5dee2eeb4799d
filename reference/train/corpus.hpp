// Training data, all offline (docs/training.md): natural English from the Debian `fortunes`
// packages (or any text file the user names), cleaned and split train/validation, tokenized with
// the model's tokenizer and mixed with generated recall sequences (passkey and associative recall,
// the formats of reference/tasks.hpp) so that trained models can retrieve.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tokenizers/tokenizer.hpp"

namespace kvlab::ref::train {

struct CorpusOptions {
  std::string fortunes_dir = "/usr/share/games/fortunes";  // used when text_file is empty
  std::string text_file;         // --text-file: any UTF-8 text instead of the fortunes
  double val_fraction = 0.05;    // share of documents held out for validation, (0, 0.5]
  double recall_fraction = 0.2;  // share of training sequences that are generated recall, [0, 1)
  std::uint64_t seed = 1;        // split and recall generation
  void validate() const;         // throws kvlab::Error naming --val-fraction / --recall ...
};

struct Corpus {
  std::vector<int> train;  // one token stream, documents joined, BOS first in each
  std::vector<int> val;
  long documents = 0;      // natural documents read (fortunes or paragraphs)
  long recall_sequences = 0;
  std::string source;      // "fortunes:/usr/share/games/fortunes" or the text file's path
};

// Reads, cleans, splits and tokenizes; recall sequences are made `seq_len + 1` tokens long.
// Throws kvlab::Error naming the file or directory when it is missing or yields no text.
Corpus build_corpus(const CorpusOptions& options, const Tokenizer& tokenizer, int seq_len);

// Draws batches of B rows of T+1 tokens from a stream, deterministically from a seed; its whole
// state is a few integers so that a checkpoint can store it and a resumed run draws the same
// batches as one that never stopped.
class BatchSampler {
 public:
  struct State {
    std::uint64_t seed = 0;
    std::uint64_t step = 0;  // batches drawn so far
  };
  // Throws kvlab::Error ("corpus of N tokens is smaller than one batch row of T+1") when the
  // stream is too short.
  BatchSampler(const std::vector<int>& stream, int B, int T, std::uint64_t seed);
  void next(int* out);  // out: (B, T+1)
  State state() const;
  void restore(const State& s);

 private:
  const std::vector<int>* stream_;
  int B_, T_;
  State state_;
};

}  // namespace kvlab::ref::train
