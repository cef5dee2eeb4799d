// Training data, all offline (docs/training.md): natural English from the Debian `fortunes`
// packages (or any text file the user names), cleaned and split train/validation, tokenized with
// the model's tokenizer and mixed with generated recall sequences (passkey and associative recall,
// the formats of reference/tasks.hpp) so that trained models can retrieve.
#pragma once

#include <cstddef>
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
  long documents = 0;  // natural documents read (fortunes or paragraphs)
  long recall_sequences = 0;
  std::string source;  // "fortunes:/usr/share/games/fortunes" or the text file's path
  // Added for `kvlab corpus`'s statistics (docs/training.md):
  long val_documents = 0;  // of `documents`, those held out
  long characters = 0;     // bytes of cleaned text in all documents
  int row = 0;             // seq_len + 1: `train` is whole rows of this many tokens
  std::string row_kinds;   // per row of `train`: 't' text, 'p' passkey, 'm' MQAR (then text)
};

// Reads, cleans, splits and tokenizes; recall sequences are made `seq_len + 1` tokens long.
// Throws kvlab::Error naming the file or directory when it is missing or yields no text.
//
// Layout of `train` (docs/training.md, "Data and tokenizer"): whole rows of seq_len + 1 tokens.
// Natural text (BOS doc EOS BOS doc EOS ...) is cut into consecutive rows; a seeded
// recall_fraction of rows instead start with one recall example (a passkey or an MQAR example,
// exactly as reference/tasks.cpp makes them, at position 0 like in `kvlab eval`), then EOS, then
// the natural text continues to the row's end. The sampler draws whole rows, so a recall example
// is never cut. `val` is natural text only (BOS doc EOS ...).
Corpus build_corpus(const CorpusOptions& options, const Tokenizer& tokenizer, int seq_len);

// The building blocks of build_corpus (also used by `kvlab corpus` and the tests).
// Documents of a fortune file: the texts between lines that are just "%".
std::vector<std::string> split_fortunes(const std::string& text);
// Documents of any text: paragraphs, separated by blank lines.
std::vector<std::string> split_paragraphs(const std::string& text);
// A cleaned document, or "" when it is dropped (empty, longer than kMaxDocumentChars, or fewer
// than kMinLetterShare of its non-space characters are letters: ASCII art, tables). Cleaning:
// invalid UTF-8 and control characters dropped (an overstrike "x\bY" keeps Y), CR dropped, tabs
// become 4 spaces, trailing spaces stripped, leading and trailing blank lines dropped, runs of
// blank lines become one.
inline constexpr std::size_t kMaxDocumentChars = 4000;
inline constexpr double kMinLetterShare = 0.6;
std::string clean_document(const std::string& text);
// Whether a document is held out: a hash of its text and the seed, below val_fraction. Stable
// (the same text is in the same split in every run and on every machine) and disjoint.
bool is_validation(const std::string& document, std::uint64_t seed, double val_fraction);
// The cleaned documents of options' source, in a fixed order (files sorted by name), exact
// duplicates dropped, split: first = train, second = validation.
struct Documents {
  std::vector<std::string> train, val;
  std::string source;
};
Documents read_documents(const CorpusOptions& options);
// The separator of --dump-text: documents are written joined by "\n%\n" (fortune style), which
// no cleaned document contains.
inline constexpr const char* kDumpSeparator = "\n%\n";

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
  // stream is too short. Rows are whole (T+1)-token rows of the stream (row r starts at r(T+1));
  // row b of batch `step` is drawn uniformly with Rng(mix(seed, step, b)), counter-based, so
  // restore({seed, step}) resumes exactly. With T = build_corpus's seq_len no recall example is
  // ever cut.
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
