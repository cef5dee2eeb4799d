#include "core/formats/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; kvlab reads it in place");

namespace kvlab {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

// "<path>: <field> = <value> is invalid: <allowed>"
[[noreturn]] void bad(const std::string& path, const std::string& field, const std::string& value,
                      const std::string& allowed) {
  fail(path + ": " + field, value, allowed);
}

std::string tensor_field(const std::string& name, const char* field) {
  return "tensor '" + name + "' " + field;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string range_str(uint64_t begin, uint64_t end) {
  std::string s = "[";  // appended piece by piece: GCC 12 warns falsely on a + chain here
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  s += "]";
  return s;
}

bool parse_dtype(const std::string& s, TensorDtype* d) {
  static const std::pair<const char*, TensorDtype> kAll[] = {{"F32", TensorDtype::F32},
                                                             {"F16", TensorDtype::F16},
                                                             {"BF16", TensorDtype::BF16},
                                                             {"F64", TensorDtype::F64},
                                                             {"I64", TensorDtype::I64}};
  for (const auto& [n, v] : kAll) {
    if (s == n) {
      *d = v;
      return true;
    }
  }
  return false;
}

// product(shape) * elem_size, or false on overflow.
bool byte_size(const std::vector<int64_t>& shape, uint64_t elem_size, uint64_t* out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e) {
  if (!e.is_object()) {
    bad(path, "tensor '" + name + "'", e.dump(),
        "must be an object {\"dtype\", \"shape\", \"data_offsets\"}");
  }
  TensorInfo t;
  t.name = name;

  auto dt = e.find("dtype");
  if (dt == e.end()) bad(path, tensor_field(name, "dtype"), "(absent)", "every tensor needs one");
  if (!dt->is_string() || !parse_dtype(dt->get<std::string>(), &t.dtype)) {
    bad(path, tensor_field(name, "dtype"), dt->dump(), "must be one of F32, F16, BF16, F64, I64");
  }

  auto sh = e.find("shape");
  if (sh == e.end()) bad(path, tensor_field(name, "shape"), "(absent)", "every tensor needs one");
  if (!sh->is_array()) {
    bad(path, tensor_field(name, "shape"), sh->dump(), "must be a list of non-negative integers");
  }
  for (const json& d : *sh) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      bad(path, tensor_field(name, "shape"), sh->dump(), "must be a list of non-negative integers");
    }
    t.shape.push_back(d.get<int64_t>());
  }

  auto off = e.find("data_offsets");
  if (off == e.end()) {
    bad(path, tensor_field(name, "data_offsets"), "(absent)", "every tensor needs one");
  }
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    bad(path, tensor_field(name, "data_offsets"), off->dump(),
        "must be two non-negative integers [begin, end]");
  }
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.begin > t.end) {
    bad(path, tensor_field(name, "data_offsets"), range_str(t.begin, t.end),
        "begin must not exceed end");
  }

  uint64_t bytes = 0;
  if (!byte_size(t.shape, static_cast<uint64_t>(tensor_dtype_size(t.dtype)), &bytes)) {
    bad(path, tensor_field(name, "shape"), shape_str(t.shape),
        "product(shape) * dtype size overflows 64 bits");
  }
  if (bytes != t.end - t.begin) {
    bad(path, tensor_field(name, "data_offsets"),
        range_str(t.begin, t.end) + " (" + std::to_string(t.end - t.begin) + " bytes)",
        "must span product(shape) * dtype size = " + std::to_string(bytes) + " bytes for shape " +
            shape_str(t.shape) + " " + tensor_dtype_name(t.dtype));
  }
  return t;
}

// Offsets must tile [0, data_size) exactly. `tensors` is sorted by (begin, end).
void check_coverage(const std::string& path, const std::vector<TensorInfo>& tensors,
                    uint64_t data_size) {
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : tensors) {
    const std::string field = tensor_field(t.name, "data_offsets");
    if (t.begin > expected) {
      bad(path, field, range_str(t.begin, t.end),
          "leaves a hole: data bytes [" + std::to_string(expected) + ", " +
              std::to_string(t.begin) + ") belong to no tensor");
    }
    if (t.begin < expected) {
      bad(path, field, range_str(t.begin, t.end),
          "overlaps tensor '" + prev->name + "' at " + range_str(prev->begin, prev->end));
    }
    if (t.end > data_size) {
      bad(path, field, range_str(t.begin, t.end),
          "runs past the end of the data region (" + std::to_string(data_size) +
              " bytes); is the file truncated?");
    }
    expected = t.end;
    prev = &t;
  }
  if (expected != data_size) {
    bad(path, "data region", std::to_string(data_size) + " bytes",
        "the tensors cover only " + std::to_string(expected) + " bytes; " +
            std::to_string(data_size - expected) + " trailing bytes belong to no tensor");
  }
}

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Converts `n` elements of dtype `d` at `src` to Out (float or double).
template <typename Out>
void convert(TensorDtype d, const unsigned char* src, size_t n, Out* out) {
  if (n == 0) return;  // `out` may be null
  switch (d) {
    case TensorDtype::F32:
      if constexpr (std::is_same_v<Out, float>) {
        std::memcpy(out, src, n * sizeof(float));
      } else {
        for (size_t i = 0; i < n; ++i) out[i] = load<float>(src + 4 * i);
      }
      return;
    case TensorDtype::F64:
      if constexpr (std::is_same_v<Out, double>) {
        std::memcpy(out, src, n * sizeof(double));
      } else {
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(src + 8 * i));
      }
      return;
    case TensorDtype::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(src + 2 * i));
      return;
    case TensorDtype::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load<uint16_t>(src + 2 * i));
      return;
    case TensorDtype::I64:  // refused before convert() is called (read_f32, read_f64)
      return;
  }
}

}  // namespace

const char* tensor_dtype_name(TensorDtype d) {
  switch (d) {
    case TensorDtype::F32:
      return "F32";
    case TensorDtype::F16:
      return "F16";
    case TensorDtype::BF16:
      return "BF16";
    case TensorDtype::F64:
      return "F64";
    case TensorDtype::I64:
      return "I64";
  }
  return "?";
}

bool tensor_dtype_is_float(TensorDtype d) {
  return d != TensorDtype::I64;
}

int tensor_dtype_size(TensorDtype d) {
  switch (d) {
    case TensorDtype::F32:
      return 4;
    case TensorDtype::F16:
      return 2;
    case TensorDtype::BF16:
      return 2;
    case TensorDtype::F64:
    case TensorDtype::I64:
      return 8;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated on open: fits, since the bytes are in the file
  return n;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) {  // infinity (mant == 0) or NaN (payload kept, shifted into place)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t f32_to_f16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t a = bits & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // infinity, or NaN with the payload's top bits (kept quiet)
    if (a == 0x7f800000u) return sign | 0x7c00u;
    return sign | 0x7e00u | static_cast<uint16_t>((a & 0x7fffffu) >> 13);
  }
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // 65520 and above round to infinity
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half, round(|x| * 2^24) ulps (1024 = 2^-14)
    const float ulps = std::nearbyint(std::bit_cast<float>(a) * 16777216.0f);
    return sign | static_cast<uint16_t>(ulps);
  }
  // A normal half: rebias the exponent (127 -> 15), round 23 mantissa bits to 10, ties to even;
  // a carry out of the mantissa moves into the exponent, as it should.
  const uint32_t rebiased = a - 0x38000000u;
  const uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
  return sign | static_cast<uint16_t>(rounded >> 13);
}

uint16_t f32_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the payload's top bits, quiet
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  }
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// The file's bytes: a read-only mmap, or (where mmap is refused) a copy in memory.
struct SafetensorsFile::Mapping {
  const unsigned char* bytes = nullptr;
  size_t size = 0;
  void* mapped = nullptr;
  std::vector<unsigned char> copy;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (mapped != nullptr) ::munmap(mapped, size);
  }
};

SafetensorsFile open_safetensors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail("safetensors file", path, std::string("cannot be opened: ") + std::strerror(errno));
  }
  auto map = std::make_shared<SafetensorsFile::Mapping>();
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("safetensors file", path, "must be a regular file");
  }
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < 8) {
    ::close(fd);
    bad(path, "file size", std::to_string(map->size) + " bytes",
        "a safetensors file has at least the 8-byte header length; is it truncated?");
  }
  void* p = ::mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p != MAP_FAILED) {
    map->mapped = p;
    map->bytes = static_cast<const unsigned char*>(p);
  } else {  // fall back to reading the whole file
    map->copy.resize(map->size);
    size_t got = 0;
    while (got < map->size) {
      const ssize_t r =
          ::pread(fd, map->copy.data() + got, map->size - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        ::close(fd);
        fail("safetensors file", path, "cannot be read: " + std::string(std::strerror(errno)));
      }
      got += static_cast<size_t>(r);
    }
    map->bytes = map->copy.data();
  }
  ::close(fd);

  // 1. Header length.
  const uint64_t n = load<uint64_t>(map->bytes);
  const uint64_t after = map->size - 8;
  if (n > kMaxHeaderBytes || n > after) {
    bad(path, "header length", std::to_string(n),
        "must be at most " + std::to_string(std::min(kMaxHeaderBytes, after)) +
            " (100 MB, and the file has " + std::to_string(after) +
            " bytes after the length); is the file truncated or not safetensors?");
  }

  // 2. JSON object.
  const char* text = reinterpret_cast<const char*>(map->bytes + 8);
  json header;
  try {
    header = json::parse(text, text + n);
  } catch (const json::exception& e) {
    bad(path, "header", std::to_string(n) + " bytes",
        std::string("must be valid JSON: ") + e.what());
  }
  if (!header.is_object()) {
    bad(path, "header", std::string(header.type_name()), "must be a JSON object");
  }

  // 3. Entries.
  SafetensorsFile f;
  f.path_ = path;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) bad(path, "__metadata__", value.dump(), "must be an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          bad(path, "__metadata__ entry '" + mk + "'", mv.dump(), "must be a string");
        }
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(path, key, value));
  }

  // 4. Offsets tile the data region exactly.
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_coverage(path, f.tensors_, after - n);

  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  f.data_ = map->bytes + 8 + n;
  f.map_ = std::move(map);
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string known;
    size_t shown = 0;
    for (const auto& [k, _] : index_) {
      if (shown == 8) {
        known += ", ... (" + std::to_string(index_.size()) + " in all)";
        break;
      }
      known += (shown++ ? ", " : "") + k;
    }
    bad(path_, "tensor", "'" + name + "'",
        known.empty() ? std::string("not in the file, which holds no tensors")
                      : "not in the file, which holds: " + known);
  }
  return tensors_[it->second];
}

const unsigned char* SafetensorsFile::data(const TensorInfo& t) const {
  return data_ + t.begin;
}

namespace {
const TensorInfo& require_float(const std::string& path, const TensorInfo& t) {
  if (!tensor_dtype_is_float(t.dtype)) {
    bad(path, tensor_field(t.name, "dtype"), tensor_dtype_name(t.dtype),
        "must be a floating dtype (F32, F16, BF16, F64) here");
  }
  return t;
}
}  // namespace

std::vector<int64_t> SafetensorsFile::read_i64(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (t.dtype != TensorDtype::I64) {
    bad(path_, tensor_field(name, "dtype"), tensor_dtype_name(t.dtype), "must be I64 here");
  }
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load<int64_t>(data(t) + 8 * i);
  return out;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const TensorInfo& t = require_float(path_, info(name));
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert(t.dtype, data(t), out.size(), out.data());
  return out;
}

std::vector<double> SafetensorsFile::read_f64(const std::string& name) const {
  const TensorInfo& t = require_float(path_, info(name));
  std::vector<double> out(static_cast<size_t>(t.numel()));
  convert(t.dtype, data(t), out.size(), out.data());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::set<std::string> seen;
  uint64_t offset = 0;
  // F16/BF16 copies, made before the file is opened so that an overflow leaves nothing behind.
  std::vector<std::vector<uint16_t>> halves(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorRef& t = tensors[i];
    if (t.name.empty() || t.name == "__metadata__") {
      bad(path, "tensor name", "'" + t.name + "'", "must be non-empty and not __metadata__");
    }
    if (!seen.insert(t.name).second) {
      bad(path, "tensor name", "'" + t.name + "'", "must be unique; it is given twice");
    }
    for (int64_t d : t.shape) {
      if (d < 0) {
        bad(path, tensor_field(t.name, "shape"), shape_str(t.shape), "dimensions must be >= 0");
      }
    }
    const bool f64 = std::holds_alternative<std::span<const double>>(t.data);
    const bool i64 = std::holds_alternative<std::span<const int64_t>>(t.data);
    const size_t count = std::visit([](auto span) { return span.size(); }, t.data);
    const TensorDtype natural = f64 ? TensorDtype::F64 : i64 ? TensorDtype::I64 : TensorDtype::F32;
    const TensorDtype dtype = t.store.value_or(natural);
    if ((f64 || i64) ? dtype != natural
                     : (dtype == TensorDtype::F64 || dtype == TensorDtype::I64)) {
      bad(path, tensor_field(t.name, "dtype"), tensor_dtype_name(dtype),
          f64   ? "double data is written as F64"
          : i64 ? "int64 data is written as I64"
                : "float data is written as F32, F16 or BF16");
    }
    uint64_t bytes = 0;
    if (!byte_size(t.shape, static_cast<uint64_t>(tensor_dtype_size(dtype)), &bytes) ||
        bytes != count * static_cast<uint64_t>(tensor_dtype_size(dtype))) {
      bad(path, tensor_field(t.name, "data"), std::to_string(count) + " elements",
          "must hold product(shape) elements for shape " + shape_str(t.shape));
    }
    if (dtype == TensorDtype::F16 || dtype == TensorDtype::BF16) {
      const bool f16 = dtype == TensorDtype::F16;
      for (const float x : std::get<0>(t.data)) {
        const uint16_t h = f16 ? f32_to_f16(x) : f32_to_bf16(x);
        if (std::isfinite(x) && !std::isfinite(f16 ? f16_to_f32(h) : bf16_to_f32(h))) {
          bad(path, tensor_field(t.name, "data"), std::to_string(x),
              std::string("is too large for ") + tensor_dtype_name(dtype));
        }
        halves[i].push_back(h);
      }
    }
    header[t.name] = {{"dtype", tensor_dtype_name(dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    bad(path, "header", "(tensor names and metadata)", std::string("must be UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data then starts at an 8-byte boundary
  const uint64_t n = text.size();

  write_file_atomic(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!halves[i].empty()) {
        out.write(reinterpret_cast<const char*>(halves[i].data()),
                  static_cast<std::streamsize>(halves[i].size() * sizeof(uint16_t)));
        continue;
      }
      std::visit(
          [&](auto span) {
            out.write(reinterpret_cast<const char*>(span.data()),
                      static_cast<std::streamsize>(span.size_bytes()));
          },
          tensors[i].data);
    }
  });
}

}  // namespace kvlab
