// kvlab's tokenizers against the Hugging Face `tokenizers` package (installed into .venv by
// scripts/setup.sh): tests/oracle/make_tokenizers.py trains a GPT-2-style byte-level, a
// Llama-3-style byte-level (Split regex) and a Llama-2-style SentencePiece tokenizer.json with
// `tokenizers` itself and writes the ids it gives for a varied set of texts (ASCII, Unicode,
// emoji, whitespace runs, digits, special tokens, 300 random strings); kvlab must agree on 100%
// of them, with merges written as "a b" strings and as ["a", "b"] pairs, and
// decode(encode(x)) == x. Never skipped: a missing python or package is a failure.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs make_tokenizers.py once per process; returns the output directory.
const fs::path& oracle_dir() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("kvlab_tokenizers_oracle_" + std::to_string(::getpid()));
    fs::create_directories(d);
    const std::string py = KVLAB_VENV_PYTHON;
    const std::string cmd = shell_quote(py) + " " +
                            shell_quote(KVLAB_SOURCE_DIR "/tests/oracle/make_tokenizers.py") + " " +
                            shell_quote(d.string()) + " 2>&1";
    std::string output;
    FILE* p = popen(cmd.c_str(), "r");
    int status = -1;
    if (p != nullptr) {
      char buf[4096];
      size_t n = 0;
      while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output.append(buf, n);
      status = pclose(p);
    }
    EXPECT_EQ(status, 0) << "the tokenizers oracle failed (" << py
                         << "; scripts/setup.sh installs the `tokenizers` package into .venv):\n"
                         << output;
    return d;
  }();
  return dir;
}

const json& expected() {
  static const json j = [] {
    const fs::path p = oracle_dir() / "expected.json";
    if (!fs::exists(p)) return json::object();
    return json::parse(read_text(p));
  }();
  return j;
}

bool has_special(const std::string& text) {
  for (const char* s : {"<s>", "</s>", "<|endoftext|>", "<unk>"}) {
    if (text.find(s) != std::string::npos) return true;
  }
  return false;
}

void check(const std::string& name, bool pair_merges) {
  const json& e = expected();
  ASSERT_TRUE(e.contains("ids")) << "no expected.json from the oracle";
  ASSERT_TRUE(e["ids"].contains(name));
  json tj = json::parse(read_text(oracle_dir() / (name + ".json")));
  if (pair_merges) {
    for (json& m : tj["model"]["merges"]) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      m = json::array({s.substr(0, sp), s.substr(sp + 1)});
    }
  }
  const kvlab::HfTokenizer t = kvlab::HfTokenizer::from_json_text(tj.dump(), name + ".json");
  const json& texts = e["texts"];
  size_t agree = 0, round_trips = 0, checked_round_trips = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const std::vector<int> want = e["ids"][name][i].get<std::vector<int>>();
    const std::vector<int> got = t.encode(text, false);
    if (got == want) {
      ++agree;
    } else {
      ADD_FAILURE() << name << ": text " << i << " " << json(text).dump() << "\n  tokenizers "
                    << json(want).dump() << "\n  kvlab      " << json(got).dump();
    }
    if (!has_special(text)) {
      ++checked_round_trips;
      const std::string back = t.decode(got);
      if (back == text) {
        ++round_trips;
      } else {
        ADD_FAILURE() << name << ": decode(encode(x)) != x for text " << i << " "
                      << json(text).dump() << " -> " << json(back).dump();
      }
    }
  }
  EXPECT_EQ(agree, texts.size()) << name << ": ids agree on " << agree << " of " << texts.size();
  EXPECT_EQ(round_trips, checked_round_trips);
  EXPECT_GT(texts.size(), 300u);
}

}  // namespace

TEST(TokenizersOracle, PackageIsInstalled) {
  ASSERT_TRUE(expected().contains("tokenizers_version"));
  std::cout << "tokenizers " << expected()["tokenizers_version"].get<std::string>() << "\n";
}

TEST(TokenizersOracle, ByteLevelGpt2AgreesOnAllIds) {
  check("bytelevel_gpt2", false);
}
TEST(TokenizersOracle, ByteLevelLlama3SplitAgreesOnAllIds) {
  check("bytelevel_llama3", false);
}
TEST(TokenizersOracle, SentencePieceStyleAgreesOnAllIds) {
  check("sentencepiece", false);
}
TEST(TokenizersOracle, MergesAsPairsGiveTheSameIds) {
  check("bytelevel_gpt2", true);
  check("sentencepiece", true);
}

TEST(TokenizersOracle, FactoryLoadsTheOraclesFiles) {
  for (const char* name : {"bytelevel_gpt2", "sentencepiece"}) {
    const std::unique_ptr<kvlab::Tokenizer> t =
        kvlab::load_tokenizer((oracle_dir() / (std::string(name) + ".json")).string());
    const std::string text = expected()["texts"][6].get<std::string>();
    EXPECT_EQ(t->encode(text, false), expected()["ids"][name][6].get<std::vector<int>>());
    EXPECT_GT(t->vocab_size(), 256);
  }
}
