// Shared by `kvlab eval` and `kvlab sweep`: the run options and the task options (--task, --n,
// --length, ...), registered in one place.
#pragma once

#include "cli/run_options.hpp"

namespace kvlab::cli {

// The shared run options (with --positions and --squeeze, plus `which`) and the task's.
void add_eval_options(CLI::App* cmd, RunArgs& run, EvalSetup& setup, unsigned which = 0);

}  // namespace kvlab::cli
