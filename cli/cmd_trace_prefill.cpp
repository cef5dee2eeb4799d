// kvlab trace-prefill: watch LCKV's iterative prefill converge, one row per pass and target.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/model_io.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct TraceOptions {
  ScheduleFlags schedule;
  std::string tokenizer;
  std::string model, plan, prompt, tokens, text_file, precision = "f32";
  bool exact = false;
  bool json = false;
  int threads = 1;
};

template <typename S>
void trace_as(const TraceOptions& o) {
  auto m = load_model<S>(o.model, o.tokenizer);
  const ModelConfig& c = m.weights.config;

  const std::vector<int> toks =
      prompt_tokens(*m.tokenizer, m.weights.config.vocab_size, o.prompt, o.tokens, o.text_file);
  const int T = static_cast<int>(toks.size());
  if (o.schedule.token_by_token) {
    fail("--token-by-token", "true",
         "trace-prefill shows iterative passes; use --exact to compare");
  }
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.plan = plan_option(o.plan, c.num_hidden_layers);
  eo.schedule = to_schedule(o.schedule, /*iterative_default=*/true);
  ref::Engine<S> engine(m.weights, eo);
  const KvPlan& plan = engine.plan();
  const auto blocks = plan.cyclic_blocks();

  std::vector<S> exact_logits;
  if (o.exact && !blocks.empty()) {
    ref::EngineOptions xo = eo;
    xo.schedule.mode = ref::PrefillMode::token_by_token;
    ref::Engine<S> exact(m.weights, xo);
    exact_logits = exact.prefill(toks, true);
    for (int b = 0; b < exact.num_banks(); ++b) {
      auto held = exact.held_kv(b);
      if (held.cells != T) continue;  // a windowed bank: no full exact K/V to compare
      engine.set_exact_kv(b, std::move(held.k), std::move(held.v));
    }
  }
  RecordingObserver rec;
  engine.add_observer(&rec);
  const std::vector<S> logits = engine.prefill(toks, true);
  double logit_err = -1;
  if (!exact_logits.empty()) {
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      scale = std::max(scale, std::abs(static_cast<double>(exact_logits[i])));
      diff = std::max(diff, std::abs(static_cast<double>(logits[i] - exact_logits[i])));
    }
    logit_err = diff / scale;
  }

  if (o.json) {
    nlohmann::json j;
    j["map"] = plan.to_string();
    j["tokens"] = T;
    nlohmann::json cb = nlohmann::json::array();
    for (auto b : blocks) cb.push_back({b.first, b.last});
    j["cyclic_blocks"] = cb;
    j["passes_run"] = engine.passes_run();
    j["passes"] = nlohmann::json::array();
    for (const auto& e : rec.passes) j["passes"].push_back(prefill_pass_json(e));
    if (logit_err >= 0) j["logits_rel_error_vs_exact"] = logit_err;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("plan %s, %d tokens, %s\n", plan.to_string().c_str(), T, o.precision.c_str());
  if (blocks.empty()) {
    std::printf("no cyclic blocks: this plan has no upward edges and is encoded in one pass.\n");
    return;
  }
  std::printf("the targets' K/V start at zero; pass r makes tokens 0..r-1 exact.\n\n");
  std::printf(
      " block  pass  target  max|dK|     mean|dK|    max|dV|     mean|dV|    rel dK     "
      "rel dV     exact%s\n",
      o.exact ? "  err K      err V" : "");
  for (const auto& e : rec.passes) {
    std::printf(" %5d  %4d  %6d  %.3e   %.3e   %.3e   %.3e   %.3e  %.3e  %5d", e.block, e.pass,
                e.target_layer, e.max_abs_dk, e.mean_abs_dk, e.max_abs_dv, e.mean_abs_dv, e.rel_dk,
                e.rel_dv, e.tokens_exact);
    if (e.err_k >= 0) std::printf("  %.3e  %.3e", e.err_k, e.err_v);
    std::printf("%s\n", e.converged ? "  converged" : "");
  }
  std::printf("\npasses run per block:");
  for (int p : engine.passes_run()) std::printf(" %d", p);
  std::printf("\n");
  if (logit_err >= 0) {
    std::printf("logits vs token-by-token encoding: max relative error %.3e\n", logit_err);
  }
}

void run_trace(const TraceOptions& o) {
  if (o.precision == "f32") {
    trace_as<float>(o);
  } else if (o.precision == "f64") {
    trace_as<double>(o);
  } else {
    fail("--precision", o.precision, "must be f32 or f64");
  }
}

}  // namespace

void add_trace_prefill_command(CLI::App& app) {
  auto o = std::make_shared<TraceOptions>();
  auto* cmd = app.add_subcommand("trace-prefill",
                                 "Show LCKV's iterative prefill pass by pass (K/V deltas)");
  cmd->add_option("--model", o->model,
                  "Checkpoint: a kvlab or Hugging Face directory, or a llama2.c .bin")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: the checkpoint's own)");
  cmd->add_option("--plan", o->plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--prompt", o->prompt, "Prompt text");
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,2,3");
  cmd->add_option("--text-file", o->text_file, "Prompt from a file");
  cmd->add_option("--precision", o->precision, "f32 or f64")->capture_default_str();
  cmd->add_flag("--exact", o->exact, "Also encode token by token and show each pass's error");
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  add_schedule_options(cmd, o->schedule);
  cmd->callback([o] { run_trace(*o); });
}

}  // namespace kvlab::cli
