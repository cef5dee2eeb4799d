// kvlab corpus: the training data of docs/training.md ("Data and tokenizer") without a model:
// documents, characters, tokens in a tokenizer, the train/validation split and the recall rows;
// --dump-text writes the cleaned training documents (what scripts/train-tokenizer.py trains on).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/train/corpus.hpp"

namespace kvlab::cli {
namespace {

struct CorpusCommandOptions {
  ref::train::CorpusOptions corpus;
  std::string tokenizer;  // empty: the byte tokenizer
  int seq_len = 256;
  std::string dump_text;
  bool json = false;
};

void run_corpus(const CorpusCommandOptions& o) {
  o.corpus.validate();
  if (o.seq_len < 1) fail("--seq-len", std::to_string(o.seq_len), "must be >= 1");
  if (!o.dump_text.empty()) check_output_directory("--dump-text", o.dump_text);
  std::unique_ptr<Tokenizer> tok =
      o.tokenizer.empty() ? std::make_unique<ByteTokenizer>() : load_tokenizer(o.tokenizer);
  const ref::train::Documents docs = ref::train::read_documents(o.corpus);
  const ref::train::Corpus c = ref::train::build_corpus(o.corpus, *tok, o.seq_len);
  long train_chars = 0, val_chars = 0;
  for (const std::string& d : docs.train) train_chars += static_cast<long>(d.size());
  for (const std::string& d : docs.val) val_chars += static_cast<long>(d.size());
  // Tokens of the natural text alone (no BOS/EOS), for the tokens-per-character ratio.
  long text_tokens = 0;
  for (const auto* v : {&docs.train, &docs.val}) {
    for (const std::string& d : *v) text_tokens += static_cast<long>(tok->encode(d, false).size());
  }
  const long rows = static_cast<long>(c.train.size()) / c.row;
  const long passkeys = std::count(c.row_kinds.begin(), c.row_kinds.end(), 'p');
  const long mqars = std::count(c.row_kinds.begin(), c.row_kinds.end(), 'm');
  if (!o.dump_text.empty()) {
    write_file_atomic(o.dump_text, [&](std::ostream& out) {
      for (std::size_t i = 0; i < docs.train.size(); ++i) {
        if (i) out << ref::train::kDumpSeparator;
        out << docs.train[i];
      }
      out << "\n";
    });
  }
  const double ratio = static_cast<double>(text_tokens) / static_cast<double>(c.characters);
  if (o.json) {
    nlohmann::json j = {{"source", c.source},
                        {"tokenizer", tok->name()},
                        {"vocab_size", tok->vocab_size()},
                        {"documents", c.documents},
                        {"train_documents", c.documents - c.val_documents},
                        {"val_documents", c.val_documents},
                        {"characters", c.characters},
                        {"train_characters", train_chars},
                        {"val_characters", val_chars},
                        {"text_tokens", text_tokens},
                        {"tokens_per_character", ratio},
                        {"seq_len", o.seq_len},
                        {"train_tokens", c.train.size()},
                        {"train_rows", rows},
                        {"recall_sequences", c.recall_sequences},
                        {"passkey_rows", passkeys},
                        {"mqar_rows", mqars},
                        {"val_tokens", c.val.size()}};
    if (!o.dump_text.empty()) j["dump_text"] = o.dump_text;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("source          %s\n", c.source.c_str());
  std::printf("tokenizer       %s (vocabulary %d)\n", tok->name().c_str(), tok->vocab_size());
  std::printf("documents       %s  (train %s, validation %s; val-fraction %g, seed %llu)\n",
              group_digits(c.documents).c_str(),
              group_digits(c.documents - c.val_documents).c_str(),
              group_digits(c.val_documents).c_str(), o.corpus.val_fraction,
              static_cast<unsigned long long>(o.corpus.seed));
  std::printf("characters      %s  (train %s, validation %s)\n", group_digits(c.characters).c_str(),
              group_digits(train_chars).c_str(), group_digits(val_chars).c_str());
  std::printf("text tokens     %s  (%.3f tokens per character)\n",
              group_digits(text_tokens).c_str(), ratio);
  std::printf(
      "train stream    %s tokens = %s rows of seq-len + 1 = %d, %s of them recall (%.1f%%)\n",
      group_digits(static_cast<long>(c.train.size())).c_str(), group_digits(rows).c_str(), c.row,
      group_digits(c.recall_sequences).c_str(),
      rows ? 100.0 * static_cast<double>(c.recall_sequences) / static_cast<double>(rows) : 0.0);
  std::printf("recall rows     %s passkey, %s MQAR%s\n", group_digits(passkeys).c_str(),
              group_digits(mqars).c_str(),
              c.recall_sequences > 0 && mqars == 0
                  ? " (MQAR's raw ids would include this tokenizer's BOS/EOS: passkeys only)"
                  : "");
  std::printf("val stream      %s tokens (natural text only)\n",
              group_digits(static_cast<long>(c.val.size())).c_str());
  if (!o.dump_text.empty()) {
    std::printf("wrote           %s (%s training documents joined by a line \"%%\")\n",
                o.dump_text.c_str(), group_digits(static_cast<long>(docs.train.size())).c_str());
  }
}

}  // namespace

void add_corpus_command(CLI::App& app) {
  auto o = std::make_shared<CorpusCommandOptions>();
  auto* cmd = app.add_subcommand(
      "corpus",
      "Training data statistics (fortunes or a text file); --dump-text for the tokenizer");
  cmd->add_option("--fortunes-dir", o->corpus.fortunes_dir,
                  "Directory of fortune files (Debian fortunes, fortunes-min)")
      ->capture_default_str();
  cmd->add_option("--text-file", o->corpus.text_file,
                  "Any UTF-8 text instead (documents = blank-line separated paragraphs)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.json or tokenizer.bin (default: the byte tokenizer)");
  cmd->add_option("--seq-len", o->seq_len, "Training context T (rows are T + 1 tokens)")
      ->capture_default_str();
  cmd->add_option("--val-fraction", o->corpus.val_fraction, "Documents held out, in (0, 0.5]")
      ->capture_default_str();
  cmd->add_option("--recall-fraction", o->corpus.recall_fraction,
                  "Training rows that are passkey/MQAR examples, in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--seed", o->corpus.seed, "Split and recall seed")->capture_default_str();
  cmd->add_option("--dump-text", o->dump_text,
                  "Write the cleaned training documents here (atomically)");
  cmd->add_flag("--json", o->json, "Print a JSON object instead of the report");
  cmd->callback([o] { run_corpus(*o); });
}

}  // namespace kvlab::cli
