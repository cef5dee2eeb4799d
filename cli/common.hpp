// Shared helpers of the `kvlab` subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "core/config.hpp"

namespace kvlab::cli {

// Resolves --model: a built-in preset name, a directory holding config.json, or a config.json
// file. Throws kvlab::Error listing the presets when nothing matches.
ModelConfig resolve_model_config(const std::string& model);

// An output file's directory must exist (it is not created): throws kvlab::Error naming `flag` and
// `path` otherwise, before any work is done.
void check_output_directory(const std::string& flag, const std::string& path);

// "22528" -> "22.0 KiB" style, for human output (exact bytes are printed beside it).
std::string human_bytes(double bytes);
// Thousands separators: 1234567 -> "1,234,567".
std::string group_digits(std::int64_t v);

}  // namespace kvlab::cli
