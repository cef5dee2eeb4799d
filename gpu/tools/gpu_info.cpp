// kvlab-gpu-info: one line per visible CUDA device (name, compute capability, memory, SMs, memory
// clock and bus width, estimated peak bandwidth), or "no CUDA device: <reason>".
// Exit status 0 in both cases; 1 only when a device answers but a query about it fails.
#include <cstdio>
#include <exception>
#include <string>

#include "core/error.hpp"
#include "gpu/device_info.hpp"

int main() {
  using namespace kvlab::gpu;
  std::printf("kvlab-gpu-info: %s\n", cuda_versions().c_str());
  std::string why;
  if (!cuda_available(&why)) {
    std::printf("no CUDA device: %s\n", why.c_str());
    return 0;
  }
  try {
    const auto devices = list_devices();
    std::printf("%-3s %-28s %-4s %10s %5s %10s %8s %14s\n", "#", "name", "cc", "memory", "SMs",
                "mem clock", "bus", "peak bandwidth");
    for (const DeviceInfo& d : devices) {
      const std::string cc = std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor);
      std::printf("%-3d %-28s %-4s %6.1f GiB %5d %6d MHz %4d bit %9.0f GB/s\n", d.index,
                  d.name.c_str(), cc.c_str(), static_cast<double>(d.total_memory) / (1 << 30),
                  d.sm_count, d.memory_clock_khz / 1000, d.memory_bus_width_bits,
                  d.peak_bandwidth / 1e9);
    }
    std::printf("peak bandwidth = 2 x memory clock x bus width / 8 (an estimate)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab-gpu-info: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
