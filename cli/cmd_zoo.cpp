// kvlab zoo: train every KV-sharing scheme under one budget and seed, and measure them
// (session/zoo.hpp; docs/zoo.md). Parses flags, prints progress and the table, draws the plot.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"
#include "reference/train/presets.hpp"
#include "session/zoo.hpp"

namespace kvlab::cli {
namespace {

struct ZooArgs {
  ZooSetup setup;
  std::string only;
  long long seed = 1;
  double recall = 0;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* recall_opt = nullptr;
  bool no_plot = false;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The plot (scripts/zoo-plot.py): drawn when /usr/bin/python3 has matplotlib, else the command.
void plot(const ZooResult& r) {
#ifdef KVLAB_SCRIPTS_DIR
  const std::string script = std::string(KVLAB_SCRIPTS_DIR) + "/zoo-plot.py";
  const std::string png = (std::filesystem::path(r.dir) / "zoo.png").string();
  const std::string cmd =
      "/usr/bin/python3 " + quote(script) + " " + quote(r.csv) + " -o " + quote(png);
  const bool have = std::filesystem::exists("/usr/bin/python3") &&
                    std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") == 0;
  if (have && std::system((cmd + " >/dev/null").c_str()) == 0) {
    std::printf("plot %s\n", png.c_str());
  } else {
    std::printf("plot: /usr/bin/python3 with matplotlib %s; draw it with\n  %s\n",
                have ? "failed" : "is not available", cmd.c_str());
  }
#else
  (void)r;
#endif
}

void run_zoo_command(ZooArgs& a) {
  ZooSetup s = a.setup;
  if (a.seed_opt->count() > 0) {
    if (a.seed < 0) fail("--seed", std::to_string(a.seed), "must be >= 0");
    s.seed = static_cast<std::uint64_t>(a.seed);
  }
  if (a.recall_opt->count() > 0) s.recall_fraction = a.recall;
  if (!a.only.empty()) {
    std::stringstream ss(a.only);
    for (std::string n; std::getline(ss, n, ',');) s.only.push_back(n);
    if (a.only.back() == ',') s.only.push_back("");
  }
  if (s.tokenizer.empty()) s.tokenizer = default_train_tokenizer();
  std::int64_t every = 1;
  const auto on_event = [&](const ZooEvent& e) {
    const std::string head =
        "[" + std::to_string(e.index + 1) + "/" + std::to_string(e.count) + "] " + e.entry->name;
    switch (e.kind) {
      case ZooEvent::Kind::entry_start:
        std::printf("%s: %s: %s%s\n", head.c_str(), e.entry->label.c_str(), e.entry->what.c_str(),
                    e.resumed ? " (resuming its run)" : "");
        break;
      case ZooEvent::Kind::train_start:
        every = std::max<std::int64_t>(1, e.info->total_steps / 10);
        std::printf(
            "%s: %d heads of %d, %d KV heads, %s, %d of %d layers hold K/V, %s bytes "
            "per token, %.2f M parameters, %lld steps%s\n",
            head.c_str(), e.info->heads, e.info->head_dim, e.info->kv_heads,
            e.info->plan_map.c_str(), e.info->kv_layers, e.info->layers,
            group_digits(e.info->kv_bytes_per_token).c_str(),
            static_cast<double>(e.info->parameters) / 1e6,
            static_cast<long long>(e.info->total_steps),
            e.info->start_step > 0
                ? (" (from step " + std::to_string(e.info->start_step) + ")").c_str()
                : "");
        break;
      case ZooEvent::Kind::train: {
        const TrainProgress& p = *e.progress;
        if (p.kind == TrainProgress::Kind::step &&
            (p.step % every == 0 || p.step == p.total_steps)) {
          std::printf("%s: step %lld/%lld loss %.4f val %s %.0f tok/s ETA %.0fs\n", head.c_str(),
                      static_cast<long long>(p.step), static_cast<long long>(p.total_steps), p.loss,
                      p.val_loss < 0 ? "-" : std::to_string(p.val_loss).substr(0, 6).c_str(),
                      p.tokens_per_second, p.eta_seconds);
        }
        break;
      }
      case ZooEvent::Kind::evaluating:
        std::printf("%s: measuring (prefill passes, passkey)\n", head.c_str());
        break;
      case ZooEvent::Kind::entry_done:
      case ZooEvent::Kind::entry_skipped: {
        const ZooRow& r = *e.row;
        auto share = [](double v) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "%.2f", v);
          return v < 0 ? std::string("n/a") : std::string(buf);
        };
        std::printf(
            "%s: %sval loss %.4f (ppl %.2f), %s KV bytes/token, %lld tok/s, %d prefill passes, "
            "passkey %s full / %s evicting\n",
            head.c_str(), e.kind == ZooEvent::Kind::entry_skipped ? "measured already: " : "",
            r.val_loss, r.val_ppl, group_digits(r.kv_bytes_per_token).c_str(),
            static_cast<long long>(std::llround(r.train_tokens_per_s)), r.prefill_passes,
            share(r.passkey_full).c_str(), share(r.passkey_evict).c_str());
        break;
      }
    }
    std::fflush(stdout);
  };
  const ZooResult r = run_zoo(s, on_event);
  std::printf("\n%s\n", zoo_markdown(r.rows, s.preset).c_str());
  std::printf("zoo: %zu entries in %s (%s, %s)\n", r.rows.size(), r.dir.c_str(), r.csv.c_str(),
              r.markdown.c_str());
  if (!a.no_plot) plot(r);
}

}  // namespace

void add_zoo_command(CLI::App& app) {
  auto a = std::make_shared<ZooArgs>();
  ZooSetup& s = a->setup;
  auto* cmd = app.add_subcommand(
      "zoo", "Train every KV-sharing scheme under one budget and compare them (docs/zoo.md)");
  std::string presets, names;
  for (const auto& p : ref::train::train_presets()) {
    if (!p.hidden) presets += (presets.empty() ? "" : ", ") + p.name;
  }
  for (const auto& e : zoo_entries("tiny")) names += (names.empty() ? "" : ", ") + e.name;
  cmd->add_option("--preset", s.preset, "Model shape and run defaults: " + presets)
      ->capture_default_str();
  cmd->add_option("--steps", s.steps, "Optimizer steps per entry (default: the preset's)");
  cmd->add_option("--tokens", s.tokens, "Training tokens per entry instead of --steps");
  a->seed_opt = cmd->add_option("--seed", a->seed, "Seed of every entry (default 1)");
  a->recall_opt = cmd->add_option("--recall-fraction", a->recall,
                                  "Share of training rows that are recall examples");
  cmd->add_option("--threads", s.threads, "Threads")->capture_default_str();
  cmd->add_option("--only", a->only, "Comma-separated entries (default: all): " + names);
  cmd->add_option("--train-passes", s.train_passes,
                  "LCKV entries' training passes m,b (default: kvlab train's 7,2)");
  cmd->add_option("--text-file", s.text_file, "Train on this UTF-8 text instead of the fortunes");
  cmd->add_option("--tokenizer", s.tokenizer,
                  "byte, or a Hugging Face tokenizer.json (default: models/tokenizer.json)");
  cmd->add_option("--passkey-examples", s.passkey_examples, "Passkey prompts per budget")
      ->capture_default_str();
  cmd->add_flag("--no-plot", a->no_plot, "Do not draw zoo.png");
  cmd->add_option("-o,--out", s.out, "The zoo's directory (a run per entry, zoo.csv, zoo.md)")
      ->required();
  cmd->callback([a] { run_zoo_command(*a); });
}

}  // namespace kvlab::cli
