// What CUDA devices this process can see, and whether it can see any at all.
// Plain C++ (compiled by the host compiler, linked against the CUDA runtime).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kvlab::gpu {

struct DeviceInfo {
  int index = 0;                   // CUDA device ordinal
  std::string name;                // e.g. "NVIDIA H200"
  int cc_major = 0, cc_minor = 0;  // compute capability, e.g. 9.0
  std::size_t total_memory = 0;    // global memory, bytes
  int sm_count = 0;                // streaming multiprocessors
  int memory_clock_khz = 0;        // peak memory clock, kHz (cudaDevAttrMemoryClockRate)
  int memory_bus_width_bits = 0;   // global memory bus width, bits
  double peak_bandwidth = 0;       // bytes/s, estimated by peak_bandwidth_estimate()
};

// True when cudaGetDeviceCount succeeds and finds at least one device. Otherwise false, and `*why`
// (when not null) receives the reason: CUDA's error string and name (e.g. "no CUDA-capable device
// is detected (cudaErrorNoDevice)"; without a driver it is an error, not a count of zero), or
// "cudaGetDeviceCount found 0 devices".
bool cuda_available(std::string* why = nullptr);

// Every visible device, in ordinal order; empty when cuda_available() is false. A CUDA error while
// querying a device that does answer throws kvlab::Error (see gpu/cuda_check.hpp).
std::vector<DeviceInfo> list_devices();

// Peak DRAM bandwidth in bytes/s from the memory clock and bus width, counting two transfers per
// clock (the formula of CUDA's bandwidthTest sample): 2 * clock * bus_width / 8. An estimate: the
// figure on the data sheet can differ by a few percent; measured copies reach roughly 80-90 %.
double peak_bandwidth_estimate(int memory_clock_khz, int memory_bus_width_bits);

// "CUDA runtime 13.0, driver 12.8" ("driver none" when no driver is installed).
std::string cuda_versions();

}  // namespace kvlab::gpu
