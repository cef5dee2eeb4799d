// Each subcommand of `kvlab` registers itself on the application; one file per command.
#pragma once

#include <CLI/CLI.hpp>

namespace kvlab::cli {

void add_plan_command(CLI::App& app);
void add_simulate_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_init_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_ppl_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_trace_prefill_command(CLI::App& app);
void add_squeeze_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_corpus_command(CLI::App& app);
void add_grad_command(CLI::App& app);
void add_models_command(CLI::App& app);
void add_zoo_command(CLI::App& app);
void add_viz_command(CLI::App& app);
void add_dump_command(CLI::App& app);
void add_check_command(CLI::App& app);

// Every command but `demo` (the demo runs these through a fresh application, as if typed).
inline void add_work_commands(CLI::App& app) {
  add_plan_command(app);
  add_simulate_command(app);
  add_init_command(app);
  add_generate_command(app);
  add_forward_command(app);
  add_ppl_command(app);
  add_bench_command(app);
  add_trace_prefill_command(app);
  add_squeeze_command(app);
  add_eval_command(app);
  add_sweep_command(app);
  add_convert_command(app);
  add_train_command(app);
  add_corpus_command(app);
  add_grad_command(app);
  add_models_command(app);
  add_zoo_command(app);
  add_viz_command(app);
  add_dump_command(app);
  add_check_command(app);
}

}  // namespace kvlab::cli
