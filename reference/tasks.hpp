// Tasks that make the differences visible (techniques.md §8): passkey retrieval, multi-query
// associative recall and perplexity, each run so that the KV policy matters: the context is the
// prompt (attended fully, then evicted down to the budget) and the questions come afterwards, one
// decode step at a time, against whatever the banks kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tokenizer.hpp"
#include "reference/engine.hpp"

namespace kvlab::ref {

// One example: `context` is prefilled; `query` tokens are fed by decode steps; after query token
// i with answer[i] >= 0 the model's greedy choice is compared with answer[i].
struct TaskExample {
  std::vector<int> context;
  std::vector<int> query;
  std::vector<int> answer;  // (query.size()), -1 where nothing is scored
};

// Passkey retrieval (epfml/landmark-attention): filler text around the needle "The pass key is
// K. Remember it. K is the pass key." at a seeded depth, `length` tokens of context (BOS first)
// in the model's tokenizer; the query is " What is the pass key? The pass key is" followed by
// the tokens of K, each scored after the token before it.
TaskExample make_passkey(int length, std::uint64_t seed, const Tokenizer& tokenizer);

// Multi-query associative recall (HazyResearch/zoology): `pairs` key/value pairs, then filler, in
// the context; the queries are keys asked again at power-law distances, each followed by its
// value (scored). Keys and values are drawn from disjoint token ranges below `vocab`.
TaskExample make_mqar(int length, int pairs, int queries, int vocab, std::uint64_t seed);

struct TaskScore {
  int correct = 0;
  int scored = 0;
  double nll = 0;                  // summed over scored tokens (perplexity tasks)
  std::int64_t kv_bytes_held = 0;  // after the context (when the queries begin)
};

// The negative log-likelihood (nats) of `target` under softmax(logits): logits (V). The one NLL
// of kvlab: task scoring here and perplexity windows (session/) both use it.
template <typename S>
double token_nll(const S* logits, long V, int target) {
  double mx = logits[0], sum = 0;
  for (long v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
  for (long v = 0; v < V; ++v) sum += std::exp(logits[v] - mx);
  return std::log(sum) + mx - logits[target];
}

// Runs one example on `engine` (which resets), scoring greedy predictions and the NLL.
template <typename S>
TaskScore run_task(Engine<S>& engine, const TaskExample& ex);

// Perplexity example from text tokens: the first half is the context, the second half the query
// (every token scored by its NLL).
TaskExample make_ppl(const std::vector<int>& tokens);

}  // namespace kvlab::ref
