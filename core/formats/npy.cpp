#include "core/formats/npy.hpp"

#include <bit>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"

static_assert(std::endian::native == std::endian::little, "kvlab writes '<' (little-endian) data");

namespace kvlab {
namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr size_t kMagicLen = 6;

[[noreturn]] void bad(const std::string& path, const std::string& field, const std::string& value,
                      const std::string& allowed) {
  fail(path + ": " + field, value, allowed);
}

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

template <typename T>
void write_any(const std::string& path, std::span<const T> data, const std::vector<int64_t>& shape,
               const char* descr) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      bad(path, "shape", shape_tuple(shape), "dimensions must be non-negative and fit 64 bits");
    }
  }
  if (n != data.size()) {
    bad(path, "data", std::to_string(data.size()) + " elements",
        "must hold product(shape) = " + std::to_string(n) + " elements for shape " +
            shape_tuple(shape));
  }
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  const size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;  // + the final '\n'
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 65535) {
    bad(path, "shape", shape_tuple(shape), "too many dimensions for a version 1.0 header");
  }
  write_file_atomic(path, [&](std::ostream& out) {
    const unsigned char version[2] = {1, 0};
    const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                  static_cast<unsigned char>(header.size() >> 8)};
    out.write(kMagic, kMagicLen);
    out.write(reinterpret_cast<const char*>(version), 2);
    out.write(reinterpret_cast<const char*>(len), 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size_bytes()));
  });
}

// A tiny parser for the header's Python dict literal: string keys; values are strings, True/False
// or tuples of non-negative integers.
class HeaderParser {
 public:
  HeaderParser(std::string path, std::string text) : path_(std::move(path)), s_(std::move(text)) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool has_descr = false, has_fortran = false, has_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      skip_ws();
      if (key == "descr") {
        *descr = string_literal();
        has_descr = true;
      } else if (key == "fortran_order") {
        *fortran = boolean();
        has_fortran = true;
      } else if (key == "shape") {
        *shape = tuple();
        has_shape = true;
      } else {
        error("has an unknown key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != '}') error("expects ',' or '}' at byte " + std::to_string(i_));
    }
    ++i_;
    skip_ws();
    if (i_ != s_.size()) error("has text after the closing '}'");
    if (!has_descr || !has_fortran || !has_shape) {
      error("must define 'descr', 'fortran_order' and 'shape'");
    }
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    bad(path_, "header", s_.size() > 200 ? s_.substr(0, 200) + "..." : s_,
        "must be a dict literal like {'descr': '<f4', 'fortran_order': "
        "False, 'shape': (2, 3), }; it " +
            what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) error(std::string("expects '") + c + "' at byte " + std::to_string(i_));
    ++i_;
  }
  std::string string_literal() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') error("expects a quoted string at byte " + std::to_string(i_));
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) error("has an unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    error("expects True or False at byte " + std::to_string(i_));
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) {
        error("expects a non-negative integer at byte " + std::to_string(i_));
      }
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (__builtin_mul_overflow(v, int64_t{10}, &v) ||
            __builtin_add_overflow(v, int64_t{s_[i_] - '0'}, &v)) {
          error("has a dimension that overflows 64 bits");
        }
        ++i_;
      }
      // numpy may write 'L' suffixes (Python 2 era files).
      if (peek() == 'L') ++i_;
      out.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != ')') error("expects ',' or ')' at byte " + std::to_string(i_));
    }
    ++i_;
    return out;
  }

  std::string path_;
  std::string s_;
  size_t i_ = 0;
};

}  // namespace

void write_npy(const std::string& path, std::span<const float> data,
               const std::vector<int64_t>& shape) {
  write_any(path, data, shape, "<f4");
}

void write_npy(const std::string& path, std::span<const double> data,
               const std::vector<int64_t>& shape) {
  write_any(path, data, shape, "<f8");
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("npy file", path, "cannot be opened");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("npy file", path, "cannot be read");

  if (bytes.size() < kMagicLen + 4 || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0) {
    bad(path, "magic", std::to_string(bytes.size()) + "-byte file",
        "must start with \\x93NUMPY and a version; not an .npy file or truncated");
  }
  const auto u8 = [&](size_t i) {
    return static_cast<uint64_t>(static_cast<unsigned char>(bytes[i]));
  };
  const int major = static_cast<int>(u8(6)), minor = static_cast<int>(u8(7));
  size_t header_len = 0, header_start = 0;
  if (major == 1 && minor == 0) {
    header_len = u8(8) | u8(9) << 8;
    header_start = 10;
  } else if (major == 2 && minor == 0 && bytes.size() >= 12) {
    header_len = u8(8) | u8(9) << 8 | u8(10) << 16 | u8(11) << 24;
    header_start = 12;
  } else {
    bad(path, "version", std::to_string(major) + "." + std::to_string(minor), "must be 1.0 or 2.0");
  }
  if (header_len > bytes.size() - header_start) {
    bad(path, "header length", std::to_string(header_len),
        "runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  }

  NpyArray a;
  bool fortran = false;
  HeaderParser(path, bytes.substr(header_start, header_len)).parse(&a.descr, &fortran, &a.shape);
  size_t item = 0;
  if (a.descr == "<f4") {
    item = 4;
  } else if (a.descr == "<f8") {
    item = 8;
  } else {
    bad(path, "descr", "'" + a.descr + "'", "must be '<f4' or '<f8'");
  }
  if (fortran) bad(path, "fortran_order", "True", "must be False (C order)");

  uint64_t n = 1;
  for (int64_t d : a.shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      bad(path, "shape", shape_tuple(a.shape), "product overflows 64 bits");
    }
  }
  const size_t data_start = header_start + header_len;
  const uint64_t have = bytes.size() - data_start;
  uint64_t want = 0;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(item), &want) || want != have) {
    bad(path, "data", std::to_string(have) + " bytes",
        "must be " + std::to_string(n) + " elements of " + a.descr + " for shape " +
            shape_tuple(a.shape) + " (truncated or trailing bytes?)");
  }

  a.values.resize(n);
  const char* p = bytes.data() + data_start;
  for (size_t i = 0; i < n; ++i) {
    if (item == 4) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      a.values[i] = v;
    } else {
      std::memcpy(&a.values[i], p + 8 * i, 8);
    }
  }
  return a;
}

}  // namespace kvlab
