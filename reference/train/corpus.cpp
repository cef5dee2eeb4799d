#include "reference/train/corpus.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_set>

#include "core/error.hpp"
#include "reference/rng.hpp"
#include "reference/tasks.hpp"

namespace kvlab::ref::train {
namespace fs = std::filesystem;
namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// SplitMix64's finalizer: a bijective mix of 64 bits.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a 64 over the bytes: the same on every machine.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// The length of the valid UTF-8 sequence at s[i] (1..4), or 0 when it is not valid.
std::size_t utf8_length(const std::string& s, std::size_t i, char32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return cp = c, 1;
  std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  const char32_t least = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < least || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  return lines;
}

bool blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
}

std::string read_whole(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(flag, path, "is not a readable file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(flag, path, "cannot be opened");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Fortune files whose documents are pictures, not prose (the per-document letter share drops
// most pictures elsewhere too).
const std::set<std::string> kSkippedFortuneFiles = {"ascii-art"};

std::vector<int> text_stream(const std::vector<std::string>& docs, const Tokenizer& tok) {
  std::vector<int> out;
  for (const std::string& d : docs) {
    out.push_back(tok.bos_id());
    const std::vector<int> ids = tok.encode(d, false);
    out.insert(out.end(), ids.begin(), ids.end());
    if (tok.eos_id() >= 0) out.push_back(tok.eos_id());
  }
  return out;
}

// Recall examples of at most `room` tokens, in the formats of reference/tasks.cpp.
class RecallMaker {
 public:
  // `room`: tokens an example may take (seq_len + 1, less the EOS after it).
  RecallMaker(const Tokenizer& tok, int room, int seq_len)
      : tok_(tok), room_(room), seq_len_(seq_len) {
    // Passkey: the tokens beyond the context (question and key) and the least context.
    const TaskExample probe = whole_passkey_or_empty(std::max(room_, 512), 1);
    extra_ = static_cast<int>(probe.query.size()) + 1;
    int lo = 1, hi = static_cast<int>(probe.context.size());  // [hi] fits
    while (hi - lo > 1) {
      const int mid = lo + (hi - lo) / 2;
      (whole_passkey_or_empty(mid, 1).context.empty() ? lo : hi) = mid;
    }
    min_context_ = hi;
    if (probe.context.empty() || min_context_ + extra_ > room_) {
      fail("--seq-len", std::to_string(seq_len_),
           "too short for a passkey example in tokenizer " + tok.name() + " (one takes " +
               std::to_string(min_context_ + extra_ + seq_len_ - room_) +
               " tokens or more: give a longer --seq-len or --recall-fraction 0)");
    }
    // MQAR draws raw ids from [8, 8 + 2·range): only when no special token lies there (the byte
    // tokenizer's BOS 256 and EOS 257 do: passkeys only then).
    vocab_ = tok.vocab_size();
    const int range = std::min((vocab_ - 8) / 2, 4096);
    mqar_ = range >= 8 && room_ >= 32;
    for (int special : {tok.bos_id(), tok.eos_id()}) {
      if (special >= 8 && special < 8 + 2 * range) mqar_ = false;
    }
    max_pairs_ = std::min(32, range);
  }

  // One example's tokens; `kind` becomes 'p' or 'm'.
  std::vector<int> make(Rng& rng, char& kind) {
    kind = 'p';
    if (mqar_ && rng.below(2) == 1) {
      kind = 'm';
      // As `kvlab eval --task mqar` (16 pairs, 8 queries by default): pairs in [4, 32], half
      // of them asked, the context at least the pairs and at most what the row holds.
      int pairs = 4 + static_cast<int>(rng.below(max_pairs_ - 3));
      while (2 * pairs + 1 + 2 * std::max(1, pairs / 2) > room_) pairs /= 2;
      const int queries = std::max(1, pairs / 2);
      const int most = room_ - 2 * queries, least = 2 * pairs + 1;
      const int length = least + static_cast<int>(rng.below(most - least + 1));
      const TaskExample ex = make_mqar(length, pairs, queries, vocab_, rng.next());
      std::vector<int> ids = ex.context;
      ids.insert(ids.end(), ex.query.begin(), ex.query.end());
      return ids;
    }
    // Passkey: a context of [min_context, room - extra] tokens (the needle at a seeded depth);
    // the whole text (context, question, key) as make_passkey encodes it, BOS first.
    const int most = std::max(min_context_, room_ - extra_);
    const int chosen = min_context_ + static_cast<int>(rng.below(most - min_context_ + 1));
    const std::uint64_t seed = rng.next();
    // Another key may take a token more or less: the nearest length below, else above, that fits.
    std::vector<int> lengths;
    for (int l = chosen; l >= std::max(1, min_context_ - 16); --l) lengths.push_back(l);
    for (int l = chosen + 1; l <= most; ++l) lengths.push_back(l);
    for (int length : lengths) {
      const TaskExample ex = whole_passkey_or_empty(length, seed);
      if (ex.context.empty()) continue;
      std::vector<int> ids = ex.context;
      ids.insert(ids.end(), ex.query.begin(), ex.query.end());
      ids.push_back(ex.answer.back());
      if (static_cast<int>(ids.size()) <= room_) return ids;
    }
    fail("--seq-len", std::to_string(seq_len_),
         "too short for a passkey example in tokenizer " + tok_.name());
  }

 private:
  // make_passkey, or an empty example when `length` cannot hold the needle.
  TaskExample whole_passkey_or_empty(int length, std::uint64_t seed) const {
    try {
      return make_passkey(length, seed, tok_);
    } catch (const kvlab::Error& e) {
      if (std::string(e.what()).rfind("--length", 0) == 0) return {};
      throw;
    }
  }

  const Tokenizer& tok_;
  int room_, seq_len_;
  int extra_ = 0, min_context_ = 1, vocab_ = 0, max_pairs_ = 0;
  bool mqar_ = false;
};

}  // namespace

void CorpusOptions::validate() const {
  if (!(val_fraction > 0 && val_fraction <= 0.5)) {
    fail("--val-fraction", fmt(val_fraction), "must be in (0, 0.5]");
  }
  if (!(recall_fraction >= 0 && recall_fraction < 1)) {
    fail("--recall-fraction", fmt(recall_fraction), "must be in [0, 1)");
  }
}

std::vector<std::string> split_fortunes(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  for (const std::string& line : lines_of(text)) {
    std::string l = line;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l == "%") {
      docs.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += line;
      cur += '\n';
    }
  }
  docs.push_back(std::move(cur));
  return docs;
}

std::vector<std::string> split_paragraphs(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  for (const std::string& line : lines_of(text)) {
    std::string l = line;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (blank(l)) {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += line;
      cur += '\n';
    }
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

std::string clean_document(const std::string& text) {
  // Characters: valid UTF-8 only, no control characters but '\n'; tabs as 4 spaces; an
  // overstrike (c BS d) keeps d.
  std::string s;
  s.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    const std::size_t n = utf8_length(text, i, cp);
    if (n == 0) {
      ++i;
      continue;
    }
    if (cp == '\b') {
      // Drop the previous character (a whole UTF-8 sequence) unless it is a line break.
      if (!s.empty() && s.back() != '\n') {
        while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
        if (!s.empty()) s.pop_back();
      }
    } else if (cp == '\t') {
      s += "    ";
    } else if (cp == '\n' || (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0x9F))) {
      s.append(text, i, n);
    }
    i += n;
  }
  // Lines: trailing spaces stripped; leading and trailing blank lines dropped; blank runs as one.
  std::string out;
  int blanks = 0;
  for (std::string line : lines_of(s)) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (line.empty()) {
      ++blanks;
      continue;
    }
    if (!out.empty()) out += blanks > 0 ? "\n\n" : "\n";
    blanks = 0;
    out += line;
  }
  if (out.empty() || out.size() > kMaxDocumentChars) return "";
  // Letters among the non-space characters (non-ASCII characters count as letters).
  std::size_t letters = 0, visible = 0;
  for (unsigned char c : out) {
    if (c == ' ' || c == '\n' || (c & 0xC0) == 0x80) continue;
    ++visible;
    letters += c >= 0x80 || std::isalpha(c);
  }
  if (visible == 0 || static_cast<double>(letters) < kMinLetterShare * visible) return "";
  return out;
}

bool is_validation(const std::string& document, std::uint64_t seed, double val_fraction) {
  const std::uint64_t h = mix(fnv1a(document) ^ mix(seed));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < val_fraction;
}

Documents read_documents(const CorpusOptions& o) {
  o.validate();
  std::vector<std::string> raw;
  Documents out;
  std::string flag, path;
  if (!o.text_file.empty()) {
    flag = "--text-file", path = o.text_file;
    raw = split_paragraphs(read_whole(flag, path));
    out.source = o.text_file;
  } else {
    flag = "--fortunes-dir", path = o.fortunes_dir;
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      fail(flag, path,
           "is not a directory (the Debian packages fortunes and fortunes-min install "
           "/usr/share/games/fortunes; scripts/setup.sh installs them)");
    }
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      const std::string name = e.path().filename().string();
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file(ec) || e.is_symlink(ec)) continue;  // off/, *.u8 links
      if (ext == ".dat" || ext == ".u8" || kSkippedFortuneFiles.count(name)) continue;
      files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
      for (std::string& d : split_fortunes(read_whole(flag, f))) raw.push_back(std::move(d));
    }
    out.source = "fortunes:" + path;
  }
  std::unordered_set<std::string> seen;
  for (const std::string& r : raw) {
    std::string d = clean_document(r);
    if (d.empty() || !seen.insert(d).second) continue;
    (is_validation(d, o.seed, o.val_fraction) ? out.val : out.train).push_back(std::move(d));
  }
  if (out.train.empty() && out.val.empty()) {
    fail(flag, path, "has no usable text (no document is left after cleaning)");
  }
  if (out.train.empty()) fail(flag, path, "has no training document (all were held out)");
  return out;
}

Corpus build_corpus(const CorpusOptions& options, const Tokenizer& tok, int seq_len) {
  if (seq_len < 1) fail("--seq-len", std::to_string(seq_len), "must be >= 1");
  if (tok.bos_id() < 0) fail("--tokenizer", tok.name(), "has no BOS token");
  const Documents docs = read_documents(options);
  Corpus c;
  c.source = docs.source;
  c.documents = static_cast<long>(docs.train.size() + docs.val.size());
  c.val_documents = static_cast<long>(docs.val.size());
  for (const auto* v : {&docs.train, &docs.val}) {
    for (const std::string& d : *v) c.characters += static_cast<long>(d.size());
  }
  c.val = text_stream(docs.val, tok);
  const std::vector<int> text = text_stream(docs.train, tok);
  const int row = seq_len + 1;
  c.row = row;
  if (static_cast<long>(text.size()) < row) {
    fail("--seq-len", std::to_string(seq_len),
         "the training text of " + c.source + " has " + std::to_string(text.size()) +
             " tokens, fewer than one row of seq_len + 1 = " + std::to_string(row));
  }
  // Rows: natural text, or (a seeded recall_fraction of them) a recall example, EOS, then text.
  const int eos = tok.eos_id() >= 0 ? 1 : 0;
  std::unique_ptr<RecallMaker> maker;
  if (options.recall_fraction > 0) maker = std::make_unique<RecallMaker>(tok, row - eos, seq_len);
  Rng rng(mix(options.seed ^ 0x7265636131ull));
  std::size_t at = 0;
  while (true) {
    std::vector<int> ids;
    char kind = 't';
    if (maker && rng.unit() < options.recall_fraction) {
      ids = maker->make(rng, kind);
      if (eos) ids.push_back(tok.eos_id());
    }
    const std::size_t need = static_cast<std::size_t>(row) - ids.size();
    if (at + need > text.size()) break;
    c.recall_sequences += !ids.empty();
    c.row_kinds += kind;
    c.train.insert(c.train.end(), ids.begin(), ids.end());
    c.train.insert(c.train.end(), text.begin() + static_cast<long>(at),
                   text.begin() + static_cast<long>(at + need));
    at += need;
  }
  return c;
}

BatchSampler::BatchSampler(const std::vector<int>& stream, int B, int T, std::uint64_t seed)
    : stream_(&stream), B_(B), T_(T), state_{seed, 0} {
  if (B < 1) fail("--batch", std::to_string(B), "must be >= 1");
  if (T < 1) fail("--seq-len", std::to_string(T), "must be >= 1");
  if (stream.size() < static_cast<std::size_t>(T) + 1) {
    throw Error("corpus of " + std::to_string(stream.size()) +
                " tokens is smaller than one batch row of T+1 = " + std::to_string(T + 1) +
                " tokens");
  }
}

void BatchSampler::next(int* out) {
  const std::size_t row = static_cast<std::size_t>(T_) + 1;
  const std::uint64_t rows = stream_->size() / row;
  for (int b = 0; b < B_; ++b) {
    Rng rng(mix(mix(state_.seed) ^ mix(state_.step ^ 0x5A3C9E1Full)) ^ static_cast<unsigned>(b));
    const std::size_t r = static_cast<std::size_t>(rng.below(rows));
    std::copy_n(stream_->begin() + static_cast<long>(r * row), row,
                out + static_cast<std::size_t>(b) * row);
  }
  ++state_.step;
}

BatchSampler::State BatchSampler::state() const {
  return state_;
}

void BatchSampler::restore(const State& s) {
  state_ = s;
}

}  // namespace kvlab::ref::train
