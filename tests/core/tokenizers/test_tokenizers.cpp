// The llama2.c tokenizer.bin and Hugging Face tokenizer.json BPE tokenizers on tiny vocabularies
// written by the tests: exact encodings worked by hand, round trips on a varied text, named
// errors for bad files. (The ids are checked against the `tokenizers` package in
// tests/oracle/test_tokenizers_oracle.cpp.)
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/llama2c.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "tests/core/tokenizer_fixtures.hpp"

namespace {

using nlohmann::json;
using namespace kvlab::test;  // the tokenizer files (tests/core/tokenizer_fixtures.hpp)

void expect_error(const std::function<void()>& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "should have been rejected";
  } catch (const kvlab::Error& e) {
    const std::string msg = e.what();
    for (const std::string& s : fragments) {
      EXPECT_NE(msg.find(s), std::string::npos) << "message: " << msg << "\nexpected: " << s;
    }
  }
}

// ASCII, Unicode (Latin, Greek, Cyrillic, CJK), emoji (incl. a ZWJ sequence), whitespace runs,
// tabs, newlines, digits, contractions.
const std::string kVaried =
    "Hello, World! It's 2024; we'll pay $1,234.56 for 7 caf\xC3\xA9s.\n\n"
    "  Spaces   and\ttabs\t\tend  \n"
    "\xCE\x91\xCE\xB8\xCE\xB7\xCE\xBD\xCE\xB1 \xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0 "
    "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80\xF0\x9F\x91\x8D"
    "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB 12345678901 x\xC2\xB2 I'M DON'T\r\n   ";

std::string temp_path(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("kvlab-test-tokenizers-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- llama2.c tokenizer.bin ------------------------------------------------------------------

int id_of(const kvlab::Llama2cTokenizer& t, const std::string& piece) {
  for (int id = 0; id < t.vocab_size(); ++id) {
    if (t.piece(id) == piece) return id;
  }
  ADD_FAILURE() << "no piece " << piece;
  return -1;
}

kvlab::Llama2cTokenizer small_llama2c() {
  return kvlab::Llama2cTokenizer::from_bytes(small_llama2c_bytes());
}

TEST(Llama2cTokenizer, Facts) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.name(), "llama2c");
  EXPECT_EQ(t.piece(3), "<0x00>");
  EXPECT_EQ(t.max_token_length(), 6);
}

TEST(Llama2cTokenizer, MergesTheBestScoringPairFirstAndTheLeftmostOnTies) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  const int sp = id_of(t, " "), a = id_of(t, "a"), bc = id_of(t, "bc"), aa = id_of(t, "aa");
  // "abc": "bc" (score 0) beats "ab" (-1): [" ", a, bc]; " a" (-3) then merges with the prefix.
  EXPECT_EQ(t.encode("abc", false), (std::vector<int>{id_of(t, " a"), bc}));
  // BOS first, the dummy-prefix " " token, then "aa" merged at the leftmost of two equal pairs.
  EXPECT_EQ(t.encode("aaa", true), (std::vector<int>{1, sp, aa, a}));
  // Empty text: no dummy prefix.
  EXPECT_EQ(t.encode("", true), std::vector<int>{1});
  EXPECT_TRUE(t.encode("", false).empty());
}

TEST(Llama2cTokenizer, UnicodeLookupWithByteFallback) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  // "é" is a token; "€" (E2 82 AC) is not: three byte tokens, id = byte + 3.
  EXPECT_EQ(t.encode("\xC3\xA9\xE2\x82\xAC", false),
            (std::vector<int>{id_of(t, " "), id_of(t, "\xC3\xA9"), 0xE2 + 3, 0x82 + 3, 0xAC + 3}));
  EXPECT_EQ(t.decode_token(0xE2 + 3), "\xE2");
  EXPECT_EQ(t.decode_token(1), "");
  EXPECT_EQ(t.decode_token(2), "");
}

TEST(Llama2cTokenizer, DecodeStripsTheDummyPrefixAfterBos) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  const std::vector<int> ids = t.encode("the", true);
  EXPECT_EQ(ids, (std::vector<int>{1, id_of(t, " the")}));
  EXPECT_EQ(t.decode(ids), "the");
  EXPECT_EQ(t.decode_token(ids[1]), " the");
  // A byte token for a space is never stripped.
  EXPECT_EQ(t.decode({1, 0x20 + 3, id_of(t, "a")}), " a");
}

TEST(Llama2cTokenizer, RoundTripsVariedText) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  for (bool bos : {true, false}) {
    const std::vector<int> ids = t.encode(kVaried, bos);
    EXPECT_LT(ids.size(), kVaried.size());  // merges happened
    EXPECT_EQ(t.decode(ids), kVaried);
    // Streaming token by token gives the same bytes (after the stripped dummy prefix).
    std::string streamed;
    for (size_t i = bos ? 2 : 1; i < ids.size(); ++i) streamed += t.decode_token(ids[i]);
    EXPECT_EQ(t.decode_token(ids[bos ? 1 : 0]).substr(1) + streamed, kVaried);
  }
  // Invalid UTF-8 goes through byte tokens too.
  const std::string junk("\xFF\x80\xC3 a\xF0\x9F", 7);
  EXPECT_EQ(t.decode(t.encode(junk, true)), junk);
}

// run.c's merge loop, written plainly: rescan every adjacent pair, take the best score (the
// leftmost on ties, scores <= -1e10 never), until no pair merges.
std::vector<int> rescan_merges(const kvlab::Llama2cTokenizer& t, std::vector<int> ids,
                               size_t first) {
  while (true) {
    float best = -1e10f;
    int best_id = -1;
    size_t at = 0;
    for (size_t k = first; k + 1 < ids.size(); ++k) {
      const std::string pair = t.piece(ids[k]) + t.piece(ids[k + 1]);
      for (int id = 0; id < t.vocab_size(); ++id) {
        if (t.piece(id) == pair) {
          if (t.score(id) > best) {
            best = t.score(id);
            best_id = id;
            at = k;
          }
          break;
        }
      }
    }
    if (best_id < 0) return ids;
    ids[at] = best_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
}

TEST(Llama2cTokenizer, HeapMergesMatchARescanOfEveryPair) {
  const kvlab::Llama2cTokenizer t = small_llama2c();
  std::map<std::string, int> ids;
  for (int id = t.vocab_size() - 1; id >= 0; --id) ids[t.piece(id)] = id;
  uint32_t state = 12345;
  const std::string pool =
      "abc the Hello World 123  \xC3\xA9"
      "aa";
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = 1 + static_cast<int>((state = state * 1664525u + 1013904223u) >> 28);
    for (int i = 0; i < len * 3; ++i) {
      state = state * 1664525u + 1013904223u;
      text += pool[(state >> 16) % pool.size()];
    }
    // Unmerged symbols: BOS, the dummy prefix " ", then one per character (or its bytes).
    std::vector<int> start = {1, id_of(t, " ")};
    for (size_t i = 0; i < text.size();) {
      size_t end = i + 1;
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
      const auto it = ids.find(text.substr(i, end - i));
      if (it != ids.end()) {
        start.push_back(it->second);
      } else {
        for (size_t k = i; k < end; ++k) start.push_back(static_cast<unsigned char>(text[k]) + 3);
      }
      i = end;
    }
    EXPECT_EQ(t.encode(text, true), rescan_merges(t, start, 1)) << text;
  }
}

TEST(Llama2cTokenizer, LoadsFromAFileAndThroughTheFactory) {
  const std::string path = temp_path("tokenizer.bin");
  write_file(path, bin_bytes(bin_vocab({{" ", 0}, {"x", 0}})));
  const std::unique_ptr<kvlab::Tokenizer> t = kvlab::load_tokenizer(path);
  EXPECT_EQ(t->name(), "llama2c");
  EXPECT_EQ(t->vocab_size(), 261);
  EXPECT_EQ(t->encode("x", true), (std::vector<int>{1, 259, 260}));
  // A fixed vocabulary size reads exactly that many tokens.
  EXPECT_EQ(kvlab::Llama2cTokenizer::load(path, 261).vocab_size(), 261);
}

TEST(Llama2cTokenizer, RejectsBadFilesWithNamedErrors) {
  const std::string good = bin_bytes(bin_vocab({{"x", 0}}));
  using T = kvlab::Llama2cTokenizer;
  expect_error([&] { T::from_bytes(""); }, {"max_token_length", "truncated at byte 0"});
  expect_error([&] { T::from_bytes(good.substr(0, good.size() - 1)); },
               {"token 259 bytes", "truncated"});
  expect_error([&] { T::from_bytes(good.substr(0, 4 + 8 * 100 + 2)); }, {"truncated"});
  expect_error([&] { T::from_bytes(bin_bytes(bin_vocab({}), 0)); },
               {"max_token_length", "= 0", "[1, 65536]"});
  expect_error([&] { T::from_bytes(bin_bytes(bin_vocab({}), 1 << 30)); }, {"max_token_length"});
  // A token length past max_token_length, or negative.
  std::string bad_len = good;
  const int32_t huge = 1 << 30;
  std::memcpy(&bad_len[4 + 4], &huge, 4);
  expect_error([&] { T::from_bytes(bad_len); }, {"token 0 length", "1073741824"});
  const int32_t neg = -5;
  std::memcpy(&bad_len[4 + 4], &neg, 4);
  expect_error([&] { T::from_bytes(bad_len); }, {"token 0 length", "-5"});
  std::string nan_score = good;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&nan_score[4], &nan, 4);
  expect_error([&] { T::from_bytes(nan_score); }, {"token 0 score", "finite"});
  expect_error(
      [&] {
        T::from_bytes(bin_bytes({{"<unk>", 0}, {"a", 0}}));
      },
      {"vocab size", "= 2", "259"});
  expect_error([&] { T::from_bytes(good, 300); }, {"truncated"});
  expect_error([&] { T::from_bytes(good, 259); }, {"trailing byte"});
  expect_error([&] { kvlab::load_tokenizer("/nonexistent/tokenizer.bin"); },
               {"--tokenizer", "/nonexistent/tokenizer.bin", "cannot open"});
  const std::unique_ptr<kvlab::Tokenizer> t = std::make_unique<T>(T::from_bytes(good));
  expect_error([&] { t->decode({260}); }, {"token id", "260"});
  expect_error([&] { t->decode_token(-1); }, {"token id", "-1"});
}

// ---- Hugging Face tokenizer.json ---------------------------------------------------------------

kvlab::HfTokenizer hf(const json& j) {
  return kvlab::HfTokenizer::from_json_text(j.dump());
}

int vocab_id(const json& j, const std::string& token) {
  return j["model"]["vocab"][token].get<int>();
}

TEST(HfTokenizer, SentencePieceStyleEncodesWithPrependReplaceAndByteFallback) {
  const json j = sentencepiece_json(false);
  const kvlab::HfTokenizer t = hf(j);
  EXPECT_EQ(t.name(), "hf-bpe-sentencepiece");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  // "Hello the": "▁" + "Hello" ... with merges ranked in order.
  EXPECT_EQ(
      t.encode("Hello the", true),
      (std::vector<int>{1, vocab_id(j, kSp), vocab_id(j, "Hello"), vocab_id(j, kSp + "the")}));
  // "€" is not in the vocabulary: byte fallback, <0xE2> = 3 + 0xE2.
  EXPECT_EQ(t.encode("\xE2\x82\xAC", false),
            (std::vector<int>{vocab_id(j, kSp), 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  // Added tokens are matched verbatim and never split; the text after them is normalized again.
  EXPECT_EQ(t.encode("a</s>b", false), (std::vector<int>{vocab_id(j, kSp), vocab_id(j, "a"), 2,
                                                         vocab_id(j, kSp), vocab_id(j, "b")}));
  EXPECT_EQ(t.decode({1, vocab_id(j, kSp + "the"), 3 + 0x41}), "theA");
}

TEST(HfTokenizer, MergesAsStringsOrPairsGiveTheSameIds) {
  const kvlab::HfTokenizer a = hf(sentencepiece_json(false));
  const kvlab::HfTokenizer b = hf(sentencepiece_json(true));
  EXPECT_EQ(a.encode(kVaried, true), b.encode(kVaried, true));
}

TEST(HfTokenizer, SentencePieceStyleRoundTripsVariedText) {
  const kvlab::HfTokenizer t = hf(sentencepiece_json(false));
  for (bool bos : {true, false}) {
    const std::vector<int> ids = t.encode(kVaried, bos);
    EXPECT_EQ(t.decode(ids), kVaried);
  }
  EXPECT_EQ(t.decode(t.encode(" leading", true)), " leading");
}

TEST(HfTokenizer, ByteLevelEncodesWithTheGpt2Split) {
  const json j = byte_level_json(false);
  const kvlab::HfTokenizer t = hf(j);
  EXPECT_EQ(t.name(), "hf-bpe-bytelevel");
  EXPECT_EQ(t.bos_id(), 269);  // <|endoftext|>, after the 256 bytes and 13 merged tokens
  const std::string G = byte_char(' ');
  // "Hello the 123": Hello | Ġthe | Ġ123 (GPT-2 keeps digit runs together).
  EXPECT_EQ(t.encode("Hello the 123", false),
            (std::vector<int>{vocab_id(j, "Hello"), vocab_id(j, G + "the"), vocab_id(j, G),
                              vocab_id(j, "12"), '3'}));
  // "it's": the contraction is split off and merged.
  EXPECT_EQ(t.encode("it's", false), (std::vector<int>{'i', 't', vocab_id(j, "'s")}));
  // Special token verbatim.
  EXPECT_EQ(t.encode("a<|endoftext|>b", false), (std::vector<int>{'a', 256 + 13, 'b'}));
}

TEST(HfTokenizer, Llama3SplitGroupsDigitsByThree) {
  const json j = byte_level_json(true);
  const kvlab::HfTokenizer t = hf(j);
  // \p{N}{1,3}: "1212" -> 121 | 2 (GPT-2 keeps the run: 12 12).
  EXPECT_EQ(t.encode("1212", false), (std::vector<int>{vocab_id(j, "12"), '1', '2'}));
  EXPECT_EQ(hf(byte_level_json(false)).encode("1212", false),
            (std::vector<int>{vocab_id(j, "12"), vocab_id(j, "12")}));
  // (?i:'s): "'S" is split off as a contraction; GPT-2 is case-sensitive ("'" then "S").
  EXPECT_EQ(t.encode("IT'S", false), (std::vector<int>{'I', 'T', '\'', 'S'}));
}

TEST(HfTokenizer, ByteLevelRoundTripsVariedText) {
  for (bool llama3 : {false, true}) {
    const kvlab::HfTokenizer t = hf(byte_level_json(llama3));
    const std::vector<int> ids = t.encode(kVaried, false);
    EXPECT_EQ(t.decode(ids), kVaried);
    std::string streamed;
    for (int id : ids) streamed += t.decode_token(id);
    EXPECT_EQ(streamed, kVaried);
    const std::string junk("\xFF\x80\xC3 a\xF0\x9F", 7);
    EXPECT_EQ(t.decode(t.encode(junk, false)), junk);
  }
}

TEST(HfTokenizer, FactoryPicksTheJsonLoader) {
  const std::string dir = temp_path("hfdir");
  std::filesystem::create_directories(dir);
  write_file(dir + "/tokenizer.json", byte_level_json(false).dump(1));
  EXPECT_EQ(kvlab::load_tokenizer(dir + "/tokenizer.json")->name(), "hf-bpe-bytelevel");
  EXPECT_EQ(kvlab::load_tokenizer(dir)->name(), "hf-bpe-bytelevel");
  const std::string empty = temp_path("empty");
  std::filesystem::create_directories(empty);
  expect_error([&] { kvlab::load_tokenizer(empty); }, {"--tokenizer", "no tokenizer.json"});
}

TEST(HfTokenizer, RejectsOtherModelTypesAndBadFilesWithNamedErrors) {
  using T = kvlab::HfTokenizer;
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json j = sentencepiece_json(false);
    j["model"]["type"] = type;
    expect_error([&] { T::from_json_text(j.dump(), "x/tokenizer.json"); },
                 {"x/tokenizer.json", "model.type", type, "only BPE"});
  }
  expect_error([&] { T::from_json_text("{\"model\": "); }, {"tokenizer.json", "not valid JSON"});
  expect_error([&] { T::from_json_text("[]"); }, {"top level", "must be a JSON object"});
  expect_error([&] { T::from_json_text("{}"); }, {"model", "absent"});
  json j = sentencepiece_json(false);
  j["model"]["merges"].push_back("zz qq");
  expect_error([&] { hf(j); }, {"model.merges[11]", "\"zz\"", "not in model.vocab"});
  j = sentencepiece_json(false);
  j["model"]["merges"].push_back("ab");
  expect_error([&] { hf(j); }, {"model.merges[11]", "two tokens"});
  j = sentencepiece_json(false);
  j["model"]["merges"].push_back(json::array({"a", 3}));
  expect_error([&] { hf(j); }, {"model.merges[11]"});
  j = sentencepiece_json(false);
  j["model"]["vocab"]["zz"] = -3;
  expect_error([&] { hf(j); }, {"model.vocab[\"zz\"]", "-3"});
  j = sentencepiece_json(false);
  j["model"]["vocab"]["zz"] = 5;
  expect_error([&] { hf(j); }, {"model.vocab", "id 5", "two tokens"});
  j = sentencepiece_json(false);
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error([&] { hf(j); }, {"normalizer.type", "BertNormalizer"});
  j = byte_level_json(true);
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  expect_error([&] { hf(j); }, {"pre_tokenizer.pretokenizers[0].pattern", "GPT-2 and Llama-3"});
  j = byte_level_json(false);
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error([&] { hf(j); }, {"decoder.type", "WordPiece"});
  j = byte_level_json(false);
  j["added_tokens"][0]["id"] = 5;
  expect_error([&] { hf(j); }, {"added_tokens[0].id", "5", "already the id"});
  j = byte_level_json(false);
  j["added_tokens"].clear();
  expect_error([&] { hf(j).encode("x", true); }, {"BOS token", "no BOS"});
  const T t = hf(sentencepiece_json(false));
  expect_error([&] { t.decode({t.vocab_size()}); }, {"token id"});
}

}  // namespace

// One rule to show token bytes: control bytes as \xNN, newlines and tabs kept (or escaped on one
// line), UTF-8 untouched.
TEST(PrintableText, ControlBytesEscapedNewlinesKeptOrEscaped) {
  const std::string s = std::string("a\nb\tc") + '\x01' + '\x7f' + "\xc3\xa9";
  EXPECT_EQ(kvlab::printable_text(s), "a\nb\tc\\x01\\x7f\xc3\xa9");
  EXPECT_EQ(kvlab::printable_text(s, true), "a\\nb\\tc\\x01\\x7f\xc3\xa9");
  EXPECT_EQ(kvlab::printable_text(""), "");
  EXPECT_EQ(kvlab::printable_text(std::string_view("\0", 1)), "\\x00");
}
