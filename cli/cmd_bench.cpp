// kvlab bench: speed of the reference engine (decode, prefill) on any model the other commands
// take (a preset or config.json runs random weights), and the machine's memory bandwidth
// (memory) to put the decode figures beside.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct BenchArgs {
  RunArgs run;
  BenchSetup setup;
  bool json = false;
};

void run_memory(const BenchArgs& o) {
  const MemoryBench m = measure_read_bandwidth(o.run.threads, o.setup.repeat);
  if (o.json) {
    std::cout << nlohmann::json{{"mode", "memory"},
                                {"threads", m.threads},
                                {"read_gb_s", m.read_gb_s},
                                {"checksum", m.checksum}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("memory read bandwidth: %.2f GB/s with %d thread(s) (1 GiB sum, best of %d)\n",
                m.read_gb_s, m.threads, m.repeat);
  }
}

void run_bench(const BenchArgs& o) {
  if (o.setup.mode == "memory") return run_memory(o);
  const BenchSetup setup = o.setup.resolved();
  SessionOptions so = o.run.session_options();
  so.allow_random = true;
  so.min_positions = setup.positions_needed();
  Session session = Session::load(so);
  const BenchResult r = session.bench(setup);
  const std::string& model = o.run.model;
  const std::string plan = session.plan_spec();
  if (o.json) {
    nlohmann::json j = {{"mode", setup.mode},
                        {"model", model},
                        {"plan", session.plan().to_string()},
                        {"threads", o.run.threads},
                        {"context", setup.context},
                        {"tokens_per_s", r.tokens_per_s},
                        {"weight_bytes_per_token", r.weight_bytes_per_token},
                        {"kv_bytes_per_token", r.kv_bytes_per_token},
                        {"kv_dtype", dtype_name(session.kv_dtype())},
                        {"achieved_gb_s", r.achieved_gb_s}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (setup.decode()) {
    std::printf(
        "decode  %-12s plan %-10s threads %d depth %4d: %7.1f tokens/s  (weights %s + KV "
        "%s read per token, both at %s, %.1f GB/s)\n",
        model.c_str(), plan.c_str(), o.run.threads, setup.context, r.tokens_per_s,
        human_bytes(r.weight_bytes_per_token).c_str(), human_bytes(r.kv_bytes_per_token).c_str(),
        dtype_name(session.kv_dtype()).c_str(), r.achieved_gb_s);
  } else {
    std::printf("prefill %-12s plan %-10s threads %d prompt %4d: %7.1f tokens/s  (%.3f s)\n",
                model.c_str(), plan.c_str(), o.run.threads, setup.context, r.tokens_per_s,
                r.seconds_per_token * setup.context);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchArgs>();
  o->run.model = "stories15m";
  auto* cmd = app.add_subcommand(
      "bench", "Speed of the CPU reference (a preset or config.json: random weights)");
  cmd->add_option("mode", o->setup.mode, "decode | prefill | memory")->required();
  add_run_options(cmd, o->run, kSchedule | kTokenByToken);
  cmd->get_option("--model")->description(
      "Model preset or config.json (random weights), or a checkpoint as the other commands take");
  cmd->add_option("--context", o->setup.context,
                  "decode: cache depth (default 0); prefill: prompt tokens (default 512)");
  cmd->add_option("--tokens", o->setup.tokens, "decode: tokens timed (default 32)");
  cmd->add_option("--repeat", o->setup.repeat, "Runs; the best is reported")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, cmd] {
    // Unset, --context and --tokens are negative or 0 (the defaults); given, they must be sizes.
    if (cmd->count("--context") > 0 && o->setup.context < 0) {
      fail("--context", std::to_string(o->setup.context), "must be >= 0");
    }
    if (cmd->count("--tokens") > 0 && o->setup.tokens < 1) {
      fail("--tokens", std::to_string(o->setup.tokens), "must be >= 1");
    }
    run_bench(*o);
  });
}

}  // namespace kvlab::cli
