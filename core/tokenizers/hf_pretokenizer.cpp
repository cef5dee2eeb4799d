#include "core/tokenizers/hf_pretokenizer.hpp"

#include <cstddef>
#include <string_view>

#include "core/tokenizers/unicode.hpp"

namespace kvlab::hf {
namespace {

using unicode::is_letter;
using unicode::is_number;
using unicode::is_space;

// The text as characters: code point and byte range.
struct Char {
  uint32_t cp;
  size_t begin, end;
};
std::vector<Char> chars_of(std::string_view s) {
  std::vector<Char> out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = unicode::utf8_next(s, i, &cp);
    out.push_back({cp, i, i + n});
    i += n;
  }
  return out;
}

bool is_l(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_letter(c[i].cp);
}
bool is_n(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_number(c[i].cp);
}
bool is_s(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_space(c[i].cp);
}
bool is_other(const std::vector<Char>& c, size_t i) {
  return i < c.size() && !is_space(c[i].cp) && !is_letter(c[i].cp) && !is_number(c[i].cp);
}
bool is_nl(const std::vector<Char>& c, size_t i) {
  return i < c.size() && (c[i].cp == '\r' || c[i].cp == '\n');
}

// Length (in characters) of a contraction at i ('s 't 're 've 'm 'll 'd), 0 if none.
size_t contraction(const std::vector<Char>& c, size_t i, bool ignore_case) {
  if (i >= c.size() || c[i].cp != '\'') return 0;
  const auto at = [&](size_t k) -> uint32_t {
    if (k >= c.size()) return 0;
    uint32_t v = c[k].cp;
    if (ignore_case && v >= 'A' && v <= 'Z') v += 32;
    return v;
  };
  const uint32_t a = at(i + 1), b = at(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// \s+(?!\S) then \s+ : a whitespace run, less its last character when a non-space follows.
size_t whitespace_run(const std::vector<Char>& c, size_t i) {
  size_t j = i;
  while (is_s(c, j)) ++j;
  if (j == i) return 0;
  if (j < c.size() && j - i > 1) return j - 1 - i;
  return j - i;
}

size_t match_gpt2(const std::vector<Char>& c, size_t i) {
  if (size_t n = contraction(c, i, false)) return n;
  const size_t sp = (c[i].cp == ' ') ? 1 : 0;
  for (auto cls : {is_l, is_n, is_other}) {
    size_t start = i;
    if (sp && cls(c, i + 1)) start = i + 1;
    if (!cls(c, start)) continue;
    size_t j = start;
    while (cls(c, j)) ++j;
    return j - i;
  }
  if (size_t n = whitespace_run(c, i)) return n;
  return 1;
}

size_t match_llama3(const std::vector<Char>& c, size_t i) {
  if (size_t n = contraction(c, i, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t start = i;
    if (!is_nl(c, i) && !is_l(c, i) && !is_n(c, i) && is_l(c, i + 1)) start = i + 1;
    if (is_l(c, start)) {
      size_t j = start;
      while (is_l(c, j)) ++j;
      return j - i;
    }
  }
  // \p{N}{1,3}
  if (is_n(c, i)) {
    size_t j = i;
    while (j < i + 3 && is_n(c, j)) ++j;
    return j - i;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t start = i;
    if (c[i].cp == ' ' && is_other(c, i + 1)) start = i + 1;
    if (is_other(c, start)) {
      size_t j = start;
      while (is_other(c, j)) ++j;
      while (is_nl(c, j)) ++j;
      return j - i;
    }
  }
  // \s*[\r\n]+ : up to the last newline of the whitespace run.
  {
    size_t j = i, last_nl = c.size();
    while (is_s(c, j)) {
      if (is_nl(c, j)) last_nl = j;
      ++j;
    }
    if (last_nl != c.size()) return last_nl + 1 - i;
  }
  if (size_t n = whitespace_run(c, i)) return n;
  return 1;
}

}  // namespace

std::vector<std::string> regex_split(const std::string& s, Pattern p) {
  const std::vector<Char> c = chars_of(s);
  std::vector<std::string> out;
  for (size_t i = 0; i < c.size();) {
    const size_t n = p == Pattern::Gpt2 ? match_gpt2(c, i) : match_llama3(c, i);
    out.push_back(s.substr(c[i].begin, c[i + n - 1].end - c[i].begin));
    i += n;
  }
  return out;
}

ByteMap::ByteMap() {
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
    to_char[b] = unicode::utf8_encode(cp);
    from_cp[cp] = static_cast<unsigned char>(b);
  }
}
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace kvlab::hf
