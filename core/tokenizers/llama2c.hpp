// The llama2.c tokenizer (`tokenizer.bin`, as written by llama2.c's tokenizer.py):
//   int32   max_token_length
//   then per token, vocab_size times (the file itself does not store vocab_size):
//     float32 score, int32 len, len bytes (the token's text, not NUL-terminated)
// all little-endian. Id 0 is <unk>, 1 is BOS, 2 is EOS, ids 3..258 are the byte tokens <0x00>..
// <0xFF>. Encoding follows llama2.c's run.c: BOS (optional), a dummy-prefix " " token when the
// text is non-empty, one token per UTF-8 character found in the vocabulary (else one byte token
// per byte, id = byte + 3), then the adjacent pair whose concatenation is in the vocabulary with
// the highest score is merged (the leftmost on ties) until no pair merges.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizers/tokenizer.hpp"

namespace kvlab {

class Llama2cTokenizer final : public Tokenizer {
 public:
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Parses the bytes of a tokenizer.bin. `vocab_size` < 0 reads tokens to the end of the data;
  // otherwise exactly that many are read (trailing bytes are then an error). Throws kvlab::Error
  // naming `source`, the field and the value for a truncated file, a max_token_length outside
  // [1, 65536], a token length outside [0, max_token_length], a non-finite score, or fewer than
  // 259 tokens (unk, BOS, EOS and the 256 byte tokens).
  static Llama2cTokenizer from_bytes(std::string_view bytes, int vocab_size = -1,
                                     const std::string& source = "tokenizer.bin");
  // Reads `path` and parses it as above.
  static Llama2cTokenizer load(const std::string& path, int vocab_size = -1);

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  // Strips the leading space of the first piece after BOS (and of the first piece of the list),
  // as run.c does for the dummy prefix, so decode(encode(x, b)) == x. <0xXX> pieces are bytes.
  std::string decode(const std::vector<int>& ids) const override;
  // The piece alone (no leading-space stripping): <0xXX> gives the byte, BOS/EOS give "".
  std::string decode_token(int id) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }
  std::string name() const override { return "llama2c"; }

  int max_token_length() const { return max_token_length_; }
  const std::string& piece(int id) const;
  float score(int id) const;

 private:
  int lookup(std::string_view s) const;  // -1 when absent

  int max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> index_;  // piece -> lowest id with that piece
};

}  // namespace kvlab
