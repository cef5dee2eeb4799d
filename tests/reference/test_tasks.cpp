// The tasks' examples (techniques.md §8): MQAR from a seed that means the same example on every
// machine (golden values), the generator under it, and passkey prompts encoded as one text.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "core/error.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/rng.hpp"
#include "reference/tasks.hpp"
#include "tests/core/tokenizer_fixtures.hpp"

using namespace kvlab;
using namespace kvlab::ref;

TEST(Rng, SplitMix64Reference) {
  // The published first output of SplitMix64 from seed 0, and the first four from seed 42.
  EXPECT_EQ(Rng(0).next(), 0xE220A8397B1DCDAFull);
  Rng r(42);
  for (std::uint64_t want : {13679457532755275413ull, 2949826092126892291ull,
                             5139283748462763858ull, 6349198060258255764ull}) {
    EXPECT_EQ(r.next(), want);
  }
}

TEST(Rng, DrawsAreGoldenAndInRange) {
  Rng r(1);
  std::vector<int> below;
  for (int i = 0; i < 8; ++i) below.push_back(static_cast<int>(r.below(10)));
  EXPECT_EQ(below, (std::vector<int>{5, 9, 0, 5, 1, 8, 5, 3}));
  std::vector<int> v = {0, 1, 2, 3, 4, 5, 6, 7};
  r.shuffle(v);
  EXPECT_EQ(v, (std::vector<int>{2, 5, 1, 6, 7, 3, 4, 0}));
  std::vector<int> drawn;
  for (int i = 0; i < 8; ++i) drawn.push_back(r.draw({0.0, 1.0, 0.0, 3.0}));
  EXPECT_EQ(drawn, (std::vector<int>{1, 3, 3, 3, 3, 1, 1, 3}));
  // Ranges: below(n) in [0, n) (n = 1 and n = 2^63 + 1, where half the draws are rejected);
  // zero weights never drawn; the weights' proportions hold.
  Rng q(9);
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4000; ++i) {
    EXPECT_EQ(q.below(1), 0u);
    EXPECT_LT(q.below((1ull << 63) + 1), (1ull << 63) + 1);
    ++counts[q.draw({0.0, 1.0, 0.0, 3.0})];
  }
  EXPECT_EQ(counts[0] + counts[2], 0);
  EXPECT_NEAR(counts[3] / 4000.0, 0.75, 0.03);
}

TEST(Tasks, MqarFromASeedIsTheSameEverywhere) {
  // Golden: vocab 64 gives keys from [8, 36) and values from [36, 64); 5 pairs, filler 4 up to 20
  // tokens; 4 queries, recent pairs more often, each key once, its value scored.
  const TaskExample ex = make_mqar(20, 5, 4, 64, 7);
  EXPECT_EQ(ex.context, (std::vector<int>{25, 39, 14, 55, 34, 49, 21, 40, 28, 60,  //
                                          4,  4,  4,  4,  4,  4,  4,  4,  4,  4}));
  EXPECT_EQ(ex.query, (std::vector<int>{21, 40, 34, 49, 28, 60, 14, 55}));
  EXPECT_EQ(ex.answer, (std::vector<int>{40, -1, 49, -1, 60, -1, 55, -1}));
  // Any seed: distinct keys, values in their range, every query a key followed by its value.
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    const TaskExample e = make_mqar(64, 16, 8, 300, seed);
    ASSERT_EQ(e.context.size(), 64u);
    std::set<int> keys;
    for (int i = 0; i < 16; ++i) {
      const int k = e.context[2 * i], v = e.context[2 * i + 1];
      EXPECT_TRUE(k >= 8 && k < 8 + 146) << k;
      EXPECT_TRUE(v >= 8 + 146 && v < 8 + 292) << v;
      keys.insert(k);
    }
    EXPECT_EQ(keys.size(), 16u);
    std::set<int> asked;
    for (std::size_t q = 0; q < e.query.size(); q += 2) {
      const auto at = std::find(e.context.begin(), e.context.begin() + 32, e.query[q]);
      ASSERT_NE(at, e.context.begin() + 32);
      EXPECT_EQ(e.answer[q], *(at + 1));
      EXPECT_EQ(e.query[q + 1], *(at + 1));
      EXPECT_EQ(e.answer[q + 1], -1);
      asked.insert(e.query[q]);
    }
    EXPECT_EQ(asked.size(), 8u);
  }
  EXPECT_THROW(make_mqar(20, 5, 6, 64, 7), Error);  // more queries than pairs
}

namespace {

// The tokenizers a passkey prompt is built in: bytes, a llama2.c tokenizer.bin and Hugging Face
// tokenizer.json files (SentencePiece-style as Llama 2's, byte-level as GPT-2's and Llama 3's),
// written to files and opened as kvlab opens a model's tokenizer.
std::vector<std::unique_ptr<Tokenizer>> passkey_tokenizers() {
  const auto dir =
      std::filesystem::temp_directory_path() / ("kvlab-test-tasks-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  std::vector<std::unique_ptr<Tokenizer>> t;
  t.push_back(std::make_unique<ByteTokenizer>());
  t.push_back(load_tokenizer(write("tokenizer.bin", test::small_llama2c_bytes())));
  t.push_back(load_tokenizer(write("sp.json", test::sentencepiece_json(false).dump())));
  t.push_back(load_tokenizer(write("gpt2.json", test::byte_level_json(false).dump())));
  t.push_back(load_tokenizer(write("llama3.json", test::byte_level_json(true).dump())));
  std::filesystem::remove_all(dir);
  return t;
}

}  // namespace

TEST(Tasks, PasskeyPromptIsTheWholeTextEncodedOnce) {
  for (const auto& tok : passkey_tokenizers()) {
    for (int length : {64, 97, 300}) {
      for (std::uint64_t seed : {1, 2, 3, 11}) {
        const TaskExample ex = make_passkey(length, seed, *tok);
        const std::string at = tok->name() + " length " + std::to_string(length) + " seed " +
                               std::to_string(seed) + ": " + ex.text;
        // The text a user would write: no leading or doubled space, the needle, the question.
        const std::string tail = " What is the pass key? The pass key is ";
        const auto q = ex.text.rfind(tail);
        ASSERT_NE(q, std::string::npos) << at;
        const std::string key = ex.text.substr(q + tail.size());
        ASSERT_EQ(key.size(), 5u) << at;
        EXPECT_NE(
            ex.text.find("The pass key is " + key + ". Remember it. " + key + " is the pass key."),
            std::string::npos)
            << at;
        EXPECT_EQ(ex.text.find("  "), std::string::npos) << at;
        EXPECT_EQ(ex.text.rfind("The ", 0), 0u) << at;
        // The prompt (context + query, then the last token of the key) is encode(text), BOS first.
        std::vector<int> all = ex.context;
        all.insert(all.end(), ex.query.begin(), ex.query.end());
        ASSERT_EQ(ex.answer.size(), ex.query.size()) << at;
        all.push_back(ex.answer.back());
        EXPECT_EQ(all, tok->encode(ex.text, true)) << at;
        EXPECT_EQ(tok->decode(all), ex.text) << at;
        EXPECT_EQ(ex.context.front(), tok->bos_id());
        EXPECT_LE(static_cast<int>(ex.context.size()), length) << at;
        EXPECT_GE(static_cast<int>(ex.context.size()), length - 3) << at;
        // The scored tokens are the last ones, each the token after the one fed, and they spell
        // the key: where make_passkey says the answer is.
        std::size_t first = ex.answer.size();
        while (first > 0 && ex.answer[first - 1] >= 0) --first;
        ASSERT_LT(first, ex.answer.size()) << at;
        std::string spelled;
        for (std::size_t i = 0; i < ex.answer.size(); ++i) {
          if (i < first) {
            EXPECT_EQ(ex.answer[i], -1) << at;
            continue;
          }
          EXPECT_EQ(ex.answer[i], all[ex.context.size() + i + 1]) << at;
          spelled += tok->decode_token(ex.answer[i]);
        }
        if (!spelled.empty() && spelled[0] == ' ') spelled.erase(0, 1);
        EXPECT_EQ(spelled, key) << at;
        // The token before the first scored one ends the question (or is the space before K).
        const std::string before = tok->decode_token(all[ex.context.size() + first]);
        EXPECT_TRUE(before == " " || before.back() == 's') << at << " / " << before;
      }
    }
  }
}

TEST(Tasks, PasskeyNamesALengthTooShortForTheNeedle) {
  ByteTokenizer bytes;
  try {
    make_passkey(58, 1, bytes);
    FAIL() << "58 tokens cannot hold BOS and the 58-byte needle";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--length = 58"), std::string::npos) << e.what();
  }
  // BOS, the needle (58 bytes) and filler: `length` bytes, or one less where the cut would end
  // the filler on a space (dropped, so that the text has no doubled space).
  EXPECT_EQ(make_passkey(59, 1, bytes).context.size(), 59u);
  for (int length = 60; length < 160; ++length) {
    const auto n = static_cast<int>(make_passkey(length, 1, bytes).context.size());
    EXPECT_TRUE(n == length || n == length - 1) << length << ": " << n;
  }
}
