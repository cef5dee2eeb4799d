// Shared by `kvlab eval` and `kvlab sweep`: one task run under one plan, policy and budget.
#pragma once

#include <cstdint>
#include <string>

#include "cli/model_io.hpp"
#include "reference/tasks.hpp"

namespace kvlab::cli {

struct EvalSetup {
  std::string task = "passkey";  // passkey | mqar | ppl
  std::string plan;              // empty: the checkpoint's
  std::string policy = "full";
  std::string budget;   // tokens or a fraction of the context; empty: everything
  std::string squeeze;  // "f0,f3" (empty: off)
  std::string positions = "absolute";
  std::string text_file;        // ppl
  int n = 4;                    // examples
  int length = 0;               // context tokens (0: a task default that fits the model)
  int pairs = 16, queries = 8;  // mqar
  std::uint64_t seed = 0;
  int threads = 1;
};

struct EvalResult {
  int correct = 0, scored = 0;
  double nll = 0;
  double kv_bytes_held = 0;  // mean over examples, when the queries begin
  double kv_bytes_full = 0;  // the same context with nothing evicted
  double accuracy() const { return scored ? static_cast<double>(correct) / scored : 0; }
  double perplexity() const;
};

// The task options shared by eval and sweep (--task, --plan, --squeeze, --n, ...).
void add_eval_options(CLI::App* cmd, EvalSetup& setup);

// Validates everything (named errors) and runs the examples.
EvalResult run_eval(LoadedModel<float>& model, const EvalSetup& setup);

}  // namespace kvlab::cli
