// HfTokenizer: encoding (added tokens, normalizers, pre-tokenizers, BPE) and decoding with the
// parsed tokenizer.json (hf_json.cpp reads it into HfTokenizer::State).
#include "core/tokenizers/hf.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tokenizers/bpe_merge.hpp"
#include "core/tokenizers/hf_pretokenizer.hpp"
#include "core/tokenizers/hf_state.hpp"
#include "core/tokenizers/unicode.hpp"

namespace kvlab {
namespace {

using State = HfTokenizer::State;
using hf::byte_map;
using hf::Pattern;
using hf::regex_split;
using unicode::utf8_next;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t k = s.find(from, i);
    if (k == std::string::npos) break;
    out.append(s, i, k - i);
    out += to;
    i = k + from.size();
  }
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

struct Piece {
  std::string text;
  int added_id = -1;      // >= 0: an added token, emitted as is
  bool at_start = false;  // begins at the start of the input (Metaspace prepend_scheme first)
};

bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Splits `text` on the added tokens with normalized == `normalized` (leftmost, then longest).
std::vector<Piece> split_added(const State& st, const std::string& text, bool normalized,
                               bool at_start) {
  std::vector<Piece> out;
  size_t from = 0;  // start of the pending plain text
  size_t i = 0;
  while (i < text.size()) {
    const State::Added* best = nullptr;
    for (const State::Added& a : st.added) {
      if (a.normalized != normalized) continue;
      if (text.compare(i, a.content.size(), a.content) == 0 &&
          (best == nullptr || a.content.size() > best->content.size())) {
        best = &a;
      }
    }
    if (best == nullptr) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + best->content.size();
    if (best->lstrip) {
      while (begin > from && ascii_space(text[begin - 1])) --begin;
    }
    if (best->rstrip) {
      while (end < text.size() && ascii_space(text[end])) ++end;
    }
    if (begin > from) out.push_back({text.substr(from, begin - from), -1, at_start && from == 0});
    out.push_back({text.substr(begin, end - begin), best->id, false});
    from = i = end;
  }
  if (from < text.size()) out.push_back({text.substr(from), -1, at_start && from == 0});
  return out;
}

std::string normalize(const State& st, std::string s) {
  for (const State::Norm& n : st.normalizers) {
    if (n.kind == State::Norm::Prepend) {
      if (!s.empty()) s = n.a + s;
    } else {
      replace_all(s, n.a, n.b);
    }
  }
  return s;
}

void apply_pre(const State::Pre& p, const Piece& in, std::vector<Piece>& out) {
  std::string s = in.text;
  switch (p.kind) {
    case State::Pre::ByteLevel: {
      if (p.add_prefix_space && (s.empty() || s[0] != ' ')) s = " " + s;
      std::vector<std::string> parts;
      if (p.use_regex) {
        parts = regex_split(s, Pattern::Gpt2);
      } else {
        parts.push_back(s);
      }
      for (const std::string& part : parts) {
        std::string mapped;
        for (char c : part) mapped += byte_map().to_char[static_cast<unsigned char>(c)];
        out.push_back({mapped, -1, false});
      }
      return;
    }
    case State::Pre::Split:
      for (std::string& part : regex_split(s, p.pattern)) out.push_back({part, -1, false});
      return;
    case State::Pre::Metaspace: {
      replace_all(s, " ", p.replacement);
      const bool prepend =
          p.scheme == State::Pre::Always || (p.scheme == State::Pre::First && in.at_start);
      if (prepend && s.compare(0, p.replacement.size(), p.replacement) != 0) s = p.replacement + s;
      if (!p.split) {
        out.push_back({s, -1, false});
        return;
      }
      // Split before every replacement character (it stays with the text that follows).
      size_t start = 0;
      for (size_t k = s.find(p.replacement, 1); k != std::string::npos;
           k = s.find(p.replacement, k + 1)) {
        out.push_back({s.substr(start, k - start), -1, false});
        start = k;
      }
      out.push_back({s.substr(start), -1, false});
      return;
    }
    case State::Pre::Digits: {
      size_t start = 0;
      const auto digit = [&](size_t k) { return s[k] >= '0' && s[k] <= '9'; };
      for (size_t k = 0; k < s.size(); ++k) {
        const bool boundary =
            k > 0 && (digit(k) != digit(k - 1) || (p.individual_digits && digit(k)));
        if (boundary) {
          out.push_back({s.substr(start, k - start), -1, false});
          start = k;
        }
      }
      out.push_back({s.substr(start), -1, false});
      return;
    }
  }
}

void bpe_word(const State& st, const std::string& word, std::vector<int>& ids) {
  if (word.empty()) return;
  if (st.ignore_merges) {
    const auto it = st.vocab.find(word);
    if (it != st.vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<int> sym;
  for (size_t i = 0; i < word.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_next(word, i, &cp);
    const std::string ch = word.substr(i, n);
    i += n;
    const auto it = st.vocab.find(ch);
    if (it != st.vocab.end()) {
      sym.push_back(it->second);
      continue;
    }
    if (st.byte_fallback) {
      std::vector<int> bytes;
      for (unsigned char c : ch) {
        static const char* hex = "0123456789ABCDEF";
        const std::string name = std::string("<0x") + hex[c >> 4] + hex[c & 15] + ">";
        const auto b = st.vocab.find(name);
        if (b == st.vocab.end()) break;
        bytes.push_back(b->second);
      }
      if (bytes.size() == ch.size()) {
        sym.insert(sym.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (st.unk_id >= 0) {
      if (!(st.fuse_unk && !sym.empty() && sym.back() == st.unk_id)) sym.push_back(st.unk_id);
    }
    // Without an unk token the character is dropped, as tokenizers does.
  }
  // Apply the lowest-ranked merge present (the leftmost on ties) until none applies, as
  // tokenizers does: the shared BPE loop (core/tokenizers/bpe_merge.hpp).
  const std::vector<int> merged = bpe_merge(std::move(sym), [&st](int left, int right) {
    std::optional<BpeMerge> m;
    const auto it = st.merges.find(State::key(left, right));
    if (it != st.merges.end()) {
      m = BpeMerge{static_cast<double>(it->second.first), it->second.second};
    }
    return m;
  });
  ids.insert(ids.end(), merged.begin(), merged.end());
}

}  // namespace

std::vector<int> HfTokenizer::encode(std::string_view text, bool add_bos) const {
  const State& st = *s_;
  std::vector<int> ids;
  if (add_bos) {
    if (st.bos < 0) st.bad("BOS token", "none", "the tokenizer has no BOS token to add");
    ids.push_back(st.bos);
  }
  for (const Piece& raw : split_added(st, std::string(text), false, true)) {
    if (raw.added_id >= 0) {
      ids.push_back(raw.added_id);
      continue;
    }
    for (const Piece& seg : split_added(st, normalize(st, raw.text), true, raw.at_start)) {
      if (seg.added_id >= 0) {
        ids.push_back(seg.added_id);
        continue;
      }
      std::vector<Piece> words{seg};
      for (const State::Pre& p : st.pre_tokenizers) {
        std::vector<Piece> next;
        for (const Piece& w : words) apply_pre(p, w, next);
        words = std::move(next);
      }
      for (const Piece& w : words) bpe_word(st, w.text, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode_token(int id) const {
  const State& st = *s_;
  if (id < 0 || id >= vocab_size()) {
    fail("token id", std::to_string(id), "must be in [0, " + std::to_string(vocab_size()) + ")");
  }
  if (id == st.bos || id == st.eos) return {};
  std::string s = st.tokens[static_cast<size_t>(id)];
  if (st.added_by_id.count(id) != 0) return s;
  for (const State::Dec& d : st.decoders) {
    switch (d.kind) {
      case State::Dec::ByteLevel: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          uint32_t cp = 0;
          const size_t n = utf8_next(s, i, &cp);
          const auto it = byte_map().from_cp.find(cp);
          if (it != byte_map().from_cp.end()) {
            out += static_cast<char>(it->second);
          } else {
            out.append(s, i, n);
          }
          i += n;
        }
        s = std::move(out);
        break;
      }
      case State::Dec::Replace:
        replace_all(s, d.a, d.b);
        break;
      case State::Dec::ByteFallback: {
        const int b = parse_byte_piece(s);
        if (b >= 0) s = std::string(1, static_cast<char>(b));
        break;
      }
      case State::Dec::Metaspace:
        replace_all(s, d.a, " ");
        break;
      case State::Dec::Strip:
        break;  // applied by decode() at the start of the text
    }
  }
  return s;
}

std::string HfTokenizer::decode(const std::vector<int>& ids) const {
  const State& st = *s_;
  int strip = 0;  // leading spaces the decoder strips at the start of the text
  std::string strip_char = " ";
  for (const State::Dec& d : st.decoders) {
    if (d.kind == State::Dec::Strip) {
      strip = d.start;
      strip_char = d.a;
    } else if (d.kind == State::Dec::Metaspace) {
      strip = d.start;
    }
  }
  std::string text;
  bool at_start = true;
  for (int id : ids) {
    std::string s = decode_token(id);
    if (id == st.bos) {
      at_start = true;
      continue;
    }
    if (id == st.eos) continue;
    if (at_start && st.added_by_id.count(id) == 0) {
      for (int k = 0;
           k < strip && !strip_char.empty() && s.compare(0, strip_char.size(), strip_char) == 0;
           ++k) {
        s.erase(0, strip_char.size());
      }
    }
    at_start = false;
    text += s;
  }
  return text;
}

int HfTokenizer::vocab_size() const {
  return static_cast<int>(s_->tokens.size());
}
int HfTokenizer::bos_id() const {
  return s_->bos;
}
int HfTokenizer::eos_id() const {
  return s_->eos;
}
std::string HfTokenizer::name() const {
  return s_->byte_level ? "hf-bpe-bytelevel" : "hf-bpe-sentencepiece";
}

}  // namespace kvlab
