#include "cli/common.hpp"

#include <cstdio>
#include <filesystem>

#include "core/error.hpp"
#include "core/formats/config_json.hpp"

namespace kvlab::cli {

ModelConfig resolve_model_config(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(model, ec)) {
    const fs::path cfg = fs::path(model) / "config.json";
    if (!fs::exists(cfg, ec)) fail("--model", model, "directory has no config.json");
    return load_config(cfg.string());
  }
  if (fs::is_regular_file(model, ec)) return load_config(model);
  return find_model_preset(model).config;
}

void check_output_directory(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    fail(flag, path, "its directory " + parent.string() + " does not exist");
  }
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string group_digits(std::int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(i, ",");
  return (v < 0 ? "-" : "") + s;
}

}  // namespace kvlab::cli
