// The trained models kvlab ships (models/ in the source tree; docs/training.md says how each was
// made): `--model tiny-standard` finds them by name, from any directory.
#pragma once

#include <string>
#include <vector>

namespace kvlab {

// Where the shipped models live: $KVLAB_MODELS when set, else the source tree's models/ (fixed at
// build time), else <directory of the running binary>/../share/kvlab/models. May not exist.
std::string models_dir();

struct BuiltinModel {
  std::string name;  // the directory's name, e.g. "tiny-standard"
  std::string path;  // models_dir()/name
};
// Every directory under models_dir() that holds a config.json, sorted by name.
std::vector<BuiltinModel> builtin_models();

// `model` itself when it names an existing file or directory or contains a '/'; else the path of
// the built-in model of that name when there is one; else `model` unchanged (a preset, or a path
// that the loader will name as missing).
std::string resolve_model(const std::string& model);

}  // namespace kvlab
