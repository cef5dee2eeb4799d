// Unicode for the Hugging Face tokenizer: UTF-8 decoding and encoding, and the character classes
// of the pre-tokenizer regexes (\p{L}, \p{N}, \s).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvlab::unicode {

inline constexpr uint32_t kInvalid = 0xFFFFFFFF;  // a byte that is not valid UTF-8: "other"

// Decodes one UTF-8 character at s[i]; returns its length (1 for an invalid byte, cp = kInvalid).
size_t utf8_next(std::string_view s, size_t i, uint32_t* cp);
std::string utf8_encode(uint32_t cp);

// Unicode 14.0 general categories L* (letters) and N* (numbers).
bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
// Unicode White_Space (what \s matches in the regex engines tokenizers uses).
bool is_space(uint32_t cp);

}  // namespace kvlab::unicode
