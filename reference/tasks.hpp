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

#include "core/tokenizers/tokenizer.hpp"
#include "reference/engine.hpp"

namespace kvlab::ref {

// One example: `context` is prefilled; `query` tokens are fed by decode steps; after query token
// i with answer[i] >= 0 the model's greedy choice is compared with answer[i].
struct TaskExample {
  std::vector<int> context;
  std::vector<int> query;
  std::vector<int> answer;  // (query.size()), -1 where nothing is scored
  std::string text;         // passkey: the whole prompt, key included (empty for the others)
};

// Passkey retrieval (epfml/landmark-attention): filler text around the needle "The pass key is
// K. Remember it. K is the pass key." at a seeded depth, then the question " What is the pass
// key? The pass key is" and K. The whole text (`text`) is encoded once, BOS first, in the model's
// tokenizer, so that the tokens are those a user feeding the text gets: context + query + the
// last answer token == encode(text, true). The context is the longest filler that fits in
// `length` tokens (exactly `length` unless the tokenizer's pieces step over it); the query is the
// question and the key's tokens but the last; each token of K is scored after the token before
// it (a whitespace-only token before the digits is fed, not scored). Throws kvlab::Error naming
// --length when the needle does not fit, and --tokenizer when the answer cannot be located.
TaskExample make_passkey(int length, std::uint64_t seed, const Tokenizer& tokenizer);

// Multi-query associative recall (HazyResearch/zoology): `pairs` key/value pairs, then filler, in
// the context; the queries are keys asked again at power-law distances, each followed by its
// value (scored). Keys and values are drawn from disjoint token ranges below `vocab`. The draws
// come from Rng (reference/rng.hpp): a seed gives the same example on every machine.
TaskExample make_mqar(int length, int pairs, int queries, int vocab, std::uint64_t seed);

struct TaskScore {
  int correct = 0;
  int scored = 0;
  double nll = 0;                  // summed over scored tokens (perplexity tasks)
  std::int64_t kv_bytes_held = 0;  // after the context (when the queries begin)
  std::vector<int> predicted;      // the greedy token at each scored position, in order
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
