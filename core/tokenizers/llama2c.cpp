#include "core/tokenizers/llama2c.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "core/tokenizers/bpe_merge.hpp"

namespace kvlab {
namespace {

constexpr int kByteOffset = 3;      // id of <0x00>
constexpr int kMinVocab = 3 + 256;  // unk, BOS, EOS, bytes
constexpr int kMaxTokenLength = 65536;

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  bool at_end() const { return pos_ == bytes_.size(); }
  size_t pos() const { return pos_; }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view take(size_t n, const std::string& what) {
    need(n, what);
    std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  void need(size_t n, const std::string& what) const {
    if (bytes_.size() - pos_ < n) {
      fail(source_ + ": " + what, "truncated at byte " + std::to_string(pos_),
           "needs " + std::to_string(n) + " more byte(s) but the file has " +
               std::to_string(bytes_.size() - pos_) + " (a truncated tokenizer.bin?)");
    }
  }
  std::string_view bytes_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

Llama2cTokenizer Llama2cTokenizer::from_bytes(std::string_view bytes, int vocab_size,
                                              const std::string& source) {
  Reader r(bytes, source);
  Llama2cTokenizer t;
  t.max_token_length_ = r.read<int32_t>("max_token_length");
  if (t.max_token_length_ < 1 || t.max_token_length_ > kMaxTokenLength) {
    fail(source + ": max_token_length", std::to_string(t.max_token_length_),
         "must be in [1, " + std::to_string(kMaxTokenLength) + "]");
  }
  for (int id = 0; vocab_size < 0 ? !r.at_end() : id < vocab_size; ++id) {
    const std::string at = "token " + std::to_string(id);
    const float score = r.read<float>(at + " score");
    if (!std::isfinite(score)) {
      fail(source + ": " + at + " score", std::to_string(score), "must be finite");
    }
    const int32_t len = r.read<int32_t>(at + " length");
    if (len < 0 || len > t.max_token_length_) {
      fail(source + ": " + at + " length", std::to_string(len),
           "must be in [0, max_token_length = " + std::to_string(t.max_token_length_) + "]");
    }
    const std::string piece(r.take(static_cast<size_t>(len), at + " bytes"));
    t.index_.emplace(piece, id);  // keeps the lowest id of a repeated piece
    t.pieces_.push_back(piece);
    t.scores_.push_back(score);
  }
  if (!r.at_end()) {
    fail(source + ": file size", std::to_string(bytes.size()) + " bytes",
         "has " + std::to_string(bytes.size() - r.pos()) + " trailing byte(s) after " +
             std::to_string(vocab_size) + " tokens");
  }
  if (t.vocab_size() < kMinVocab) {
    fail(source + ": vocab size", std::to_string(t.vocab_size()),
         "must be at least 259 (<unk>, BOS, EOS and the 256 byte tokens <0x00>..<0xFF>)");
  }
  return t;
}

Llama2cTokenizer Llama2cTokenizer::load(const std::string& path, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--tokenizer", path, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_bytes(ss.str(), vocab_size, path);
}

const std::string& Llama2cTokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size()) {
    fail("token id", std::to_string(id), "must be in [0, " + std::to_string(vocab_size()) + ")");
  }
  return pieces_[static_cast<size_t>(id)];
}

float Llama2cTokenizer::score(int id) const {
  (void)piece(id);
  return scores_[static_cast<size_t>(id)];
}

int Llama2cTokenizer::lookup(std::string_view s) const {
  const auto it = index_.find(std::string(s));
  return it == index_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (!text.empty()) {
    const int space = lookup(" ");
    if (space >= 0) ids.push_back(space);
  }
  // One token per UTF-8 character: a lead (non-continuation) byte and up to 3 continuation bytes.
  size_t i = 0;
  while (i < text.size()) {
    size_t end = i + 1;
    while (end < text.size() && end - i < 4 &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
      ++end;
    }
    const std::string_view ch = text.substr(i, end - i);
    const int id = lookup(ch);
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (char c : ch) ids.push_back(static_cast<unsigned char>(c) + kByteOffset);
    }
    i = end;
  }
  // Merge the best-scoring adjacent pair (the leftmost on ties; run.c ignores scores <= -1e10)
  // until none is in the vocabulary: the shared BPE loop (core/tokenizers/bpe_merge.hpp), which
  // is O(n log n) rather than run.c's rescan of every pair after each merge. BOS never merges.
  std::string pair;
  std::vector<int> out = bpe_merge(std::move(ids), [&](int left, int right) {
    pair = pieces_[static_cast<size_t>(left)];
    pair += pieces_[static_cast<size_t>(right)];
    const int id = lookup(pair);
    std::optional<BpeMerge> m;
    if (id >= 0 && scores_[static_cast<size_t>(id)] > -1e10f) {
      // Lower priorities merge first: the negated score (exact in double).
      m = BpeMerge{-static_cast<double>(scores_[static_cast<size_t>(id)]), id};
    }
    return m;
  });
  if (add_bos) out.insert(out.begin(), kBos);
  return out;
}

std::string Llama2cTokenizer::decode_token(int id) const {
  const std::string& p = piece(id);
  if (id == kBos || id == kEos) return {};
  const int byte = parse_byte_piece(p);
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return p;
}

std::string Llama2cTokenizer::decode(const std::vector<int>& ids) const {
  std::string text;
  bool at_start = true;  // at the list's start or right after BOS
  for (int id : ids) {
    std::string s = decode_token(id);
    if (id == kBos) {
      at_start = true;
      continue;
    }
    if (id == kEos) continue;
    if (at_start && !s.empty() && s[0] == ' ' && parse_byte_piece(piece(id)) < 0) s.erase(0, 1);
    at_start = false;
    text += s;
  }
  return text;
}

}  // namespace kvlab
