// The byte tokenizer (ids 0..255 = bytes, 256 = BOS, 257 = EOS) and --tokens parsing.
#include <gtest/gtest.h>

#include <memory>

#include "core/error.hpp"
#include "core/tokenizers/tokenizer.hpp"

namespace {

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

}  // namespace

TEST(Tokenizer, ByteTokenizerFacts) {
  const std::unique_ptr<kvlab::Tokenizer> t = std::make_unique<kvlab::ByteTokenizer>();
  EXPECT_EQ(t->vocab_size(), 258);
  EXPECT_EQ(t->bos_id(), 256);
  EXPECT_EQ(t->eos_id(), 257);
  EXPECT_EQ(t->name(), "byte");
}

TEST(Tokenizer, EncodesUtf8BytesWithOptionalBos) {
  const kvlab::ByteTokenizer t;
  EXPECT_EQ(t.encode("Hi é", true), (std::vector<int>{256, 72, 105, 32, 0xc3, 0xa9}));
  EXPECT_EQ(t.encode("Hi é", false), (std::vector<int>{72, 105, 32, 0xc3, 0xa9}));
  EXPECT_EQ(t.encode("", true), std::vector<int>{256});
  EXPECT_TRUE(t.encode("", false).empty());
  EXPECT_EQ(t.encode(std::string("a\0b", 3), false), (std::vector<int>{97, 0, 98}));
}

TEST(Tokenizer, DecodeRoundTripsEveryByteAndSkipsBosEos) {
  const kvlab::ByteTokenizer t;
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(t.decode(t.encode(all, true)), all);
  EXPECT_EQ(t.decode({256, 104, 105, 257}), "hi");
  EXPECT_EQ(t.decode({257, 256}), "");
  EXPECT_EQ(t.decode_token(65), "A");
  EXPECT_EQ(t.decode_token(0), std::string(1, '\0'));
  EXPECT_EQ(t.decode_token(255), std::string(1, '\xff'));
  EXPECT_EQ(t.decode_token(256), "");
  EXPECT_EQ(t.decode_token(257), "");
  // Streaming a multi-byte character token by token gives the same bytes.
  std::string streamed;
  for (int id : t.encode("né", true)) streamed += t.decode_token(id);
  EXPECT_EQ(streamed, "né");
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const kvlab::ByteTokenizer t;
  expect_error([&] { t.decode_token(258); }, {"token id = 258", "[0, 258)"});
  expect_error([&] { t.decode_token(-1); }, {"token id = -1", "[0, 258)"});
  expect_error([&] { t.decode({104, 1000}); }, {"token id = 1000"});
}

TEST(Tokenizer, ParseTokenList) {
  EXPECT_EQ(kvlab::parse_token_list("1,2,3", 258), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(kvlab::parse_token_list(" 256, 0 ,257 ", 258), (std::vector<int>{256, 0, 257}));
  EXPECT_EQ(kvlab::parse_token_list("7", 8), std::vector<int>{7});
}

TEST(Tokenizer, ParseTokenListNamesTheBadItem) {
  auto parse = [](const char* text, int vocab) {
    return [=] { kvlab::parse_token_list(text, vocab); };
  };
  expect_error(parse("1,2,258", 258), {"--tokens = 258 is invalid", "[0, 258)"});
  expect_error(parse("-1", 258), {"--tokens = -1 is invalid", "[0, 258)"});
  expect_error(parse("5,99999999999999999999999", 100),
               {"--tokens = 99999999999999999999999", "[0, 100)"});
  expect_error(parse("1,a,3", 258),
               {"--tokens = a is invalid",
                "item 2 is not an integer; --tokens takes comma-separated token ids"});
  expect_error(parse("1.5", 258), {"--tokens = 1.5", "not an integer"});
  expect_error(parse("0x10", 258), {"--tokens = 0x10", "not an integer"});
  expect_error(parse("1 2", 258), {"--tokens = 1 2", "item 1 is not an integer"});
  expect_error(parse("1,,2", 258), {"--tokens = \"1,,2\"", "item 2 is empty"});
  expect_error(parse("1,2,", 258), {"--tokens = \"1,2,\"", "item 3 is empty"});
  expect_error(parse("", 258),
               {"--tokens = \"\" is invalid: the list is empty", "comma-separated token ids"});
  expect_error(parse("  ", 258), {"--tokens", "comma-separated"});
}
