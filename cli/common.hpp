// Shared helpers of the `kvlab` subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "core/config.hpp"

namespace kvlab::cli {

// The one help text of --model (every command takes the same five forms).
inline constexpr const char* kModelHelp =
    "Model: a built-in trained model (kvlab models), a kvlab or Hugging Face directory, a "
    "llama2.c .bin, or a preset / config.json (random weights)";

// Resolves --model to its shape: a built-in trained model's name, a preset name, a checkpoint
// directory (kvlab or Hugging Face), a config.json file or a llama2.c .bin (its header). Throws
// kvlab::Error listing the presets when nothing matches.
ModelConfig resolve_model_config(const std::string& model);

// An output file's directory must exist (it is not created): throws kvlab::Error naming `flag` and
// `path` otherwise, before any work is done.
void check_output_directory(const std::string& flag, const std::string& path);

// Creates the missing directories above `path` (init -o a/b/c makes a/b): returns the topmost one
// it created ("" when none was missing), for remove_created_directories after a failure. Throws
// kvlab::Error naming `flag` and `path` when one cannot be made (a file in the way, permissions).
std::string create_parent_directories(const std::string& flag, const std::string& path);
// Removes what create_parent_directories created (nothing when `top` is empty), if still empty.
void remove_created_directories(const std::string& top);

// The one rule of the commands that write a model (init, convert): an existing `out` is refused
// unless `force`; even with --force only a file, an empty directory or a checkpoint directory (one
// holding config.json) is replaced, never another directory. Throws kvlab::Error naming -o.
void check_replace_output(const std::string& out, bool force);

// Writes `out` through a temporary sibling `<out>.tmp.<pid>` that `write` fills (a file or a
// directory), then removes an existing `out` (check_replace_output allowed it) and renames the
// temporary into place: a failure leaves neither the temporary nor a partial `out`.
void write_via_temporary(const std::string& out,
                         const std::function<void(const std::string& tmp)>& write);

// Set while stdout holds a line without its newline (generate's echoed prompt): main ends that
// line before it prints an error, so the error starts a line of its own.
void set_stdout_mid_line(bool mid_line);
bool stdout_mid_line();
// The status main returns when a command ends without an error (kvlab check: 1 when a tensor is
// out of tolerance); 0 unless a command sets it.
void set_exit_status(int status);
int exit_status();

// "22528" -> "22.0 KiB" style, for human output (exact bytes are printed beside it).
std::string human_bytes(double bytes);
// Thousands separators: 1234567 -> "1,234,567".
std::string group_digits(std::int64_t v);

// kvlab train's and zoo's default tokenizer: the source tree's models/tokenizer.json. Throws
// kvlab::Error naming --tokenizer when it is missing.
std::string default_train_tokenizer();

}  // namespace kvlab::cli
