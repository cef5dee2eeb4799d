#include "reference/tasks.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.hpp"
#include "core/tokenizer.hpp"

namespace kvlab::ref {
TaskExample make_passkey(int length, std::uint64_t seed, const Tokenizer& tok) {
  std::mt19937_64 rng(seed);
  const int key = 10000 + static_cast<int>(rng() % 90000);  // five digits
  const std::string k = std::to_string(key);
  const std::vector<int> needle =
      tok.encode(" The pass key is " + k + ". Remember it. " + k + " is the pass key.", false);
  const int room = length - 1 - static_cast<int>(needle.size());
  if (room < 0) {
    fail("--length", std::to_string(length),
         "a passkey context needs at least " + std::to_string(needle.size() + 1) + " tokens");
  }
  const std::string sentence =
      " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
  std::string text;
  std::vector<int> filler;
  while (static_cast<int>(filler.size()) < room) {
    text += sentence;
    filler = tok.encode(text, false);
  }
  filler.resize(room);
  const long depth = room ? static_cast<long>(rng() % (room + 1)) : 0;
  TaskExample ex;
  ex.context = {tok.bos_id()};
  ex.context.insert(ex.context.end(), filler.begin(), filler.begin() + depth);
  ex.context.insert(ex.context.end(), needle.begin(), needle.end());
  ex.context.insert(ex.context.end(), filler.begin() + depth, filler.end());
  const std::vector<int> question = tok.encode(" What is the pass key? The pass key is ", false);
  ex.query = question;
  ex.answer.assign(question.size(), -1);
  // The key's tokens: after the last question token the first is due, and so on.
  const std::vector<int> digits = tok.encode(k, false);
  ex.answer.back() = digits[0];
  for (std::size_t i = 0; i + 1 < digits.size(); ++i) {
    ex.query.push_back(digits[i]);
    ex.answer.push_back(digits[i + 1]);
  }
  return ex;
}

TaskExample make_mqar(int length, int pairs, int queries, int vocab, std::uint64_t seed) {
  if (pairs < 1 || queries < 1 || queries > pairs) {
    fail("--pairs/--queries", std::to_string(pairs) + "/" + std::to_string(queries),
         "need 1 <= queries <= pairs");
  }
  if (2 * pairs + 1 > length) {
    fail("--length", std::to_string(length),
         "must hold the " + std::to_string(pairs) + " pairs: at least " +
             std::to_string(2 * pairs + 1) + " tokens");
  }
  // Keys from [8, 8 + K), values from [8 + K, 8 + 2K), filler token 4: K = vocab range / 2.
  const int range = std::min((vocab - 8) / 2, 4096);
  if (range < pairs) {
    fail("--pairs", std::to_string(pairs),
         "needs distinct keys; the vocabulary allows " + std::to_string(range));
  }
  std::mt19937_64 rng(seed);
  std::vector<int> keys(range);
  for (int i = 0; i < range; ++i) keys[i] = 8 + i;
  std::shuffle(keys.begin(), keys.end(), rng);
  keys.resize(pairs);
  std::vector<int> values(pairs);
  for (int i = 0; i < pairs; ++i) values[i] = 8 + range + static_cast<int>(rng() % range);
  TaskExample ex;
  for (int i = 0; i < pairs; ++i) {
    ex.context.push_back(keys[i]);
    ex.context.push_back(values[i]);
  }
  // Filler up to `length`: the queried pairs sit at power-law distances from the questions.
  while (static_cast<int>(ex.context.size()) < length) ex.context.push_back(4);
  // Query order: pair i drawn with probability ∝ 1 / (pairs - i) (recent pairs more often),
  // without repetition, as zoology's power-law gaps.
  std::vector<int> order;
  std::vector<double> weight(pairs);
  for (int i = 0; i < pairs; ++i) weight[i] = 1.0 / (pairs - i);
  while (static_cast<int>(order.size()) < queries) {
    std::discrete_distribution<int> pick(weight.begin(), weight.end());
    const int i = pick(rng);
    order.push_back(i);
    weight[i] = 0;
  }
  for (int i : order) {
    ex.query.push_back(keys[i]);
    ex.answer.push_back(values[i]);
    ex.query.push_back(values[i]);
    ex.answer.push_back(-1);
  }
  return ex;
}

TaskExample make_ppl(const std::vector<int>& tokens) {
  if (tokens.size() < 4)
    fail("--text-file", std::to_string(tokens.size()) + " tokens", "needs at least 4");
  TaskExample ex;
  const std::size_t half = tokens.size() / 2;
  ex.context.assign(tokens.begin(), tokens.begin() + half);
  ex.query.assign(tokens.begin() + half, tokens.end() - 1);
  ex.answer.assign(tokens.begin() + half + 1, tokens.end());
  return ex;
}

template <typename S>
TaskScore run_task(Engine<S>& engine, const TaskExample& ex) {
  TaskScore score;
  std::vector<S> logits = engine.prefill(ex.context);
  score.kv_bytes_held = engine.kv().bytes_held();
  for (std::size_t i = 0; i < ex.query.size(); ++i) {
    logits = engine.decode(ex.query[i]);
    if (ex.answer[i] < 0) continue;
    const int best =
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    score.nll += token_nll(logits.data(), static_cast<long>(logits.size()), ex.answer[i]);
    score.correct += best == ex.answer[i];
    ++score.scored;
  }
  return score;
}

template TaskScore run_task<float>(Engine<float>&, const TaskExample&);
template TaskScore run_task<double>(Engine<double>&, const TaskExample&);

}  // namespace kvlab::ref
