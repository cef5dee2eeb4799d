// The parsed tokenizer.json behind HfTokenizer (core/tokenizers/hf.hpp): filled by hf_json.cpp,
// used by hf.cpp to encode and decode. Internal to core/tokenizers/hf*.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/hf_pretokenizer.hpp"

namespace kvlab {

struct HfTokenizer::State {
  struct Added {
    std::string content;
    int id = 0;
    bool special = false, normalized = false, lstrip = false, rstrip = false;
  };
  struct Norm {
    enum Kind { Prepend, Replace } kind;
    std::string a, b;
  };
  struct Pre {
    enum Kind { ByteLevel, Metaspace, Split, Digits } kind;
    bool add_prefix_space = false, use_regex = true;       // ByteLevel
    std::string replacement;                               // Metaspace
    enum Scheme { Always, First, Never } scheme = Always;  // Metaspace
    bool split = true;                                     // Metaspace
    hf::Pattern pattern = hf::Pattern::Gpt2;               // Split, ByteLevel's regex
    bool individual_digits = false;                        // Digits
  };
  struct Dec {
    enum Kind { ByteLevel, Replace, ByteFallback, Strip, Metaspace } kind;
    std::string a, b;  // Replace: from, to; Strip: content; Metaspace: replacement
    int start = 0;     // Strip: characters stripped at the start
  };

  std::string source;
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> tokens;  // id -> token text (added tokens included)
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (a, b) -> (rank, merged id)
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  int unk_id = -1;
  std::vector<Added> added;
  std::unordered_map<int, size_t> added_by_id;
  std::vector<Norm> normalizers;
  std::vector<Pre> pre_tokenizers;
  std::vector<Dec> decoders;
  bool byte_level = false;
  int bos = -1, eos = -1;

  static uint64_t key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  [[noreturn]] void bad(const std::string& field, const std::string& value,
                        const std::string& allowed) const {
    fail(source + ": " + field, value, allowed);
  }
};

}  // namespace kvlab
