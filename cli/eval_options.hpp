// Shared by `kvlab eval` and `kvlab sweep`: the run options and the task options (--task, --n,
// --length, ...), registered in one place.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/run_options.hpp"

namespace kvlab::cli {

// The shared run options (with --positions and --squeeze, plus `which`) and the task's.
void add_eval_options(CLI::App* cmd, RunArgs& run, EvalSetup& setup, unsigned which = 0);

// The fields `eval --json` and every row of `sweep --json` share (each adds its "examples").
nlohmann::json eval_result_json(const std::string& task, const std::string& plan,
                                const std::string& map, const std::string& policy,
                                const std::string& budget, const std::string& squeeze,
                                const EvalResult& r, const std::string& kv_dtype);

}  // namespace kvlab::cli
