// Tasks under a plan, a sequence policy and a budget (Session::eval; `kvlab eval`, `kvlab sweep`).
#pragma once

#include <cstdint>
#include <string>

namespace kvlab {

// One task run; the plan, policy, budget and SqueezeAttention come from the session.
struct EvalSetup {
  std::string task = "passkey";  // passkey | mqar | ppl
  std::string text_file;         // ppl
  int n = 4;                     // examples, [1, 10000]
  int length = 0;                // context tokens (0: a task default that fits the model)
  int pairs = 16, queries = 8;   // mqar
  std::uint64_t seed = 0;
  int show = 0;  // examples to keep in EvalResult::shown, [0, n]
};

// One example as the model saw it (eval --show): the prompt until its first scored token, the
// answer tokens scored and the model's greedy prediction of each (given the true tokens before it:
// the rest of the query is fed token by token).
struct EvalExample {
  std::vector<int> prompt;    // context + query up to the first scored position, BOS first
  std::vector<int> expected;  // the scored answer tokens
  std::vector<int> produced;  // the greedy prediction at each scored position
  int correct = 0;
};

struct EvalResult {
  int correct = 0, scored = 0;
  double nll = 0;                  // summed over scored tokens
  double kv_bytes_held = 0;        // mean over examples, when the queries begin
  double kv_bytes_full = 0;        // the same context with nothing evicted
  std::vector<EvalExample> shown;  // the first EvalSetup::show examples
  double accuracy() const { return scored ? static_cast<double>(correct) / scored : 0; }
  double perplexity() const;
};

}  // namespace kvlab
