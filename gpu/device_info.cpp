// Device queries through the CUDA runtime API (host code only: no kernels here, so g++ builds it).
#include "gpu/device_info.hpp"

#include <cuda_runtime_api.h>

#include <string>
#include <utility>
#include <vector>

#include "gpu/cuda_check.hpp"

namespace kvlab::gpu {

bool cuda_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // leave no stale error behind for later checks
    if (why) *why = std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) + ")";
    return false;
  }
  if (count <= 0) {
    if (why) *why = "cudaGetDeviceCount found 0 devices";
    return false;
  }
  if (why) why->clear();
  return true;
}

double peak_bandwidth_estimate(int memory_clock_khz, int memory_bus_width_bits) {
  return 2.0 * static_cast<double>(memory_clock_khz) * 1e3 *
         (static_cast<double>(memory_bus_width_bits) / 8.0);
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  if (!cuda_available(nullptr)) return out;
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, d));
    DeviceInfo info;
    info.index = d;
    info.name = p.name;
    info.cc_major = p.major;
    info.cc_minor = p.minor;
    info.total_memory = p.totalGlobalMem;
    info.sm_count = p.multiProcessorCount;
    // CUDA 13 dropped cudaDeviceProp::memoryClockRate; the attribute query works on 11 to 13.
    CUDA_CHECK(cudaDeviceGetAttribute(&info.memory_clock_khz, cudaDevAttrMemoryClockRate, d));
    CUDA_CHECK(
        cudaDeviceGetAttribute(&info.memory_bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, d));
    info.peak_bandwidth =
        peak_bandwidth_estimate(info.memory_clock_khz, info.memory_bus_width_bits);
    out.push_back(std::move(info));
  }
  return out;
}

std::string cuda_versions() {
  auto dotted = [](int v) {
    return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  };
  int runtime = 0, driver = 0;
  std::string s = "CUDA runtime ";
  s += cudaRuntimeGetVersion(&runtime) == cudaSuccess ? dotted(runtime) : std::string("unknown");
  // cudaDriverGetVersion succeeds with 0 when no driver is installed.
  const bool have_driver = cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0;
  (void)cudaGetLastError();
  s += ", driver ";
  s += have_driver ? dotted(driver) : std::string("none");
  return s;
}

}  // namespace kvlab::gpu
