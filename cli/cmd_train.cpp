// kvlab train: train a preset model under a KV plan (session/train.hpp; docs/training.md). Parses
// flags, draws the progress (one line on a TTY, periodic lines otherwise) and prints the summary.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"
#include "reference/train/presets.hpp"
#include "session/train.hpp"

namespace kvlab::cli {
namespace {

struct TrainArgs {
  TrainSetup setup;
  std::string precision, tokenizer;
  long long seed = 1;
  double kv_loss = 0, recall = 0;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* kv_loss_opt = nullptr;
  CLI::Option* recall_opt = nullptr;
};

std::string duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  }
  return buf;
}

std::string val_text(double v) {
  if (v < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

void run_train(TrainArgs& a) {
  TrainSetup s = a.setup;
  if (!a.precision.empty()) s.precision = parse_precision(a.precision);
  if (a.seed_opt->count() > 0) {
    if (a.seed < 0) fail("--seed", std::to_string(a.seed), "must be >= 0");
    s.seed = static_cast<std::uint64_t>(a.seed);
  }
  if (a.kv_loss_opt->count() > 0) s.kv_loss = a.kv_loss;
  if (a.recall_opt->count() > 0) s.recall_fraction = a.recall;
  s.tokenizer = a.tokenizer;
  if (s.tokenizer.empty() && s.resume.empty()) s.tokenizer = default_train_tokenizer();
  const bool tty = ::isatty(::fileno(stdout)) != 0;
  std::int64_t every = 1;
  const auto on_start = [&](const TrainInfo& i) {
    std::printf(
        "train %s, plan %s (%s; %d of %d layers hold K/V), %d heads of %d (%d KV heads), %s, "
        "%.2f M parameters, vocab %d (%s)\n",
        i.preset.c_str(), i.plan.c_str(), i.plan_map.c_str(), i.kv_layers, i.layers, i.heads,
        i.head_dim, i.kv_heads, i.precision.c_str(), static_cast<double>(i.parameters) / 1e6,
        i.vocab, i.tokenizer.c_str());
    std::printf(
        "corpus %s: %s train / %s val tokens; batch %d x %d tokens, %lld steps%s\n",
        i.corpus_source.c_str(), group_digits(i.train_tokens).c_str(),
        group_digits(i.val_tokens).c_str(), i.batch, i.seq_len,
        static_cast<long long>(i.total_steps),
        i.start_step > 0 ? (", resumed after step " + std::to_string(i.start_step)).c_str() : "");
    every = std::max<std::int64_t>(1, i.total_steps / 20);
    std::fflush(stdout);
  };
  const auto on_progress = [&](const TrainProgress& p) {
    if (tty) {
      if (p.kind != TrainProgress::Kind::step && p.kind != TrainProgress::Kind::validation) return;
      std::printf("\r\033[K step %lld/%lld | loss %.4f | val %s | %.0f tok/s | ETA %s",
                  static_cast<long long>(p.step), static_cast<long long>(p.total_steps), p.loss,
                  val_text(p.val_loss).c_str(), p.tokens_per_second,
                  duration(p.eta_seconds).c_str());
      std::fflush(stdout);
      return;
    }
    if (p.kind == TrainProgress::Kind::validation) {
      std::printf("step %lld/%lld val_loss %.4f (best %.4f)\n", static_cast<long long>(p.step),
                  static_cast<long long>(p.total_steps), p.val_loss, p.best_val_loss);
    } else if (p.kind == TrainProgress::Kind::step &&
               (p.step % every == 0 || p.step == p.total_steps)) {
      std::printf("step %lld/%lld loss %.4f lr %.3g grad_norm %.3f %.0f tok/s ETA %s\n",
                  static_cast<long long>(p.step), static_cast<long long>(p.total_steps), p.loss,
                  p.lr, p.grad_norm, p.tokens_per_second, duration(p.eta_seconds).c_str());
    }
    std::fflush(stdout);
  };
  const TrainSummary r = train(s, on_start, on_progress);
  if (tty) std::printf("\n");
  std::printf("%s after %lld/%lld steps in %s (%.0f tokens/s)\n",
              r.stopped_early ? "stopped" : "done", static_cast<long long>(r.steps_done),
              static_cast<long long>(r.info.total_steps), duration(r.seconds).c_str(),
              r.tokens_per_second);
  std::printf("best val loss %.4f (perplexity %.2f) at step %lld; final train loss %.4f\n",
              r.best_val_loss, r.best_val_perplexity, static_cast<long long>(r.best_val_step),
              r.final_loss);
  std::printf("plan %s: KV %s bytes per token (f32), %s parameters\n", r.info.plan_map.c_str(),
              group_digits(r.info.kv_bytes_per_token).c_str(),
              group_digits(r.info.parameters).c_str());
  std::printf("checkpoints %s/best and %s/last; log %s/log.jsonl\n", r.out.c_str(), r.out.c_str(),
              r.out.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  TrainSetup& s = a->setup;
  auto* cmd = app.add_subcommand("train", "Train a preset model under a KV plan");
  std::string presets;
  for (const auto& p : ref::train::train_presets()) {
    if (!p.hidden) presets += (presets.empty() ? "" : ", ") + p.name + " (" + p.description + ")";
  }
  cmd->add_option("--preset", s.preset, "Model and run defaults: " + presets);
  cmd->add_option("--plan", s.plan,
                  "KV plan for the preset's layers (standard, cla:2, lckv:2, ...)");
  cmd->add_option("--heads", s.heads,
                  "Query heads (head_dim = hidden / heads); default: the preset's H");
  cmd->add_option("--kv-heads", s.kv_heads, "KV heads (GQA; 1 = MQA); default: --heads (MHA)");
  cmd->add_option("--steps", s.steps, "Optimizer steps (default: the preset's)");
  cmd->add_option("--tokens", s.tokens, "Train on this many tokens instead of --steps");
  cmd->add_option("--resume", s.resume,
                  "Continue the run in this directory from its last checkpoint");
  cmd->add_option("--text-file", s.text_file, "Train on this UTF-8 text instead of the fortunes");
  a->recall_opt =
      cmd->add_option("--recall-fraction", a->recall,
                      "Share of training rows that are recall examples (default: the preset's)");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "byte, or a Hugging Face tokenizer.json (default: models/tokenizer.json)");
  cmd->add_option("--train-passes", s.train_passes, "LCKV training passes m,b (default 7,2)");
  a->kv_loss_opt =
      cmd->add_option("--kv-loss", a->kv_loss, "Weight of the KV loss (default 0: off)");
  cmd->add_option("--lr", s.lr, "Peak learning rate (default: the preset's)");
  a->seed_opt =
      cmd->add_option("--seed", a->seed, "Seed of init, corpus split and batches (default 1)");
  cmd->add_option("--threads", s.threads, "Threads")->capture_default_str();
  cmd->add_option("--precision", a->precision, "f32 (default) or f64");
  cmd->add_option("--val-every", s.val_every, "Steps between validations (default: the preset's)");
  cmd->add_option("--checkpoint-every", s.checkpoint_every,
                  "Steps between writes of OUT/last (default: --val-every)");
  cmd->add_option("--stop-at", s.stop_at, "Stop after this step, checkpointed (tests)")->group("");
  cmd->add_option("-o,--out", s.out, "The run's directory (log.jsonl, last/, best/)")->required();
  cmd->callback([a, cmd] {
    // A value given is checked as given: --heads 0 / --kv-heads 0 are errors, not the defaults.
    for (const auto& [flag, value] :
         {std::pair{"--heads", a->setup.heads}, std::pair{"--kv-heads", a->setup.kv_heads}}) {
      if (cmd->count(flag) > 0 && value < 1) fail(flag, std::to_string(value), "must be >= 1");
    }
    run_train(*a);
  });
}

}  // namespace kvlab::cli
