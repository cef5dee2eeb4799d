#include "core/tokenizers/tokenizer.hpp"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/llama2c.hpp"

namespace kvlab {
namespace {

void check_id(int id, int vocab_size) {
  if (id < 0 || id >= vocab_size) {
    fail("token id", std::to_string(id), "must be in [0, " + std::to_string(vocab_size) + ")");
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<int> ByteTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  ids.reserve(text.size() + (add_bos ? 1 : 0));
  if (add_bos) ids.push_back(kBos);
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int id : ids) text += decode_token(id);
  return text;
}

std::string ByteTokenizer::decode_token(int id) const {
  check_id(id, kVocabSize);
  if (id == kBos || id == kEos) return {};
  return std::string(1, static_cast<char>(static_cast<unsigned char>(id)));
}

std::vector<int> parse_token_list(std::string_view text, int vocab_size) {
  const std::string format = "--tokens takes comma-separated token ids such as 1,2,3";
  // Built with append: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.
  const std::string quoted = std::string("\"").append(text).append("\"");
  if (trim(text).empty()) fail("--tokens", quoted, "the list is empty; " + format);
  std::vector<int> ids;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item =
        trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    const std::string item_str(item);
    const std::string where = std::string("item ").append(std::to_string(ids.size() + 1));
    if (item.empty()) fail("--tokens", quoted, where + " is empty; " + format);
    long long v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc::result_out_of_range) {
      fail("--tokens", item_str, "token ids must be in [0, " + std::to_string(vocab_size) + ")");
    }
    if (ec != std::errc() || end != item.data() + item.size()) {
      fail("--tokens", item_str, where + " is not an integer; " + format);
    }
    if (v < 0 || v >= vocab_size) {
      fail("--tokens", item_str, "token ids must be in [0, " + std::to_string(vocab_size) + ")");
    }
    ids.push_back(static_cast<int>(v));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ids;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    file.clear();
    for (const char* name : {"tokenizer.json", "tokenizer.bin"}) {
      const fs::path p = fs::path(path) / name;
      if (fs::is_regular_file(p, ec)) {
        file = p.string();
        break;
      }
    }
    if (file.empty())
      fail("--tokenizer", path, "the directory has no tokenizer.json or tokenizer.bin");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("--tokenizer", file, "cannot open the file for reading");
  char first = 0;
  while (in.get(first) && (first == ' ' || first == '\n' || first == '\r' || first == '\t')) {
  }
  const bool json_name = file.size() >= 5 && file.compare(file.size() - 5, 5, ".json") == 0;
  const bool bin_name = file.size() >= 4 && file.compare(file.size() - 4, 4, ".bin") == 0;
  if (json_name || (!bin_name && in && first == '{')) {
    return std::make_unique<HfTokenizer>(HfTokenizer::load(file));
  }
  return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(file));
}

std::string printable_text(std::string_view bytes, bool one_line) {
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    const unsigned char ch = static_cast<unsigned char>(c);
    if ((ch == '\n' || ch == '\t') && !one_line) {
      out += c;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace kvlab
