// libFuzzer target: config.json parsing and validation (config_from_json) on arbitrary bytes.
// Invalid JSON and kvlab::Error are accepted rejections; anything else is a bug.
// See docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/formats/config_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr,
                                                 /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const kvlab::ModelConfig c = kvlab::config_from_json(j);
    (void)c.parameter_count();
    (void)kvlab::config_to_json(c);
  } catch (const kvlab::Error&) {
  }
  return 0;
}
