#include "session/builtin_models.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace kvlab {
namespace {

namespace fs = std::filesystem;

std::string exe_relative_models() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (exe.parent_path() / ".." / "share" / "kvlab" / "models").lexically_normal().string();
}

}  // namespace

std::string models_dir() {
  if (const char* env = std::getenv("KVLAB_MODELS"); env && *env) return env;
  std::error_code ec;
#ifdef KVLAB_MODELS_DIR
  if (fs::is_directory(KVLAB_MODELS_DIR, ec)) return KVLAB_MODELS_DIR;
#endif
  return exe_relative_models();
}

std::vector<BuiltinModel> builtin_models() {
  std::vector<BuiltinModel> out;
  const std::string dir = models_dir();
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && fs::is_regular_file(entry.path() / "config.json", ec)) {
      out.push_back({entry.path().filename().string(), entry.path().string()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BuiltinModel& a, const BuiltinModel& b) { return a.name < b.name; });
  return out;
}

std::string resolve_model(const std::string& model) {
  std::error_code ec;
  if (model.empty() || model.find('/') != std::string::npos || fs::exists(model, ec)) {
    return model;
  }
  for (const auto& m : builtin_models()) {
    if (m.name == model) return m.path;
  }
  return model;
}

}  // namespace kvlab
