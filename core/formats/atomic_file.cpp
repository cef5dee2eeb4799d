#include "core/formats/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ios>
#include <streambuf>

#include "core/error.hpp"

namespace kvlab {
namespace {

// A write-only stream buffer over a POSIX file descriptor, so the data can be fsync'ed.
// Remembers the first errno of a failed write; the stream then goes bad.
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) { setp(buf_.data(), buf_.data() + buf_.size()); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n >= static_cast<std::streamsize>(buf_.size())) {  // large blocks skip the buffer
      if (!drain() || !write_all(s, static_cast<size_t>(n))) return 0;
      return n;
    }
    return std::streambuf::xsputn(s, n);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const size_t n = static_cast<size_t>(pptr() - pbase());
    setp(buf_.data(), buf_.data() + buf_.size());
    return write_all(buf_.data(), n);
  }
  bool write_all(const char* p, size_t n) {
    if (error_ != 0) return false;
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  int fd_;
  int error_ = 0;
  std::array<char, 1 << 16> buf_{};
};

[[noreturn]] void fail_write(const std::string& path, const std::string& what, int err) {
  fail("output file", path, what + (err != 0 ? std::string(": ") + std::strerror(err) : ""));
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  std::string tmp = path;  // built with += : GCC 12 warns falsely (-Wrestrict) on a + chain here
  tmp += ".tmp.";
  tmp += std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const std::string reason = std::strerror(errno);
    fail_write(path,
               "cannot create the temporary file " + tmp + ": " + reason +
                   " (its directory must exist and be writable)",
               0);
  }

  int err = 0;
  std::string what;
  try {
    FdBuf buf(fd);
    std::ostream out(&buf);
    out.exceptions(std::ios::goodbit);
    writer(out);
    out.flush();
    if (!out || buf.error() != 0) {
      err = buf.error();
      what = "cannot write " + tmp;
    } else if (::fsync(fd) != 0) {
      err = errno;
      what = "cannot flush " + tmp + " to disk";
    }
  } catch (const std::ios_base::failure& e) {  // `writer` turned on stream exceptions
    ::close(fd);
    std::remove(tmp.c_str());
    fail_write(path, "cannot write " + tmp + " (" + e.what() + ")", 0);
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0 && what.empty()) {
    err = errno;
    what = "cannot close " + tmp;
  }
  if (what.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    what = "cannot rename " + tmp + " over it";
  }
  if (!what.empty()) {
    std::remove(tmp.c_str());
    fail_write(path, what, err);
  }

  // Make the rename itself durable. A failure here leaves a complete file, so it is not an error.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace kvlab
