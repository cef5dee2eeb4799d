// The Hugging Face pre-tokenizers' splitting, hand-written (no regex engine): the GPT-2 and
// Llama-3 split regexes, and GPT-2's byte-to-unicode map of the ByteLevel pre-tokenizer and
// decoder. Internal to core/tokenizers/hf*.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvlab::hf {

// GPT-2:    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama 3:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Alternatives are tried in order at each position (first match wins, as in the regex engines).
enum class Pattern { Gpt2, Llama3 };

// The patterns as tokenizer.json spells them (a Split pre-tokenizer's "Regex").
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// `s` cut into the pattern's matches (every byte belongs to one piece).
std::vector<std::string> regex_split(const std::string& s, Pattern p);

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256 + k.
struct ByteMap {
  std::string to_char[256];
  std::unordered_map<uint32_t, unsigned char> from_cp;
  ByteMap();
};
const ByteMap& byte_map();

}  // namespace kvlab::hf
