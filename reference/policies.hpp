// Sequence policies (techniques.md §5): which cells of one KV head a bank keeps when it must hold
// at most B tokens. Pure functions over cell metadata, so each rule can be tested on hand-made
// positions and scores.
#pragma once

#include <string>
#include <vector>

namespace kvlab::ref {

// What a bank keeps between steps. `full` keeps everything (up to the context); `window` the B
// most recent; `streaming` the first `sinks` tokens plus the B - sinks most recent (the budget
// includes the sinks, as SqueezeAttention's LLaMA path counts them); `h2o` the `recent` most
// recent plus the B - recent cells with the largest accumulated attention among the rest.
enum class SequencePolicy { full, window, streaming, h2o };

// Where keys get their rotary position (§5): `absolute` (post-RoPE keys at their original
// positions) or `cache` (pre-RoPE keys, rotated by their slot in the bank at attention time).
enum class PositionMode { absolute, cache };

struct PolicySpec {
  SequencePolicy kind = SequencePolicy::full;
  int window = 0;           // window:W -> a budget of W tokens (0: take --budget)
  int sinks = 4;            // streaming:S
  int recent = -1;          // h2o:R (-1: B / 2)
  bool norm_count = false;  // h2o,norm=count: scores divided by the rows that could see the cell
  PositionMode positions = PositionMode::absolute;

  // "full" | "window[:W]" | "streaming[:S]" | "h2o[:R][,norm=count]"; throws kvlab::Error.
  static PolicySpec parse(const std::string& text);
  std::string to_string() const;
};

// floor(f · N) for a fraction given in decimal: the product is nudged up by a relative 1e-12
// before the floor, so that 0.29 · 100 (28.999999999999996 in binary) gives 29 tokens, not 28.
// The one rounding of fractions of the prompt: BudgetSpec::resolve and SqueezeAttention's
// uniform total (uniform_total_tokens, reference/squeeze.hpp) both use it.
int fraction_tokens(double fraction, int prompt_tokens);

// A bank's budget: tokens, or a fraction f of the prompt length N (B = floor(f · N)).
struct BudgetSpec {
  int tokens = 0;       // > 0: this many tokens
  double fraction = 0;  // in (0, 1]: a fraction of the prompt
  bool unset() const { return tokens == 0 && fraction == 0; }
  int resolve(int prompt_tokens) const;  // throws kvlab::Error when it is below 1
  // "128" (tokens) or "25%" (a percentage of the prompt); a bare decimal ("0.25", "1.0") is
  // refused with a hint. Throws kvlab::Error naming --budget.
  static BudgetSpec parse(const std::string& text);
  std::string to_string() const;  // "128" or "25%"
};

// Where a bank's budget comes from: the user (--budget, or window:W), or SqueezeAttention's
// per-bank budgets (reference/squeeze.hpp), which nobody chose token by token.
enum class BudgetSource { user, squeeze };

// The budget a bank runs with, after check_bank_budget.
struct BankBudget {
  int budget = 0;    // as asked, or raised to the policy's minimum (min_budget)
  std::string note;  // empty when used as asked; otherwise what was raised, from what, and why
  bool raised() const { return !note.empty(); }
};

// The least budget `policy` can honour: S + 1 for streaming:S (the budget includes the sinks and
// needs at least one recent token), R for h2o:R (below R the bank would keep only a window), 1
// otherwise.
int min_budget(const PolicySpec& policy);

// Checks bank `bank`'s budget against its policy (techniques.md §5, §6 step 4):
// - any budget below 1, any budget from the user below min_budget (streaming:S needs B > S, h2o:R
//   needs B >= R), and a user budget other than W with window:W throw kvlab::Error naming the
//   field (--budget or --policy), the value and the valid range;
// - SqueezeAttention budgets need an evicting policy, and window:W (which fixes every bank at W)
//   cannot take them: both throw, naming --policy;
// - a SqueezeAttention budget below min_budget is raised to it, with a note naming the bank, both
//   figures and the rule (the raise adds to the uniform total the budgets otherwise keep).
// Returns the budget to use. `bank` only labels the note and the errors (-1: no label).
BankBudget check_bank_budget(const PolicySpec& policy, int budget, BudgetSource source,
                             int bank = -1);

// The cells (indices into pos/score/count, ascending) that one KV head keeps under `policy` with
// budget `budget`. pos (n) positions, score (n) accumulated attention, count (n) query rows that
// could see each cell. Keeps everything when n <= budget.
std::vector<int> select_cells(const PolicySpec& policy, int budget, const std::vector<int>& pos,
                              const std::vector<double>& score, const std::vector<double>& count);

}  // namespace kvlab::ref
