// kvlab trace-prefill: watch LCKV's iterative prefill converge, one row per pass and target.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/run_options.hpp"

namespace kvlab::cli {
namespace {

struct TraceArgs {
  RunArgs run;
  bool exact = false;
  bool json = false;
};

void run_trace(const TraceArgs& o) {
  const Prompt input = o.run.prompt_input();
  Session session = load_session(o.run);
  const TraceReport t = session.trace_prefill(session.tokens_of(input), o.exact);
  if (o.json) {
    nlohmann::json j;
    j["map"] = t.map;
    j["tokens"] = t.tokens;
    nlohmann::json cb = nlohmann::json::array();
    for (auto b : t.blocks) cb.push_back({b.first, b.last});
    j["cyclic_blocks"] = cb;
    j["passes_run"] = t.passes_run;
    j["pass_limit"] = t.pass_limit;
    // Per block: it stopped below the limit because pass T made every token exact.
    nlohmann::json early = nlohmann::json::array();
    for (int p : t.passes_run) early.push_back(p == t.tokens && p < t.pass_limit);
    j["stopped_when_exact"] = early;
    j["passes"] = nlohmann::json::array();
    for (const auto& e : t.passes) j["passes"].push_back(prefill_pass_json(e));
    if (t.logits_rel_error >= 0) j["logits_rel_error_vs_exact"] = t.logits_rel_error;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("plan %s, %d tokens, %s\n", t.map.c_str(), t.tokens,
              precision_name(session.precision()));
  if (t.blocks.empty()) {
    std::printf("no cyclic blocks: this plan has no upward edges and is encoded in one pass.\n");
    return;
  }
  std::printf("the targets' K/V start at zero; pass r makes tokens 0..r-1 exact.\n\n");
  std::printf(
      " block  pass  target  max|dK|     mean|dK|    max|dV|     mean|dV|    rel dK     "
      "rel dV     exact%s\n",
      o.exact ? "  err K      err V" : "");
  for (const auto& e : t.passes) {
    std::printf(" %5d  %4d  %6d  %.3e   %.3e   %.3e   %.3e   %.3e  %.3e  %5d", e.block, e.pass,
                e.target_layer, e.max_abs_dk, e.mean_abs_dk, e.max_abs_dv, e.mean_abs_dv, e.rel_dk,
                e.rel_dv, e.tokens_exact);
    if (e.err_k >= 0) std::printf("  %.3e  %.3e", e.err_k, e.err_v);
    std::printf("%s\n", e.converged ? "  converged" : "");
  }
  std::printf("\npasses run per block:");
  for (int p : t.passes_run) std::printf(" %d", p);
  std::printf(" (at most %d)\n", t.pass_limit);
  for (std::size_t b = 0; b < t.passes_run.size(); ++b) {
    if (t.passes_run[b] != t.tokens || t.passes_run[b] >= t.pass_limit) continue;
    // Exact only if the block's input was (an earlier block under --converge may stop sooner).
    int exact = t.tokens;
    for (const auto& e : t.passes) {
      if (e.block == static_cast<int>(b) && e.pass == t.passes_run[b]) {
        exact = std::min(exact, e.tokens_exact);
      }
    }
    std::printf(
        "block %zu stopped early after %d of at most %d passes: pass r fixes tokens 0..r-1, "
        "so more passes would change nothing (%s)\n",
        b, t.passes_run[b], t.pass_limit,
        exact == t.tokens ? "every token is exact"
                          : "an earlier block's output was not exact, so neither is this");
  }
  if (t.logits_rel_error >= 0) {
    std::printf("logits vs token-by-token encoding: max relative error %.3e\n", t.logits_rel_error);
  }
}

}  // namespace

void add_trace_prefill_command(CLI::App& app) {
  auto o = std::make_shared<TraceArgs>();
  auto* cmd = app.add_subcommand("trace-prefill",
                                 "Show LCKV's iterative prefill pass by pass (K/V deltas)");
  add_run_options(cmd, o->run, kPrompt | kTextFile | kSchedule);
  // No --token-by-token here: it has no passes to show (--exact compares with it). The passes are
  // an upper bound: a block stops once every token is exact.
  cmd->get_option("--passes")
      ->description(
          "At most N iterative passes per cyclic block (default 9); a block stops after T passes "
          "for a T-token prompt, when every token is exact");
  cmd->add_flag("--exact", o->exact, "Also encode token by token and show each pass's error");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_trace(*o); });
}

}  // namespace kvlab::cli
