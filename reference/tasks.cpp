#include "reference/tasks.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/rng.hpp"

namespace kvlab::ref {
namespace {

bool all_space(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

bool starts_with(const std::vector<int>& whole, const std::vector<int>& part) {
  return part.size() <= whole.size() && std::equal(part.begin(), part.end(), whole.begin());
}

}  // namespace

TaskExample make_passkey(int length, std::uint64_t seed, const Tokenizer& tok) {
  Rng rng(seed);
  const std::string k = std::to_string(10000 + rng.below(90000));  // five digits
  const double depth = rng.unit();  // where the needle sits, as a fraction of the filler
  const std::string needle = " The pass key is " + k + ". Remember it. " + k + " is the pass key.";
  const std::string sentence =
      " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
  const std::string question = " What is the pass key? The pass key is";
  // The context's text with the first `chars` characters of filler (no space at either end: a
  // trailing one would merge with the question's in SentencePiece-style tokenizers), the needle
  // at the word boundary nearest below `depth` of the filler.
  std::string filler;
  auto context_text = [&](std::size_t chars) {
    while (filler.size() < chars) filler += sentence;
    std::string f = filler.substr(0, chars);
    while (!f.empty() && f.back() == ' ') f.pop_back();
    std::size_t at = f.rfind(' ', static_cast<std::size_t>(depth * f.size()));
    if (at == std::string::npos) at = 0;
    return (f.substr(0, at) + needle + f.substr(at)).substr(1);
  };
  auto tokens = [&](std::size_t chars) {
    return static_cast<int>(tok.encode(context_text(chars), true).size());
  };
  if (tokens(0) > length) {
    fail("--length", std::to_string(length),
         "a passkey context needs at least " + std::to_string(tokens(0)) + " tokens");
  }
  // The longest filler whose context fits in `length` tokens: [lo] fits, [hi] does not.
  std::size_t lo = 0, hi = static_cast<std::size_t>(length);
  while (tokens(hi) <= length) lo = hi, hi *= 2;
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (tokens(mid) <= length ? lo : hi) = mid;
  }
  // The whole prompt, encoded once (BOS first) as a user would feed it.
  const std::string context = context_text(lo);
  TaskExample ex;
  ex.text = context + question + " " + k;
  const std::vector<int> all = tok.encode(ex.text, true);
  ex.context = tok.encode(context, true);
  const std::vector<int> asked = tok.encode(context + question, true);
  if (!starts_with(all, ex.context) || !starts_with(all, asked)) {
    fail("--tokenizer", tok.name(),
         "its tokens of the passkey prompt do not start with those of the context and the "
         "question (a merge across their boundary), so the answer cannot be located");
  }
  // The key's tokens: those after the question, less any that are only whitespace (" " before
  // the digits in Llama tokenizers), which are fed but not scored.
  std::size_t key_at = asked.size();
  while (key_at < all.size() && all_space(tok.decode_token(all[key_at]))) ++key_at;
  std::string key_text;
  for (std::size_t i = key_at; i < all.size(); ++i) key_text += tok.decode_token(all[i]);
  while (!key_text.empty() && key_text.front() == ' ') key_text.erase(0, 1);
  if (key_text != k) {
    fail("--tokenizer", tok.name(),
         "the passkey's tokens decode to '" + key_text + "', not the key " + k);
  }
  // Fed one by one after the context: every token of the rest but the last; after token i the
  // model must give token i + 1 where that is a token of the key.
  ex.query.assign(all.begin() + ex.context.size(), all.end() - 1);
  for (std::size_t i = ex.context.size(); i + 1 < all.size(); ++i) {
    ex.answer.push_back(i + 1 >= key_at ? all[i + 1] : -1);
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
  Rng rng(seed);
  std::vector<int> keys(range);
  for (int i = 0; i < range; ++i) keys[i] = 8 + i;
  rng.shuffle(keys);
  keys.resize(pairs);
  std::vector<int> values(pairs);
  for (int i = 0; i < pairs; ++i) values[i] = 8 + range + static_cast<int>(rng.below(range));
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
    const int i = rng.draw(weight);
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
    score.predicted.push_back(best);
    ++score.scored;
  }
  return score;
}

template TaskScore run_task<float>(Engine<float>&, const TaskExample&);
template TaskScore run_task<double>(Engine<double>&, const TaskExample&);

}  // namespace kvlab::ref
