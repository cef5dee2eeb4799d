// Hugging Face `tokenizer.json` with a BPE model, in the two styles Llama-family checkpoints use:
//  - byte-level (GPT-2, Llama 3, SmolLM): the ByteLevel pre-tokenizer maps every byte to a
//    printable character (GPT-2's byte-to-unicode table) after splitting the text with the GPT-2
//    regex, or with a Split pre-tokenizer whose pattern is the GPT-2 or Llama-3 regex;
//  - SentencePiece-style (Llama 2, TinyLlama): a normalizer that prepends "▁" and replaces " "
//    with "▁" (or the Metaspace pre-tokenizer), `<0xNN>` byte fallback, ranked merges.
// Merges may be given as ["a b", ...] or as [["a", "b"], ...]. added_tokens are matched verbatim
// (leftmost-longest) before normalization (normalized: false) or after it (normalized: true), and
// are never split. Supported components (anything else is a named error rather than a silent
// mis-encoding):
//   normalizer:    null, Sequence, Prepend, Replace (String pattern), NFC/NFKC (treated as the
//                  identity: exact for text that is already in that form, as most text is)
//   pre_tokenizer: null, Sequence, ByteLevel, Metaspace, Split (Isolated; the GPT-2 or Llama-3
//                  pattern only), Digits
//   decoder:       null, Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip
// The regexes' \p{L}, \p{N} and \s use Unicode 14 general categories (tables generated from
// Python's unicodedata) and the White_Space set. Decoding writes byte-fallback bytes through
// unchanged (Hugging Face replaces invalid UTF-8 with U+FFFD). `single_word` on added tokens is
// not supported (ignored).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizers/tokenizer.hpp"

namespace kvlab {

class HfTokenizer final : public Tokenizer {
 public:
  // Parses tokenizer.json text. Throws kvlab::Error naming `source` and the field for invalid
  // JSON, a model type other than BPE (WordPiece, Unigram, WordLevel), an unsupported component,
  // a malformed vocab, merge or added token, or a merge whose parts or result are not in the
  // vocabulary.
  static HfTokenizer from_json_text(std::string_view text,
                                    const std::string& source = "tokenizer.json");
  static HfTokenizer load(const std::string& path);

  // Ids as tokenizers' `encode(text, add_special_tokens=False)`, with bos_id() first when
  // `add_bos` (a kvlab::Error when the tokenizer has no BOS token).
  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  // Concatenated decode_token pieces; the decoder's leading strip (Strip, Metaspace prepend) is
  // applied at the list's start and after BOS. BOS and EOS produce no text; other added tokens
  // produce their content.
  std::string decode(const std::vector<int>& ids) const override;
  std::string decode_token(int id) const override;
  int vocab_size() const override;
  // BOS: the first special token of a TemplateProcessing post-processor, else an added token
  // named <s>, <|begin_of_text|>, <bos> or <|endoftext|>; -1 when there is none. EOS likewise
  // (</s>, <|end_of_text|>, <eos>, <|endoftext|>).
  int bos_id() const override;
  int eos_id() const override;
  std::string name() const override;  // "hf-bpe-bytelevel" or "hf-bpe-sentencepiece"

  struct State;

 private:
  std::shared_ptr<const State> s_;
};

}  // namespace kvlab
