// What `kvlab squeeze` and `kvlab trace-prefill` compute: SqueezeAttention's analysis of a prompt
// and LCKV's iterative prefill pass by pass.
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "reference/squeeze.hpp"
#include "session/session_impl.hpp"

namespace kvlab::detail {

template <typename S>
SqueezeReport squeeze(ref::Engine<S>& engine, const ref::SqueezeSpec& spec,
                      const std::vector<int>& tokens) {
  if (!spec.enabled) {
    fail("--f0", "(none)", "the squeeze analysis needs SqueezeAttention options (f0, and f3 or p)");
  }
  engine.prefill(tokens);
  SqueezeReport rep;
  rep.result = engine.squeeze();
  const KvPlan& plan = engine.plan();
  rep.map = plan.to_string();
  rep.prompt_tokens = static_cast<int>(tokens.size());
  // The evicting banks, in bank order: the per-bank vectors of the result follow it.
  std::vector<int> banks;
  for (int b = 0; b < engine.kv().num_banks(); ++b) {
    if (engine.kv().bank(b).evicts()) banks.push_back(b);
  }
  rep.evicting_banks = static_cast<int>(banks.size());
  for (int l = 0; l < plan.layers(); ++l) {
    rep.bank.push_back(plan.kv_of(l));
    const auto at = std::find(banks.begin(), banks.end(), engine.kv().bank_of_layer(l));
    rep.slot.push_back(at == banks.end() ? -1 : static_cast<int>(at - banks.begin()));
  }
  for (int b : rep.result.budget) rep.total_budget += b;
  rep.uniform_total =
      ref::uniform_total_tokens(static_cast<int>(banks.size()), spec.f0, rep.prompt_tokens);
  rep.kv_bytes_held = engine.kv().bytes_held();
  return rep;
}

template <typename S>
TraceReport trace_prefill(const Model<S>& model, const ref::EngineOptions& options,
                          const std::string& backend, const std::vector<Subscription>& observers,
                          const std::vector<int>& tokens, bool exact) {
  ref::EngineOptions eo = options;
  if (eo.schedule.mode == ref::PrefillMode::token_by_token) {
    fail("--token-by-token", "true",
         "trace-prefill shows iterative passes; use --exact to compare");
  }
  if (eo.schedule.mode == ref::PrefillMode::automatic) eo.schedule.mode = ref::PrefillMode::fixed;
  // The passes are an upper bound: a block stops once pass T has made all T tokens exact.
  eo.schedule.stop_when_exact = true;
  const int T = static_cast<int>(tokens.size());
  ref::Engine<S> engine(model.weights, eo, make_backend<S>(backend, eo.threads));
  TraceReport rep;
  const KvPlan& plan = engine.plan();
  rep.map = plan.to_string();
  rep.tokens = T;
  rep.pass_limit =
      eo.schedule.mode == ref::PrefillMode::converge ? eo.schedule.max_passes : eo.schedule.passes;
  rep.blocks = plan.cyclic_blocks();

  std::vector<S> exact_logits;
  if (exact && !rep.blocks.empty()) {
    ref::EngineOptions xo = eo;
    xo.schedule.mode = ref::PrefillMode::token_by_token;
    ref::Engine<S> reference(model.weights, xo, make_backend<S>(backend, xo.threads));
    exact_logits = reference.prefill(tokens, true);
    for (int b = 0; b < reference.num_banks(); ++b) {
      auto held = reference.held_kv(b);
      if (held.cells != T) continue;  // a windowed bank: no full exact K/V to compare
      engine.set_exact_kv(b, std::move(held.k), std::move(held.v));
    }
  }
  RecordingObserver rec;
  engine.add_observer(&rec);
  for (const auto& [o, kinds] : observers) engine.subscribe(o, kinds);
  const std::vector<S> logits = engine.prefill(tokens, true);
  if (!exact_logits.empty()) {
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      scale = std::max(scale, std::abs(static_cast<double>(exact_logits[i])));
      diff = std::max(diff, std::abs(static_cast<double>(logits[i] - exact_logits[i])));
    }
    rep.logits_rel_error = diff / scale;
  }
  rep.passes_run = engine.passes_run();
  rep.passes = std::move(rec.passes);
  return rep;
}

template SqueezeReport squeeze(ref::Engine<float>&, const ref::SqueezeSpec&,
                               const std::vector<int>&);
template SqueezeReport squeeze(ref::Engine<double>&, const ref::SqueezeSpec&,
                               const std::vector<int>&);
template TraceReport trace_prefill(const Model<float>&, const ref::EngineOptions&,
                                   const std::string&, const std::vector<Subscription>&,
                                   const std::vector<int>&, bool);
template TraceReport trace_prefill(const Model<double>&, const ref::EngineOptions&,
                                   const std::string&, const std::vector<Subscription>&,
                                   const std::vector<int>&, bool);

}  // namespace kvlab::detail
