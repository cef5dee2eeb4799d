// kvlab bench: speed of the reference engine on random weights (decode, prefill), and the
// machine's memory bandwidth (memory) to put the decode figures beside.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include <Eigen/Core>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/model_io.hpp"
#include "core/accounting.hpp"
#include "core/error.hpp"
#include "reference/engine.hpp"

namespace kvlab::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  ScheduleFlags schedule;
  std::string mode, model = "stories15m", plan = "standard";
  int threads = 1;
  int context = -1;  // decode: cache depth (default 0); prefill: prompt tokens (default 512)
  int tokens = 0;    // decode: tokens timed (default 32)
  int repeat = 3;    // best of
  bool json = false;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void run_memory(const BenchOptions& o) {
  // Sum of a 1 GiB float array, each thread a contiguous slice (Eigen's vectorised sum); best of
  // o.repeat. This is the read bandwidth a decode step can hope for.
  const long n = (1L << 30) / sizeof(float);
  std::vector<float> a(n, 1.0f);
  double best = 1e30, sink = 0;
  for (int r = 0; r < std::max(1, o.repeat); ++r) {
    const auto t0 = Clock::now();
    double total = 0;
#pragma omp parallel num_threads(o.threads) reduction(+ : total)
    {
      const long per = n / omp_get_num_threads(), first = per * omp_get_thread_num();
      total += Eigen::Map<const Eigen::VectorXf>(a.data() + first, per).sum();
    }
    best = std::min(best, seconds_since(t0));
    sink += total;
  }
  const double gbs = static_cast<double>(n) * sizeof(float) / best / 1e9;
  if (o.json) {
    std::cout << nlohmann::json{{"mode", "memory"},
                                {"threads", o.threads},
                                {"read_gb_s", gbs},
                                {"checksum", sink}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("memory read bandwidth: %.2f GB/s with %d thread(s) (1 GiB sum, best of %d)\n", gbs,
                o.threads, std::max(1, o.repeat));
  }
}

void run_bench(const BenchOptions& o) {
  if (o.threads < 1 || o.threads > 256)
    fail("--threads", std::to_string(o.threads), "must be in [1, 256]");
  if (o.repeat < 1 || o.repeat > 100)
    fail("--repeat", std::to_string(o.repeat), "must be in [1, 100]");
  if (o.mode == "memory") return run_memory(o);
  if (o.mode != "decode" && o.mode != "prefill") {
    fail("mode", o.mode, "must be decode, prefill or memory");
  }
  ModelConfig c = resolve_model_config(o.model);
  const KvPlan plan = KvPlan::parse(o.plan, c.num_hidden_layers);
  const bool decode = o.mode == "decode";
  const int context = o.context >= 0 ? o.context : (decode ? 0 : 512);
  const int tokens = o.tokens > 0 ? o.tokens : 32;
  if (context > (1 << 20) || (!decode && context < 1)) {
    fail("--context", std::to_string(context),
         std::string(decode ? "the cache depth" : "the prompt length") + " must be in [" +
             (decode ? "0" : "1") + ", 1048576]");
  }
  // Random weights: the shape may run past its trained length (stories15M has 256 positions;
  // RoPE is defined at any position), so the context grows to what the benchmark needs.
  c.max_position_embeddings = std::max(c.max_position_embeddings, context + tokens + 2);
  const auto w = ref::init_random<float>(c, plan, 1);
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.schedule = to_schedule(o.schedule);
  ref::Engine<float> e(w, eo);

  double best = 1e30;
  for (int r = 0; r < o.repeat; ++r) {
    e.reset();
    if (decode) {
      e.fill_random_cache(context);
      e.decode(1);  // warm-up step
      const auto t0 = Clock::now();
      for (int t = 0; t < tokens; ++t) e.decode((t * 31 + 7) % c.vocab_size);
      best = std::min(best, seconds_since(t0) / tokens);
    } else {
      std::vector<int> prompt(context);
      for (int t = 0; t < context; ++t) prompt[t] = (t * 31 + 7) % c.vocab_size;
      const auto t0 = Clock::now();
      e.prefill(prompt);
      best = std::min(best, seconds_since(t0) / context);
    }
  }
  const double tok_s = 1.0 / best;
  // Per decoded token: every weight matrix once (the embedding row aside; a tied classifier is
  // the embedding read in full), and every reader's bank at the mean depth of the run.
  const double weight_bytes =
      static_cast<double>(w.bytes()) -
      (c.tie_word_embeddings ? 0.0 : static_cast<double>(w.embed.size()) * sizeof(float));
  const double kv_bytes = decode ? static_cast<double>(kv_bytes_read_per_step(
                                       plan, c, context + 1 + tokens / 2, Dtype::f32))
                                 : 0.0;
  const double gbs = decode ? (weight_bytes + kv_bytes) * tok_s / 1e9 : 0.0;
  if (o.json) {
    nlohmann::json j = {{"mode", o.mode},
                        {"model", o.model},
                        {"plan", plan.to_string()},
                        {"threads", o.threads},
                        {"context", context},
                        {"tokens_per_s", tok_s},
                        {"weight_bytes_per_token", decode ? weight_bytes : 0.0},
                        {"kv_bytes_per_token", kv_bytes},
                        {"achieved_gb_s", gbs}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (decode) {
    std::printf(
        "decode  %-12s plan %-10s threads %d depth %4d: %7.1f tokens/s  (weights %s + KV "
        "%s read per token, %.1f GB/s)\n",
        o.model.c_str(), o.plan.c_str(), o.threads, context, tok_s,
        human_bytes(weight_bytes).c_str(), human_bytes(kv_bytes).c_str(), gbs);
  } else {
    std::printf("prefill %-12s plan %-10s threads %d prompt %4d: %7.1f tokens/s  (%.3f s)\n",
                o.model.c_str(), o.plan.c_str(), o.threads, context, tok_s, best * context);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Speed of the CPU reference on random weights");
  cmd->add_option("mode", o->mode, "decode | prefill | memory")->required();
  cmd->add_option("--model", o->model, "Model preset or config.json")->capture_default_str();
  cmd->add_option("--plan", o->plan, "KV plan")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  cmd->add_option("--context", o->context,
                  "decode: cache depth (default 0); prefill: prompt tokens (default 512)");
  cmd->add_option("--tokens", o->tokens, "decode: tokens timed (default 32)");
  cmd->add_option("--repeat", o->repeat, "Runs; the best is reported")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  add_schedule_options(cmd, o->schedule);
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace kvlab::cli
