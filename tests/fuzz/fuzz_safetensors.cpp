// libFuzzer target: the safetensors reader (header length, JSON header, dtypes, shapes, offsets)
// on arbitrary bytes. Any kvlab::Error is an accepted rejection; a crash, sanitizer report or
// other exception is a bug. See docs/fuzzing.md.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.hpp"
#include "core/formats/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // open_safetensors reads a path (it memory-maps the file), so each input goes through a file
  // in /dev/shm (memory, not disk).
  static const std::string path =
      "/dev/shm/kvlab-fuzz-" + std::to_string(getpid()) + ".safetensors";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const kvlab::SafetensorsFile file = kvlab::open_safetensors(path);
    for (const std::string& name : file.names()) {
      const kvlab::TensorInfo& t = file.info(name);
      if (t.numel() <= (1 << 16)) {
        (void)file.read_f32(name);
        (void)file.read_f64(name);
      }
    }
  } catch (const kvlab::Error&) {
  }
  return 0;
}
