// Tokenizers: text <-> token ids. The byte tokenizer is the default; others (llama2.c, Hugging
// Face) implement the same interface.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, with bos_id() first when `add_bos`.
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // The text of `ids`; BOS and EOS produce no text. Throws kvlab::Error for an id outside
  // [0, vocab_size()).
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  // The bytes one token stands for ("" for BOS and EOS), for streaming output. A byte-level
  // token may be part of a multi-byte UTF-8 character. Throws kvlab::Error when out of range.
  virtual std::string decode_token(int id) const = 0;

  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual std::string name() const = 0;  // e.g. "byte"
};

// Ids 0..255 are the bytes of UTF-8 text, 256 is BOS, 257 is EOS; vocab_size() == 258.
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int kBos = 256;
  static constexpr int kEos = 257;
  static constexpr int kVocabSize = 258;

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  std::string decode(const std::vector<int>& ids) const override;
  std::string decode_token(int id) const override;
  int vocab_size() const override { return kVocabSize; }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }
  std::string name() const override { return "byte"; }
};

// Parses "1,2,3" (spaces around ids allowed) into token ids in [0, vocab_size). Throws
// kvlab::Error with field "--tokens" for an empty list, an empty item, an item that is not an
// integer, or an id outside the range (the value is the offending item).
std::vector<int> parse_token_list(std::string_view text, int vocab_size);

// Text made safe to show: control bytes (below 0x20, and 0x7f) as \xNN. Newlines and tabs are
// kept, or with `one_line` written as \n and \t. Other bytes (UTF-8 included) pass unchanged.
// One rule for every front end (the CLI's generate and eval, the visualizer's text panels).
std::string printable_text(std::string_view bytes, bool one_line = false);

// Opens a tokenizer file: a Hugging Face tokenizer.json (HfTokenizer, core/tokenizers/hf.hpp)
// when the name ends in ".json" (or, unless it ends in ".bin", the content starts with '{'),
// otherwise a llama2.c tokenizer.bin (Llama2cTokenizer, core/tokenizers/llama2c.hpp). A directory
// is searched for tokenizer.json, then tokenizer.bin. Throws kvlab::Error (field "--tokenizer")
// for a missing file or a directory with neither, and the loaders' named errors for bad contents.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace kvlab
