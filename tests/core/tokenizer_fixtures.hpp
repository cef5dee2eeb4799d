// Tiny tokenizer files for tests: a llama2.c tokenizer.bin and Hugging Face tokenizer.json files
// (SentencePiece-style as Llama 2's, byte-level as GPT-2's). The same vocabularies as
// tests/core/test_tokenizers.cpp, which works their encodings out by hand; tests elsewhere (the
// passkey task in tests/reference/test_tasks.cpp) write these to a file and load them through
// kvlab::load_tokenizer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvlab::test {

using nlohmann::json;

// ---- llama2.c tokenizer.bin ------------------------------------------------------------------

struct BinToken {
  std::string piece;
  float score;
};

inline std::string bin_bytes(const std::vector<BinToken>& tokens, int32_t max_len = -1) {
  if (max_len < 0) {
    max_len = 1;
    for (const BinToken& t : tokens) max_len = std::max<int32_t>(max_len, int32_t(t.piece.size()));
  }
  std::string out(reinterpret_cast<const char*>(&max_len), 4);
  for (const BinToken& t : tokens) {
    const int32_t len = static_cast<int32_t>(t.piece.size());
    out.append(reinterpret_cast<const char*>(&t.score), 4);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += t.piece;
  }
  return out;
}

// <unk>, BOS, EOS, the 256 byte tokens, then `extra` (ids from 259).
inline std::vector<BinToken> bin_vocab(const std::vector<BinToken>& extra) {
  std::vector<BinToken> v = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    v.push_back({name, 0});
  }
  v.insert(v.end(), extra.begin(), extra.end());
  return v;
}

// The bytes of a small tokenizer.bin: the byte tokens, printable ASCII and a few merges (" the",
// "Hello", " World", "123", "  ", ...), so that real text merges a lot.
inline std::string small_llama2c_bytes() {
  std::vector<BinToken> extra = {{" ", -1}, {"a", -2},  {"b", -2},  {"c", -2},       {"ab", -1},
                                 {"bc", 0}, {"aa", -1}, {" a", -3}, {"\xC3\xA9", -5}};
  // Every printable ASCII character and a few merges, so that real text merges a lot.
  for (char c = '!'; c <= '~'; ++c) {
    if (c != 'a' && c != 'b' && c != 'c') extra.push_back({std::string(1, c), -4});
  }
  for (const char* m :
       {" t",  "th",   " th",   "he", " the", "in",    "ing",    "er", " W",  "ll",
        "llo", "ello", "Hello", "or", "orl",  "World", " World", "12", "123", "  "}) {
    extra.push_back({m, -static_cast<float>(std::strlen(m))});
  }
  return bin_bytes(bin_vocab(extra));
}

// ---- Hugging Face tokenizer.json ---------------------------------------------------------------

inline const std::string kSp = "\xE2\x96\x81";  // "▁"

// A SentencePiece-style (Llama 2) tokenizer.json: <unk>, <s>, </s>, <0x00>..<0xFF>, then
// characters and merges of `words`.
inline json sentencepiece_json(bool pair_merges) {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  json merges = json::array();
  const auto add = [&](const std::string& tok) {
    if (!vocab.contains(tok)) vocab[tok] = static_cast<int>(vocab.size());
  };
  const auto merge = [&](const std::string& a, const std::string& b) {
    add(a);
    add(b);
    add(a + b);
    merges.push_back(pair_merges ? json::array({a, b}) : json(a + " " + b));
  };
  add(kSp);
  for (char c = '!'; c <= '~'; ++c) add(std::string(1, c));
  add("\xC3\xA9");
  merge(kSp, "t");
  merge("h", "e");
  merge(kSp + "t", "he");
  merge("l", "l");
  merge("e", "ll");
  merge("H", "ell");
  merge("Hell", "o");
  merge(kSp, "W");
  merge("o", "r");
  merge(kSp, kSp);
  merge("1", "2");
  json j = {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                    {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                    {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", kSp}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}})}}},
      {"pre_tokenizer", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         json::array({{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges}}}};
  return j;
}

// GPT-2's byte-to-unicode map (the test's own copy).
inline std::string byte_char(int b) {
  const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  int cp = b;
  if (!keep) {
    int k = 0;
    for (int x = 0; x < b; ++x) {
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++k;
    }
    cp = 256 + k;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

inline json byte_level_json(bool llama3_split) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json merges = json::array();
  const std::string G = byte_char(' ');  // "Ġ"
  const auto merge = [&](const std::string& a, const std::string& b) {
    if (!vocab.contains(a + b)) vocab[a + b] = static_cast<int>(vocab.size());
    merges.push_back(a + " " + b);
  };
  merge(G, "t");
  merge("h", "e");
  merge(G + "t", "he");
  merge("l", "l");
  merge("e", "ll");
  merge("H", "ell");
  merge("Hell", "o");
  merge(G, "W");
  merge("o", "r");
  merge("1", "2");
  merge(G, G);
  merge("'", "s");
  merge(byte_char(0xC3), byte_char(0xA9));  // é
  json pre = {{"type", "ByteLevel"},
              {"add_prefix_space", false},
              {"trim_offsets", true},
              {"use_regex", true}};
  if (llama3_split) {
    pre = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern",
                        {{"Regex",
                          "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                          "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", true},
                       {"use_regex", false}}})}};
  }
  const int eot = static_cast<int>(vocab.size());
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", eot},
                                         {"content", "<|endoftext|>"},
                                         {"special", true},
                                         {"normalized", false}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"vocab", vocab},
            {"merges", merges}}}};
}

}  // namespace kvlab::test
