// safetensors: round trips, F16/BF16 conversion against hand-computed values, a named error for
// every class of bad file, an independent Python reader, and atomic writes that never leave a
// partial file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "core/formats/safetensors.hpp"

namespace fs = std::filesystem;
using kvlab::TensorDtype;
using kvlab::TensorRef;

namespace {

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("kvlab_st_" + std::to_string(::getpid()) + "_" +
                                         info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and raw data bytes.
std::string raw_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string u16_bytes(std::initializer_list<uint16_t> v) {
  std::string s;
  for (uint16_t x : v) {
    s += static_cast<char>(x & 0xff);
    s += static_cast<char>(x >> 8);
  }
  return s;
}

// Every file in `dir` whose name contains ".tmp.".
std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

// Expects open_safetensors(path) to throw a kvlab::Error containing every fragment.
void expect_open_error(const std::string& path, std::initializer_list<std::string> fragments) {
  try {
    kvlab::open_safetensors(path);
    ADD_FAILURE() << "should have been rejected: " << path;
  } catch (const kvlab::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    for (const std::string& f : fragments) {
      EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nexpected: " << f;
    }
  }
}

bool python_available() {
  const std::string py = KVLAB_PYTHON;
  return !py.empty() && py.find("NOTFOUND") == std::string::npos;
}

}  // namespace

// ---- round trips ---------------------------------------------------------------------------

TEST(Safetensors, RoundTripF32AndF64InGivenOrder) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<float> w = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-45f};  // incl. a subnormal
  const std::vector<float> scalar = {42.0f};
  const std::vector<float> empty;
  const std::vector<double> d = {0.1, -1e300, 3.141592653589793};
  kvlab::write_safetensors(path,
                           {{"z.weight", {2, 3}, std::span<const float>(w)},
                            {"a.scalar", {}, std::span<const float>(scalar)},
                            {"m.empty", {0, 7}, std::span<const float>(empty)},
                            {"b.f64", {3}, std::span<const double>(d)}},
                           {{"format", "pt"}, {"kvlab", "test"}});

  const std::string bytes = slurp(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data must start at an 8-byte boundary";
  EXPECT_EQ(bytes.size(), 8 + n + (6 + 1) * 4 + 3 * 8);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_TRUE(temp_files(dir.path()).empty());

  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"z.weight", "a.scalar", "m.empty", "b.f64"}));
  EXPECT_TRUE(f.has("z.weight"));
  EXPECT_FALSE(f.has("nope"));
  EXPECT_EQ(f.shape("z.weight"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.shape("a.scalar"), std::vector<int64_t>{});
  EXPECT_EQ(f.shape("m.empty"), (std::vector<int64_t>{0, 7}));
  EXPECT_EQ(f.dtype("z.weight"), TensorDtype::F32);
  EXPECT_EQ(f.dtype("b.f64"), TensorDtype::F64);
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"kvlab", "test"}}));

  const std::vector<float> got = f.read_f32("z.weight");
  ASSERT_EQ(got.size(), w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(w[i])) << i;
  }
  EXPECT_EQ(f.read_f32("a.scalar"), scalar);
  EXPECT_TRUE(f.read_f32("m.empty").empty());
  EXPECT_EQ(f.read_f64("b.f64"), d);
  EXPECT_EQ(f.read_f64("z.weight")[1], -2.25);
  EXPECT_EQ(f.read_f32("b.f64")[0], 0.1f);  // F64 rounded to float
  EXPECT_EQ(f.info("b.f64").end - f.info("b.f64").begin, 24u);
}

TEST(Safetensors, I64RoundTripsAndIsNeverReadAsFloats) {
  // kvlab dump's positions and token ids; weights are never integers.
  TempDir dir;
  const std::string path = dir.file("ids.safetensors");
  const std::vector<int64_t> ids = {0, -1, int64_t{1} << 40, 7};
  const std::vector<float> w = {1.5f};
  kvlab::write_safetensors(path, {{"w", {1}, std::span<const float>(w)},
                                  {"ids", {2, 2}, std::span<const int64_t>(ids)}});
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  EXPECT_EQ(f.dtype("ids"), TensorDtype::I64);
  EXPECT_EQ(f.read_i64("ids"), ids);
  EXPECT_FALSE(kvlab::tensor_dtype_is_float(TensorDtype::I64));
  auto expect_error = [&](auto fn, const std::string& fragment) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const kvlab::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error([&] { f.read_f32("ids"); }, "tensor 'ids' dtype = I64");
  expect_error([&] { f.read_f64("ids"); }, "must be a floating dtype");
  expect_error([&] { f.read_i64("w"); }, "tensor 'w' dtype = F32");
  expect_error(
      [&] {
        kvlab::write_safetensors(dir.file("bad.safetensors"),
                                 {{"ids", {4}, std::span<const int64_t>(ids), TensorDtype::F32}});
      },
      "int64 data is written as I64");
}

TEST(Safetensors, CopiesShareTheMappingAndOutliveTheOriginal) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::vector<float> w = {1, 2, 3};
  kvlab::write_safetensors(path, {{"w", {3}, std::span<const float>(w)}});
  std::optional<kvlab::SafetensorsFile> copy;
  {
    const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
    copy = f;
  }
  EXPECT_EQ(copy->read_f32("w"), w);
}

TEST(Safetensors, OverwriteReplacesTheFile) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::vector<float> a = {1, 2, 3}, b = {4, 5};
  kvlab::write_safetensors(path, {{"a", {3}, std::span<const float>(a)}});
  kvlab::write_safetensors(path, {{"b", {2}, std::span<const float>(b)}});
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  EXPECT_EQ(f.names(), std::vector<std::string>{"b"});
  EXPECT_EQ(f.read_f32("b"), b);
  EXPECT_TRUE(f.metadata().empty());
}

// ---- F16 / BF16 ----------------------------------------------------------------------------

TEST(Safetensors, F16ToF32HandComputed) {
  using kvlab::f16_to_f32;
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x3555), 1365.0f / 4096.0f);         // (1 + 341/1024) * 2^-2
  EXPECT_EQ(f16_to_f32(0xb266), -1638.0f / 8192.0f);        // -(1 + 614/1024) * 2^-3
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);                  // largest finite
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(0x0000)), 0x00000000u);
  EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfe00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));  // signalling NaN stays NaN, payload kept
  EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(0x7c01)), 0x7f802000u);
}

TEST(Safetensors, F16ToF32AllBitPatternsMatchTheDefinition) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int sign = (h >> 15) ? -1 : 1;
    const int exp = static_cast<int>((h >> 10) & 0x1f);
    const int mant = static_cast<int>(h & 0x3ff);
    const float got = kvlab::f16_to_f32(static_cast<uint16_t>(h));
    if (exp == 31) {
      if (mant == 0) {
        EXPECT_EQ(got, sign * std::numeric_limits<float>::infinity());
      } else {
        EXPECT_TRUE(std::isnan(got)) << h;
      }
      continue;
    }
    const double want = exp == 0 ? sign * std::ldexp(static_cast<double>(mant), -24)
                                 : sign * std::ldexp(1024.0 + mant, exp - 25);
    ASSERT_EQ(static_cast<double>(got), want) << "bits 0x" << std::hex << h;
    ASSERT_EQ(std::signbit(got), sign < 0) << h;
  }
}

TEST(Safetensors, Bf16ToF32HandComputed) {
  using kvlab::bf16_to_f32;
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x3eaa), 85.0f / 256.0f);               // (1 + 42/128) * 2^-2
  EXPECT_EQ(bf16_to_f32(0x7f7f), std::ldexp(255.0f, 127 - 7));  // largest finite
  EXPECT_EQ(bf16_to_f32(0x0080), std::numeric_limits<float>::min());
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0f, -133));    // smallest subnormal
  EXPECT_EQ(bf16_to_f32(0x007f), std::ldexp(127.0f, -133));  // largest subnormal
  EXPECT_EQ(std::bit_cast<uint32_t>(bf16_to_f32(0x8000)), 0x80000000u);
  EXPECT_EQ(bf16_to_f32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bf16_to_f32(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7f81)));
}

TEST(Safetensors, ReadsF16AndBf16Tensors) {
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  const std::string header = R"({"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}})";
  spit(path, raw_file(header, u16_bytes({0x3c00, 0xc000, 0x0001, 0x7c00}) +
                                  u16_bytes({0x3f80, 0x3eaa, 0xff80})));
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  EXPECT_EQ(f.dtype("h"), TensorDtype::F16);
  EXPECT_EQ(f.dtype("b"), TensorDtype::BF16);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"h", "b"}));
  const std::vector<float> h = f.read_f32("h");
  EXPECT_EQ(h, (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24),
                                   std::numeric_limits<float>::infinity()}));
  const std::vector<double> h64 = f.read_f64("h");
  EXPECT_EQ(h64[2], std::ldexp(1.0, -24));
  EXPECT_EQ(f.read_f32("b"),
            (std::vector<float>{1.0f, 85.0f / 256.0f, -std::numeric_limits<float>::infinity()}));
}

TEST(Safetensors, F32ToF16AndBf16InvertEveryPattern) {
  for (uint32_t h = 0; h <= 0xffffu; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float half = kvlab::f16_to_f32(bits);
    const float bfloat = kvlab::bf16_to_f32(bits);
    if (std::isnan(half)) {
      EXPECT_TRUE(std::isnan(kvlab::f16_to_f32(kvlab::f32_to_f16(half)))) << h;
    } else {
      ASSERT_EQ(kvlab::f32_to_f16(half), bits) << h;
    }
    if (std::isnan(bfloat)) {
      EXPECT_TRUE(std::isnan(kvlab::bf16_to_f32(kvlab::f32_to_bf16(bfloat)))) << h;
    } else {
      ASSERT_EQ(kvlab::f32_to_bf16(bfloat), bits) << h;
    }
  }
}

TEST(Safetensors, F32ToF16AndBf16RoundToNearestEven) {
  using kvlab::f32_to_bf16;
  using kvlab::f32_to_f16;
  const auto p2 = [](int e) { return std::ldexp(1.0f, e); };
  // Halfway between 1 and 1 + 2^-10: ties go to the even 1; a hair above goes up.
  EXPECT_EQ(f32_to_f16(1.0f + p2(-11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + p2(-11) + p2(-23)), 0x3c01);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * p2(-11)), 0x3c02);  // tie between 0x3c01 and 0x3c02: even
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the tie with 65536 rounds to infinity
  EXPECT_EQ(f32_to_f16(p2(-25)), 0x0000);   // half the smallest subnormal: tie to even 0
  EXPECT_EQ(f32_to_f16(3 * p2(-25)), 0x0002);
  EXPECT_EQ(f32_to_f16(p2(-14) - p2(-26)), 0x0400);  // rounds up into the smallest normal
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(1.0f + p2(-8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * p2(-8)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(Safetensors, WritesF16AndBf16StorageAndRefusesOverflow) {
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  const std::vector<float> w = {1.0f, -0.333333f, 1e-6f, 300.0f};
  kvlab::write_safetensors(path, {{"h", {2, 2}, std::span<const float>(w), TensorDtype::F16},
                                  {"b", {4}, std::span<const float>(w), TensorDtype::BF16},
                                  {"f", {4}, std::span<const float>(w)}});
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  EXPECT_EQ(f.dtype("h"), TensorDtype::F16);
  EXPECT_EQ(f.dtype("b"), TensorDtype::BF16);
  EXPECT_EQ(f.dtype("f"), TensorDtype::F32);
  EXPECT_EQ(f.info("h").end - f.info("h").begin, 8u);
  const std::vector<float> h = f.read_f32("h");
  const std::vector<float> b = f.read_f32("b");
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(h[i], kvlab::f16_to_f32(kvlab::f32_to_f16(w[i])));
    EXPECT_NEAR(h[i], w[i], std::abs(w[i]) * std::ldexp(1.0, -11) + std::ldexp(1.0, -25));
    EXPECT_EQ(b[i], kvlab::bf16_to_f32(kvlab::f32_to_bf16(w[i])));
    EXPECT_NEAR(b[i], w[i], std::abs(w[i]) * std::ldexp(1.0, -8));
  }

  const std::string big_path = dir.file("big.safetensors");
  const std::vector<float> big = {1.0f, 70000.0f};
  try {
    kvlab::write_safetensors(big_path, {{"w", {2}, std::span<const float>(big), TensorDtype::F16}});
    FAIL() << "70000 must not fit F16";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("70000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("F16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(big_path));
  const std::vector<double> d = {1.0};
  EXPECT_THROW(kvlab::write_safetensors(big_path,
                                        {{"d", {1}, std::span<const double>(d), TensorDtype::F16}}),
               kvlab::Error);
  EXPECT_FALSE(fs::exists(big_path));
}

// ---- bad files: each names the file and the problem ------------------------------------------

TEST(Safetensors, RejectsMissingFile) {
  TempDir dir;
  expect_open_error(dir.file("absent.safetensors"), {"cannot be opened"});
}

TEST(Safetensors, RejectsFileShorterThanTheLength) {
  TempDir dir;
  const std::string path = dir.file("short.safetensors");
  spit(path, "abc");
  expect_open_error(path, {"file size = 3 bytes", "truncated"});
  spit(path, "");
  expect_open_error(path, {"file size = 0 bytes"});
}

TEST(Safetensors, RejectsHeaderLengthPastTheFile) {
  TempDir dir;
  const std::string path = dir.file("len.safetensors");
  spit(path, le64(1ull << 40) + "{}");
  expect_open_error(path, {"header length = 1099511627776", "at most 2"});
  spit(path, le64(200'000'000) + std::string(16, ' '));
  expect_open_error(path, {"header length = 200000000", "100 MB"});
}

TEST(Safetensors, RejectsTruncatedFile) {
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  const std::vector<float> w(10, 1.0f);
  kvlab::write_safetensors(path, {{"w", {10}, std::span<const float>(w)}});
  std::string bytes = slurp(path);
  spit(path, bytes.substr(0, bytes.size() - 4));  // cut inside the data
  expect_open_error(path, {"tensor 'w' data_offsets = [0, 40]", "truncated"});
  spit(path, bytes.substr(0, 20));  // cut inside the header
  expect_open_error(path, {"header length", "truncated"});
}

TEST(Safetensors, RejectsInvalidJson) {
  TempDir dir;
  const std::string path = dir.file("json.safetensors");
  spit(path, raw_file(R"({"w": {"dtype": "F32", )", ""));
  expect_open_error(path, {"header", "must be valid JSON"});
  spit(path, raw_file(R"([1, 2])", ""));
  expect_open_error(path, {"header = array", "JSON object"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  TempDir dir;
  const std::string path = dir.file("dtype.safetensors");
  spit(path, raw_file(R"({"ids":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                      std::string(8, '\0')));
  expect_open_error(path, {"tensor 'ids' dtype = \"I32\"", "F32, F16, BF16, F64"});
  spit(path, raw_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' dtype = (absent)"});
}

TEST(Safetensors, RejectsMalformedShapeAndOffsets) {
  TempDir dir;
  const std::string path = dir.file("shape.safetensors");
  spit(path, raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                      std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' shape = [-2]", "non-negative integers"});
  spit(path, raw_file(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
                      std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' shape", "non-negative integers"});
  spit(path, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})",
                      std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' data_offsets = [0,4,8]", "two non-negative integers"});
  spit(path,
       raw_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' data_offsets = [8, 0]", "begin must not exceed end"});
  spit(path, raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],)"
                      R"("data_offsets":[0,8]}})",
                      std::string(8, '\0')));
  expect_open_error(path, {"tensor 'w' shape", "overflows"});
  spit(path, raw_file(R"({"w":[1,2]})", ""));
  expect_open_error(path, {"tensor 'w' = [1,2]", "must be an object"});
  spit(path, raw_file(R"({"__metadata__":{"n":3}})", ""));
  expect_open_error(path, {"__metadata__ entry 'n' = 3", "must be a string"});
}

TEST(Safetensors, RejectsShapeThatDisagreesWithOffsets) {
  TempDir dir;
  const std::string path = dir.file("mismatch.safetensors");
  spit(path,
       raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_open_error(path,
                    {"tensor 'w' data_offsets = [0, 8] (8 bytes)", "12 bytes for shape [3] F32"});
}

TEST(Safetensors, RejectsHole) {
  TempDir dir;
  const std::string path = dir.file("hole.safetensors");
  spit(path, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                      std::string(12, '\0')));
  expect_open_error(path, {"tensor 'b' data_offsets = [8, 12]", "hole", "[4, 8)"});
  spit(path,
       raw_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')));
  expect_open_error(path, {"tensor 'b'", "hole", "[0, 4)"});
}

TEST(Safetensors, RejectsOverlap) {
  TempDir dir;
  const std::string path = dir.file("overlap.safetensors");
  spit(path, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      std::string(12, '\0')));
  expect_open_error(path, {"tensor 'b' data_offsets = [4, 12]", "overlaps tensor 'a'"});
}

TEST(Safetensors, RejectsTrailingBytes) {
  TempDir dir;
  const std::string path = dir.file("trailing.safetensors");
  spit(path,
       raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(7, '\0')));
  expect_open_error(path, {"data region = 7 bytes", "3 trailing bytes"});
}

TEST(Safetensors, MissingTensorLookupNamesTheTensor) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::vector<float> w = {1, 2};
  kvlab::write_safetensors(path, {{"model.norm.weight", {2}, std::span<const float>(w)}});
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(path);
  for (auto lookup : {+[](const kvlab::SafetensorsFile& g) { g.read_f32("lm_head.weight"); },
                      +[](const kvlab::SafetensorsFile& g) { g.read_f64("lm_head.weight"); },
                      +[](const kvlab::SafetensorsFile& g) { g.shape("lm_head.weight"); }}) {
    try {
      lookup(f);
      ADD_FAILURE() << "missing tensor accepted";
    } catch (const kvlab::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path + ": tensor = 'lm_head.weight'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
    }
  }
}

// ---- the writer ----------------------------------------------------------------------------

TEST(Safetensors, WriterRejectsBadTensors) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  const std::vector<float> w = {1, 2, 3};
  auto expect_write_error = [&](const std::vector<TensorRef>& t, const std::string& fragment) {
    try {
      kvlab::write_safetensors(path, t);
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const kvlab::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(temp_files(dir.path()).empty());
  };
  expect_write_error({{"w", {2, 2}, std::span<const float>(w)}},
                     "tensor 'w' data = 3 elements is invalid: must hold product(shape) elements "
                     "for shape [2, 2]");
  expect_write_error({{"w", {3}, std::span<const float>(w)}, {"w", {3}, std::span<const float>(w)}},
                     "tensor name = 'w' is invalid: must be unique");
  expect_write_error({{"", {3}, std::span<const float>(w)}}, "tensor name = ''");
  expect_write_error({{"__metadata__", {3}, std::span<const float>(w)}},
                     "tensor name = '__metadata__'");
  expect_write_error({{"w", {-1, -3}, std::span<const float>(w)}}, "tensor 'w' shape = [-1, -3]");
}

TEST(Safetensors, WriteToUnwritablePathThrowsAndLeavesNothing) {
  const std::vector<float> w = {1, 2, 3};
  const std::string path = "/proc/kvlab_nope/model.safetensors";
  try {
    kvlab::write_safetensors(path, {{"w", {3}, std::span<const float>(w)}});
    FAIL() << "write under /proc accepted";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("output file = " + path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
}

// An independent reader (Python's struct, json and numpy) loads what the writer wrote.
TEST(Safetensors, ReadableByAnIndependentPythonReader) {
  ASSERT_TRUE(python_available())
      << "no python3 found at configure time (scripts/setup.sh installs it)";
  TempDir dir;
  const std::string path = dir.file("py.safetensors");
  const std::vector<float> w = {1.5f, -2.0f, 0.25f, 8.0f, -0.125f, 3.0f};
  const std::vector<double> d = {0.1, 1e-300};
  kvlab::write_safetensors(
      path, {{"w", {2, 3}, std::span<const float>(w)}, {"d", {2}, std::span<const double>(d)}},
      {{"format", "pt"}});
  const std::string script = dir.file("check.py");
  spit(script, R"PY(
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert (8 + n) % 8 == 0, n
header = json.loads(raw[8:8 + n].decode("utf-8"))
data = raw[8 + n:]
assert header.pop("__metadata__") == {"format": "pt"}
types = {"F32": "<f4", "F64": "<f8"}
def load(name):
    e = header[name]
    b, e_ = e["data_offsets"]
    return np.frombuffer(data[b:e_], dtype=types[e["dtype"]]).reshape(e["shape"])
w, d = load("w"), load("d")
assert w.dtype == np.float32 and w.shape == (2, 3), (w.dtype, w.shape)
assert (w == np.array([[1.5, -2.0, 0.25], [8.0, -0.125, 3.0]], dtype=np.float32)).all(), w
assert d.dtype == np.float64 and d.tolist() == [0.1, 1e-300], d
ends = sorted(tuple(e["data_offsets"]) for e in header.values())
assert ends[0][0] == 0 and ends[-1][1] == len(data) and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
print("ok")
)PY");
  const std::string out = dir.file("out.txt");
  const std::string cmd =
      std::string(KVLAB_PYTHON) + " " + script + " " + path + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << slurp(out);
  EXPECT_EQ(slurp(out), "ok\n");
}

// ---- atomic writes ----------------------------------------------------------------------------

TEST(AtomicFile, WritesAndReplaces) {
  TempDir dir;
  const std::string path = dir.file("a.txt");
  kvlab::write_file_atomic(path, [](std::ostream& out) { out << "first"; });
  EXPECT_EQ(slurp(path), "first");
  kvlab::write_file_atomic(path, [](std::ostream& out) { out << "second, longer"; });
  EXPECT_EQ(slurp(path), "second, longer");
  const std::string big(1 << 20, 'x');  // larger than the stream buffer
  kvlab::write_file_atomic(path, [&](std::ostream& out) {
    out << 'a';
    out.write(big.data(), static_cast<std::streamsize>(big.size()));
    out << 'b';
  });
  EXPECT_EQ(slurp(path), "a" + big + "b");
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(AtomicFile, MissingDirectoryThrowsNamingThePath) {
  TempDir dir;
  for (const std::string& path :
       {dir.file("no/such/dir/x.bin"), std::string("/proc/kvlab_nope/x")}) {
    try {
      kvlab::write_file_atomic(path, [](std::ostream& out) { out << "data"; });
      ADD_FAILURE() << "accepted " << path;
    } catch (const kvlab::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("output file = " + path), std::string::npos) << msg;
      EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(dir.file("no")));
}

TEST(AtomicFile, FailedRenameRemovesTheTemporaryFile) {
  TempDir dir;
  const std::string path = dir.file("occupied");
  fs::create_directories(fs::path(path) / "child");  // a non-empty directory cannot be replaced
  try {
    kvlab::write_file_atomic(path, [](std::ostream& out) { out << "data"; });
    ADD_FAILURE() << "renamed over a directory";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot rename"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(AtomicFile, ThrowingWriterKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("keep.txt");
  kvlab::write_file_atomic(path, [](std::ostream& out) { out << "old"; });
  EXPECT_THROW(kvlab::write_file_atomic(path,
                                        [](std::ostream& out) {
                                          out << "half of the new";
                                          kvlab::fail("x", "1", "test");
                                        }),
               kvlab::Error);
  EXPECT_EQ(slurp(path), "old");
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(AtomicFile, StreamExceptionsBecomeNamedErrors) {
  TempDir dir;
  const std::string path = dir.file("s.txt");
  try {
    kvlab::write_file_atomic(path, [](std::ostream& out) {
      out.exceptions(std::ios::badbit | std::ios::failbit);
      out.setstate(std::ios::badbit);
    });
    ADD_FAILURE() << "a bad stream was accepted";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("output file = " + path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(AtomicFile, BadStreamStateIsAnError) {
  TempDir dir;
  const std::string path = dir.file("b.txt");
  EXPECT_THROW(
      kvlab::write_file_atomic(path, [](std::ostream& out) { out.setstate(std::ios::failbit); }),
      kvlab::Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(temp_files(dir.path()).empty());
}
