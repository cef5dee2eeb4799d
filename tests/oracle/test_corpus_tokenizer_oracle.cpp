// The project's tokenizer (models/tokenizer.json, scripts/train-tokenizer.py) on the whole training
// corpus (the cleaned fortunes, train and validation): kvlab's HfTokenizer must give exactly the
// ids of the Hugging Face `tokenizers` package for every document, decode them back to the text,
// and spend a reasonable number of tokens per character. Never skipped: a missing python, package
// or fortunes directory (scripts/setup.sh installs them) is a failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/tokenizers/hf.hpp"
#include "reference/train/corpus.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

TEST(CorpusTokenizerOracle, KvlabEncodesTheWholeCorpusAsTokenizersDoes) {
  const std::string tokenizer = KVLAB_SOURCE_DIR "/models/tokenizer.json";
  const kvlab::HfTokenizer tok = kvlab::HfTokenizer::load(tokenizer);
  const kvlab::ref::train::Documents d = kvlab::ref::train::read_documents({});
  std::vector<std::string> docs = d.train;
  docs.insert(docs.end(), d.val.begin(), d.val.end());
  ASSERT_GT(docs.size(), 10000u);

  const fs::path dir =
      fs::temp_directory_path() / ("kvlab_corpus_oracle_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "docs.json") << json(docs).dump();
  const std::string cmd = shell_quote(KVLAB_VENV_PYTHON) + " " +
                          shell_quote(KVLAB_SOURCE_DIR "/tests/oracle/encode_corpus.py") + " " +
                          shell_quote(tokenizer) + " " + shell_quote((dir / "docs.json").string()) +
                          " " + shell_quote((dir / "ids.json").string()) + " 2>&1";
  std::string output;
  FILE* p = popen(cmd.c_str(), "r");
  int status = -1;
  if (p != nullptr) {
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) output.append(buf, n);
    status = pclose(p);
  }
  ASSERT_EQ(status, 0) << "the tokenizers oracle failed (" << KVLAB_VENV_PYTHON
                       << "; scripts/setup.sh installs `tokenizers` into .venv):\n"
                       << output;
  std::ifstream in(dir / "ids.json");
  const json expected = json::parse(in);
  ASSERT_EQ(expected.size(), docs.size());

  long mismatches = 0, tokens = 0, characters = 0, roundtrip = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const std::vector<int> ids = tok.encode(docs[i], false);
    tokens += static_cast<long>(ids.size());
    characters += static_cast<long>(docs[i].size());
    if (ids != expected[i].get<std::vector<int>>()) {
      if (mismatches++ < 3) ADD_FAILURE() << "document " << i << " differs:\n" << docs[i];
    }
    roundtrip += tok.decode(ids) != docs[i];
  }
  EXPECT_EQ(mismatches, 0) << "of " << docs.size() << " documents";
  EXPECT_EQ(roundtrip, 0) << "documents whose decode(encode(x)) != x";
  const double ratio = static_cast<double>(tokens) / static_cast<double>(characters);
  std::printf("corpus: %zu documents, %ld bytes, %ld tokens (%.3f tokens per byte)\n", docs.size(),
              characters, tokens, ratio);
  EXPECT_GT(ratio, 0.3);
  EXPECT_LT(ratio, 0.5);
  if (!HasFailure()) fs::remove_all(dir);
}
