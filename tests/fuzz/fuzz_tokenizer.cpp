// libFuzzer target: the tokenizer parsers and encoders. The first input byte picks the mode:
//   even: the rest is a llama2.c tokenizer.bin; odd: the rest is a Hugging Face tokenizer.json.
// A file that loads is then used to encode a fixed varied text and a slice of the input, and
// decode(encode(x)) runs on both. kvlab::Error is an accepted rejection; anything else is a bug.
// See docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/llama2c.hpp"

namespace {

void exercise(const kvlab::Tokenizer& t, std::string_view extra) {
  static const std::string kText =
      "Hello, world! It's 2024: 12345 caf\xC3\xA9 \xCE\xB1\xCE\xB2 \xE4\xBD\xA0\xE5\xA5\xBD "
      "\xF0\x9F\x98\x80  \t\n\n  x";
  for (std::string_view text : {std::string_view(kText), extra.substr(0, 256)}) {
    for (bool bos : {false, true}) {
      try {
        const std::vector<int> ids = t.encode(text, bos);
        for (int id : ids) {
          if (id < 0 || id >= t.vocab_size()) __builtin_trap();  // ids must be in range
        }
        (void)t.decode(ids);
      } catch (const kvlab::Error&) {
      }
    }
  }
  for (int id : {0, t.vocab_size() - 1, t.vocab_size(), -1}) {
    try {
      (void)t.decode_token(id);
    } catch (const kvlab::Error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      exercise(kvlab::Llama2cTokenizer::from_bytes(rest), rest);
    } else {
      exercise(kvlab::HfTokenizer::from_json_text(rest), rest);
    }
  } catch (const kvlab::Error&) {
  }
  return 0;
}
