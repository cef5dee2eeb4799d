#include "cli/common.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "core/formats/config_json.hpp"
#include "reference/checkpoint.hpp"
#include "session/builtin_models.hpp"

namespace kvlab::cli {

ModelConfig resolve_model_config(const std::string& model) {
  namespace fs = std::filesystem;
  const std::string path = resolve_model(model);  // a built-in trained model by name
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "config.json", ec)) {
      fail("--model", model, "directory has no config.json");
    }
    return ref::checkpoint_config(path);
  }
  if (fs::is_regular_file(path, ec)) {
    if (fs::path(path).extension() == ".json") return load_config(path);
    return ref::checkpoint_config(path);  // a llama2.c .bin: its header
  }
  if (path.find('/') != std::string::npos) fail("--model", model, "does not exist");
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

std::string create_parent_directories(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (!p.has_filename()) p = p.parent_path();  // "a/b/" names the directory b
  const fs::path parent = p.parent_path();
  std::error_code ec;
  if (parent.empty() || fs::is_directory(parent, ec)) return "";
  fs::path top = parent;  // the topmost missing directory
  while (top.has_parent_path() && top.parent_path() != top &&
         !fs::exists(fs::symlink_status(top.parent_path(), ec))) {
    top = top.parent_path();
  }
  fs::create_directories(parent, ec);
  if (ec || !fs::is_directory(parent)) {
    fail(flag, path,
         "cannot create its directory " + parent.string() + ": " +
             (ec ? ec.message() : std::string("a file is in the way")));
  }
  return top.string();
}

void remove_created_directories(const std::string& top) {
  if (top.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  // Only directories left empty: remove_all would also take what another process put there.
  std::vector<fs::path> dirs;
  for (auto it = fs::recursive_directory_iterator(top, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path());
  }
  for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) fs::remove(*d, ec);  // fails unless empty
  fs::remove(top, ec);
}

void check_replace_output(const std::string& out, bool force) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(out, ec))) return;
  if (!force) fail("-o", out, "already exists (give --force to replace it)");
  if (fs::is_directory(out, ec) && !fs::is_empty(out, ec) &&
      !fs::exists(fs::path(out) / "config.json", ec)) {
    fail("-o", out,
         "is a directory that holds no checkpoint (no config.json): --force replaces only a "
         "checkpoint, a file or an empty directory");
  }
}

void write_via_temporary(const std::string& out,
                         const std::function<void(const std::string& tmp)>& write) {
  namespace fs = std::filesystem;
  check_output_directory("-o", out);
  fs::path path(out);
  if (!path.has_filename()) path = path.parent_path();  // "m/" names the directory m
  const fs::path tmp =
      path.parent_path() / (path.filename().string() + ".tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    write(tmp.string());
    if (fs::exists(fs::symlink_status(path, ec))) fs::remove_all(path);
    fs::rename(tmp, path);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    fail("-o", out, std::string("cannot write: ") + e.what());
  } catch (const Error& e) {
    fs::remove_all(tmp, ec);
    // The writer saw the temporary's name; the user asked for `out`.
    std::string message = e.what();
    const std::string t = tmp.string();
    for (std::size_t at; (at = message.find(t)) != std::string::npos;)
      message.replace(at, t.size(), out);
    throw Error(message);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

namespace {
bool g_stdout_mid_line = false;
}  // namespace

void set_stdout_mid_line(bool mid_line) {
  g_stdout_mid_line = mid_line;
}
bool stdout_mid_line() {
  return g_stdout_mid_line;
}

namespace {
int g_exit_status = 0;
}  // namespace
void set_exit_status(int status) {
  g_exit_status = status;
}
int exit_status() {
  return g_exit_status;
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

std::string default_train_tokenizer() {
#ifdef KVLAB_MODELS_DIR
  const std::string def = std::string(KVLAB_MODELS_DIR) + "/tokenizer.json";
#else
  const std::string def = "models/tokenizer.json";
#endif
  if (!std::filesystem::exists(def)) {
    fail("--tokenizer", "(none)",
         "the default " + def + " is missing: give --tokenizer byte or a tokenizer.json");
  }
  return def;
}

}  // namespace kvlab::cli
