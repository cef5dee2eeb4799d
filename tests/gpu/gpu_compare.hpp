// Shared by the gpu-labelled kernel suites (llm.c style): device outputs surrounded by guard bytes
// and filled with a NaN canary before the kernel runs, so an unwritten element and a write outside
// the output both fail; comparisons that fail on any NaN; seeded random inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu/cuda_check.hpp"
#include "gpu/device_buffer.hpp"

namespace kvlab::gpu::testing {

constexpr std::size_t kGuard = 67;  // elements of guard before and after an output
constexpr unsigned char kGuardByte = 0xA5;

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// A device output of n elements with guard regions; poison() before each run, then check().
template <typename T>
class GuardedOutput {
 public:
  // `guard` elements on each side: the default 67 leaves the output misaligned for vector loads;
  // a multiple of 16 keeps it 64-byte aligned (to reach a kernel's vector path).
  explicit GuardedOutput(std::size_t n, std::size_t guard = kGuard)
      : n_(n), g_(guard), buf_(guard + n + guard) {
    poison();
  }
  T* data() { return buf_.data() + g_; }
  std::size_t size() const { return n_; }

  // Guard bytes | canary (NaN for floating types, 0xA5 bytes otherwise) | guard bytes.
  void poison() {
    std::vector<T> canvas(g_ + n_ + g_);
    std::memset(canvas.data(), kGuardByte, canvas.size() * sizeof(T));
    if constexpr (std::is_floating_point_v<T>)
      std::fill_n(canvas.begin() + g_, n_, std::numeric_limits<T>::quiet_NaN());
    buf_.upload(canvas.data(), canvas.size());
  }
  // Waits for the device, downloads the output into `out` and returns "" when both guard regions
  // kept their bytes, else where the first stray write landed.
  std::string fetch(std::vector<T>& out) {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> image(g_ + n_ + g_);
    buf_.download(image.data(), image.size());
    out.assign(image.begin() + g_, image.begin() + g_ + n_);
    const auto* bytes = reinterpret_cast<const unsigned char*>(image.data());
    const std::size_t guard_bytes = g_ * sizeof(T), after = (g_ + n_) * sizeof(T);
    for (std::size_t b = 0; b < guard_bytes; ++b) {
      if (bytes[b] != kGuardByte)
        return "write before the output, " + std::to_string(guard_bytes - b) + " bytes before it";
      if (bytes[after + b] != kGuardByte)
        return "write after the output, " + std::to_string(b) + " bytes past its end";
    }
    return "";
  }

 private:
  std::size_t n_, g_;
  DeviceBuffer<T> buf_;
};

// "" when every got[i] is a number with |got - want| <= atol + rtol·|want| (and infinities
// equal), else a count and the first bad element. NaN in `got` always fails (an unwritten canary).
template <typename G, typename W>
std::string compare(const std::vector<G>& got, const std::vector<W>& want, double atol,
                    double rtol) {
  if (got.size() != want.size())
    return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
  std::size_t bad = 0;
  std::string first;
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    bool ok;
    if (std::isnan(g) || std::isnan(w)) {
      ok = false;
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      const double err = std::abs(g - w);
      ok = err <= atol + rtol * std::abs(w);
      worst = std::max(worst, err);
    }
    if (ok) continue;
    if (bad++ == 0)
      first = "[" + std::to_string(i) + "]: got " + num(g) +
              (std::isnan(g) ? " (NaN: unwritten?)" : "") + ", want " + num(w);
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " of " + std::to_string(want.size()) + " wrong (atol " + num(atol) +
         ", rtol " + num(rtol) + "), first " + first;
}

// Uniform values in [lo, hi), seeded.
inline std::vector<float> uniform(std::size_t n, unsigned seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(u(rng));
  return v;
}

// A device copy of a host vector.
template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  d.upload(host.data(), host.size());
  return d;
}

// A device array's contents.
template <typename T>
std::vector<T> to_host(const DeviceBuffer<T>& d) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> h(d.size());
  d.download(h.data(), h.size());
  return h;
}

}  // namespace kvlab::gpu::testing
