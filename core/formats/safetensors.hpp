// The safetensors file format (https://github.com/huggingface/safetensors):
//   8 bytes     N, the header length, unsigned little-endian
//   N bytes     JSON object {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//               optional "__metadata__": {string: string}}, padded with spaces
//   the rest    tensor data, little-endian, C order; offsets are relative to the data's start
//
// The reader validates the whole header (sizes, JSON, dtypes, shapes, offsets that tile the data
// exactly) before any tensor data is touched, and reads tensors on demand from a read-only mmap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kvlab {

enum class TensorDtype { F32, F16, BF16, F64, I64 };
const char* tensor_dtype_name(TensorDtype d);  // "F32", "F16", "BF16", "F64", "I64"
bool tensor_dtype_is_float(TensorDtype d);     // all but I64
int tensor_dtype_size(TensorDtype d);          // bytes per element

struct TensorInfo {
  std::string name;
  TensorDtype dtype = TensorDtype::F32;
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t begin = 0;          // byte offsets into the data region, [begin, end)
  uint64_t end = 0;
  int64_t numel() const;  // product of shape (1 for a scalar)
};

// An open, validated safetensors file. Cheap to copy (copies share the mapping).
class SafetensorsFile {
 public:
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // in the order of their data in the file
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // The lookups below throw kvlab::Error naming the file and the tensor when it is absent.
  const TensorInfo& info(const std::string& name) const;
  const std::vector<int64_t>& shape(const std::string& name) const { return info(name).shape; }
  TensorDtype dtype(const std::string& name) const { return info(name).dtype; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's elements in C order, converted from any stored dtype (F16/BF16/F32 widen exactly;
  // F64 is rounded to float by read_f32). An I64 tensor is refused by name (weights are never
  // integers); read it with read_i64.
  std::vector<float> read_f32(const std::string& name) const;
  std::vector<double> read_f64(const std::string& name) const;
  // An I64 tensor's elements (token ids, positions); a floating tensor is refused by name.
  std::vector<int64_t> read_i64(const std::string& name) const;

 private:
  friend SafetensorsFile open_safetensors(const std::string& path);
  struct Mapping;
  const unsigned char* data(const TensorInfo& t) const;

  std::string path_;
  std::shared_ptr<const Mapping> map_;
  const unsigned char* data_ = nullptr;  // start of the data region in the mapping
  std::vector<TensorInfo> tensors_;      // sorted by offset
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Opens and validates `path`. Throws kvlab::Error naming the file, the tensor (if any), the field
// and the offending value for: a file shorter than 8 bytes, a header length over 100 MB or past
// the end of the file, invalid JSON or a header that is not an object, an entry without a valid
// dtype (F32, F16, BF16, F64, I64), shape (non-negative integers) or data_offsets ([begin, end],
// begin <= end), a byte size that differs from product(shape) * dtype size, and offsets that do
// not cover the data region exactly (holes, overlaps, trailing bytes, data past the end).
SafetensorsFile open_safetensors(const std::string& path);

// One tensor to write; the data is borrowed (C order) and must hold product(shape) elements.
struct TensorRef {
  using Data =
      std::variant<std::span<const float>, std::span<const double>, std::span<const int64_t>>;
  TensorRef(std::string n, std::vector<int64_t> s, Data d,
            std::optional<TensorDtype> as = std::nullopt)
      : name(std::move(n)), shape(std::move(s)), data(d), store(as) {}
  std::string name;
  std::vector<int64_t> shape;
  Data data;  // written as F32 / F64 / I64
  // float data may instead be stored as F16 or BF16, rounded to nearest, ties to even.
  std::optional<TensorDtype> store;
};

// Writes the tensors, in the order given, atomically (write_file_atomic). The header lists the
// entries sorted by name (JSON object order does not matter to readers) and is padded with spaces
// so the data starts at an 8-byte boundary. Throws kvlab::Error for an empty, repeated or reserved
// ("__metadata__") name, a negative dimension, data whose size differs from the shape's, a `store`
// dtype the data cannot take (double data is F64 only, int64 data I64 only), or a finite value that
// overflows its F16 or BF16 storage (|x| >= 65520 for F16); nothing is written then.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// IEEE half and bfloat16 bit patterns to float, exact (subnormals, infinities, NaN payloads).
float f16_to_f32(uint16_t bits);
float bf16_to_f32(uint16_t bits);
// float to IEEE half and bfloat16, rounded to nearest, ties to even (subnormals included); values
// past the largest finite one become infinities, NaN stays a (quiet) NaN. f32_to_f16(f16_to_f32(h))
// == h for every non-NaN pattern h, and the same for bfloat16.
uint16_t f32_to_f16(float x);
uint16_t f32_to_bf16(float x);

}  // namespace kvlab
