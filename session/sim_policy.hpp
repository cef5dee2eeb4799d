// The simulator's sequence policy from the --policy and --budget flags of generate and eval: one
// vocabulary (reference/policies.hpp) and the engine's rules (a budget with `full` is refused, an
// evicting policy needs one, window:W sets it), shared by `kvlab simulate` and the Python binding.
#pragma once

#include <string>

#include "core/error.hpp"
#include "core/simulator.hpp"
#include "reference/policies.hpp"

namespace kvlab {

// `policy` as --policy takes it, `budget` as --budget takes it ("" when not given), resolved
// against a prompt of `prompt` tokens. Throws kvlab::Error naming --policy or --budget.
inline SimPolicy sim_policy(const std::string& policy, const std::string& budget, int prompt) {
  SimPolicy out;
  const ref::PolicySpec p = ref::PolicySpec::parse(policy);
  out.name = p.to_string();
  ref::BudgetSpec b;
  if (!budget.empty()) b = ref::BudgetSpec::parse(budget);
  if (p.kind == ref::SequencePolicy::full) {
    if (!b.unset()) {
      fail("--budget", b.to_string(),
           "policy full keeps every token, so a budget would be ignored: choose an evicting "
           "policy (window, streaming, h2o) or drop --budget");
    }
    return out;
  }
  if (p.kind == ref::SequencePolicy::window && p.window > 0) {
    if (!b.unset() && b.tokens != p.window) {
      fail("--budget", b.to_string(),
           "window:" + std::to_string(p.window) + " already sets the budget");
    }
    b.tokens = p.window;
    b.fraction = 0;
  }
  if (b.unset()) {
    fail(
        "--budget", "(none)",
        out.name +
            " evicts down to a budget: give --budget (tokens, or a percentage of the prompt: 25%)");
  }
  const int tokens = b.resolve(prompt);
  ref::check_bank_budget(p, tokens, ref::BudgetSource::user);
  out.budget = tokens;
  out.budget_text = b.to_string();
  if (p.kind == ref::SequencePolicy::h2o) out.score_arrays = p.norm_count ? 2 : 1;
  return out;
}

}  // namespace kvlab
