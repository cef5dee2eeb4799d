// .npy: round trips for both dtypes and awkward shapes, a named error per bad file, and NumPy
// itself (Debian's python3-numpy) loading what we write and writing what we read.
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
#include "core/formats/npy.hpp"

namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("kvlab_npy_" + std::to_string(::getpid()) + "_" +
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

// A v1.0 file with the given header dict text (padded to 64 bytes) and raw data.
std::string npy_file(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + '\x01' + '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

void expect_read_error(const std::string& path, std::initializer_list<std::string> fragments) {
  try {
    kvlab::read_npy(path);
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

// Runs `script` with KVLAB_PYTHON and the given arguments; returns its exit status and output.
int run_python(const TempDir& dir, const std::string& script, const std::string& args,
               std::string* output) {
  const std::string py = dir.file("script.py"), out = dir.file("python_out.txt");
  spit(py, script);
  const std::string cmd = std::string(KVLAB_PYTHON) + " " + py + " " + args + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  *output = cmd + "\n" + slurp(out);
  return rc;
}

}  // namespace

TEST(Npy, RoundTripBothDtypesAndAwkwardShapes) {
  TempDir dir;
  const std::vector<std::vector<int64_t>> shapes = {{2, 3}, {5}, {}, {0, 4}, {3, 1, 7}, {1}};
  for (const auto& shape : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> f(static_cast<size_t>(n));
    std::vector<double> d(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      f[i] = 0.5f * static_cast<float>(i) - 3.0f;
      d[i] = 1.0 / (3.0 + static_cast<double>(i));
    }
    const std::string pf = dir.file("f.npy"), pd = dir.file("d.npy");
    kvlab::write_npy(pf, std::span<const float>(f), shape);
    kvlab::write_npy(pd, std::span<const double>(d), shape);

    for (const std::string& p : {pf, pd}) {
      const std::string bytes = slurp(p);
      const size_t header_len = static_cast<unsigned char>(bytes[8]) |
                                static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
      EXPECT_EQ((10 + header_len) % 64, 0u) << "data must start at a 64-byte boundary";
      EXPECT_EQ(bytes[10 + header_len - 1], '\n');
    }
    const kvlab::NpyArray af = kvlab::read_npy(pf);
    EXPECT_EQ(af.descr, "<f4");
    EXPECT_EQ(af.shape, shape);
    ASSERT_EQ(af.values.size(), f.size());
    for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(af.values[i], static_cast<double>(f[i]));
    const kvlab::NpyArray ad = kvlab::read_npy(pd);
    EXPECT_EQ(ad.descr, "<f8");
    EXPECT_EQ(ad.shape, shape);
    EXPECT_EQ(ad.values, d);
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 2);
}

TEST(Npy, HeaderIsWhatNumpyWrites) {
  TempDir dir;
  const std::string path = dir.file("h.npy");
  const std::vector<float> f(6, 1.0f);
  kvlab::write_npy(path, std::span<const float>(f), {2, 3});
  const std::string bytes = slurp(path);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::string header = dict + std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  ASSERT_EQ(bytes.size(), 128u + 24u);
  EXPECT_EQ(bytes.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));  // 0x76 = 118
  EXPECT_EQ(bytes.substr(10, 118), header);

  const std::vector<double> one = {2.5};
  kvlab::write_npy(path, std::span<const double>(one), {1});
  EXPECT_NE(slurp(path).find("'shape': (1,), }"), std::string::npos);  // a 1-tuple has a comma
  kvlab::write_npy(path, std::span<const double>(one), {});
  EXPECT_NE(slurp(path).find("'shape': (), }"), std::string::npos);
}

TEST(Npy, WriterRejectsSizeMismatchAndUnwritablePath) {
  TempDir dir;
  const std::vector<float> f(5, 1.0f);
  const std::string path = dir.file("x.npy");
  try {
    kvlab::write_npy(path, std::span<const float>(f), {2, 3});
    ADD_FAILURE() << "size mismatch accepted";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": data = 5 elements is invalid: must hold "
                                                "product(shape) = 6 elements for shape (2, 3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(kvlab::write_npy(path, std::span<const float>(f), {-5}), kvlab::Error);
  EXPECT_FALSE(fs::exists(path));
  const std::string nowhere = "/proc/kvlab_nope/logits.npy";
  try {
    kvlab::write_npy(nowhere, std::span<const float>(f), {5});
    ADD_FAILURE() << "write under /proc accepted";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("output file = " + nowhere), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(nowhere));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Npy, ReaderRejectsBadFiles) {
  TempDir dir;
  const std::string path = dir.file("bad.npy");
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string eight(8, '\0');

  spit(path, npy_file(dict, eight));
  EXPECT_EQ(kvlab::read_npy(path).values, (std::vector<double>{0.0, 0.0}));  // the baseline

  spit(path, "PK\x03\x04 not numpy at all");
  expect_read_error(path, {"magic", "\\x93NUMPY"});
  std::string v3 = npy_file(dict, eight);
  v3[6] = '\x03';
  spit(path, v3);
  expect_read_error(path, {"version = 3.0", "1.0 or 2.0"});
  spit(path, npy_file(dict, eight).substr(0, 40));
  expect_read_error(path, {"header length", "past the end"});
  spit(path, npy_file(dict, eight.substr(0, 6)));
  expect_read_error(path, {"data = 6 bytes", "2 elements of <f4 for shape (2,)"});
  spit(path, npy_file(dict, eight + "xx"));
  expect_read_error(path, {"data = 10 bytes"});
  spit(path, npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", eight));
  expect_read_error(path, {"descr = '<i4'", "'<f4' or '<f8'"});
  spit(path, npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eight));
  expect_read_error(path, {"descr = '>f4'"});
  spit(path, npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", eight));
  expect_read_error(path, {"fortran_order = True", "C order"});
  spit(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", eight));
  expect_read_error(path, {"header", "non-negative integer"});
  spit(path, npy_file("{'descr': '<f4', 'shape': (2,), }", eight));
  expect_read_error(path, {"header", "must define 'descr', 'fortran_order' and 'shape'"});
  spit(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ", eight));
  expect_read_error(path, {"header", "expects ',' or '}'"});
  expect_read_error(dir.file("absent.npy"), {"cannot be opened"});
}

// NumPy loads what we write: both dtypes, awkward shapes, and special values, bit for bit.
TEST(Npy, NumpyLoadsWhatWeWrite) {
  ASSERT_TRUE(python_available())
      << "no python3 found at configure time (scripts/setup.sh installs it)";
  TempDir dir;
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> f = {1.0f, -0.0f, 1e-45f, 3.4028235e38f, -inf, 0.1f};
  std::vector<double> d(3 * 1 * 5);
  for (size_t i = 0; i < d.size(); ++i) d[i] = std::sqrt(static_cast<double>(i)) - 1.5;
  const std::vector<double> scalar = {-7.25};
  kvlab::write_npy(dir.file("f.npy"), std::span<const float>(f), {2, 3});
  kvlab::write_npy(dir.file("d.npy"), std::span<const double>(d), {3, 1, 5});
  kvlab::write_npy(dir.file("s.npy"), std::span<const double>(scalar), {});
  const std::string script = R"PY(
import sys
import numpy as np
d = sys.argv[1]
f = np.load(d + "/f.npy")
assert f.dtype == np.float32 and f.shape == (2, 3) and f.flags.c_contiguous, (f.dtype, f.shape)
want = np.array([[1.0, -0.0, 1e-45], [3.4028235e38, -np.inf, 0.1]], dtype=np.float32)
assert f.tobytes() == want.tobytes(), f
g = np.load(d + "/d.npy")
assert g.dtype == np.float64 and g.shape == (3, 1, 5), (g.dtype, g.shape)
assert (g.ravel() == np.sqrt(np.arange(15.0)) - 1.5).all(), g
s = np.load(d + "/s.npy")
assert s.dtype == np.float64 and s.shape == () and s == -7.25, s
print("ok")
)PY";
  std::string output;
  EXPECT_EQ(run_python(dir, script, dir.path().string(), &output), 0) << output;
  EXPECT_NE(output.find("\nok\n"), std::string::npos) << output;
}

// We read what NumPy writes.
TEST(Npy, ReadsWhatNumpyWrites) {
  ASSERT_TRUE(python_available())
      << "no python3 found at configure time (scripts/setup.sh installs it)";
  TempDir dir;
  const std::string script = R"PY(
import sys
import numpy as np
d = sys.argv[1]
np.save(d + "/a.npy", (np.arange(24, dtype=np.float32) / 8 - 1).reshape(2, 3, 4))
np.save(d + "/b.npy", np.array([np.pi, -np.e, 1e-310]))
np.save(d + "/c.npy", np.float64(4.5))
np.save(d + "/e.npy", np.zeros((0, 3), dtype=np.float32))
)PY";
  std::string output;
  ASSERT_EQ(run_python(dir, script, dir.path().string(), &output), 0) << output;

  const kvlab::NpyArray a = kvlab::read_npy(dir.file("a.npy"));
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 4}));
  ASSERT_EQ(a.values.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(a.values[i], i / 8.0 - 1.0);
  const kvlab::NpyArray b = kvlab::read_npy(dir.file("b.npy"));
  EXPECT_EQ(b.descr, "<f8");
  EXPECT_EQ(b.values, (std::vector<double>{M_PI, -M_E, 1e-310}));
  const kvlab::NpyArray c = kvlab::read_npy(dir.file("c.npy"));
  EXPECT_TRUE(c.shape.empty());
  EXPECT_EQ(c.values, std::vector<double>{4.5});
  const kvlab::NpyArray e = kvlab::read_npy(dir.file("e.npy"));
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(e.values.empty());
}
