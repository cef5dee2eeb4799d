// Session::eval: a task (passkey, mqar, ppl) on the session's engine, scored by ref::run_task.
#include <cmath>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "reference/tasks.hpp"
#include "session/model_source.hpp"
#include "session/session_impl.hpp"

namespace kvlab {

double EvalResult::perplexity() const {
  return scored ? std::exp(nll / scored) : 0;
}

namespace detail {

namespace {

// The task's examples, every one checked before any runs: it fits the context with its questions,
// and the engine's budget resolves for its prompt (a percentage that keeps no token is refused
// here, naming the budget and the prompt's length, not after other examples or sweep rows ran).
template <typename S>
std::vector<ref::TaskExample> eval_examples(const ref::Engine<S>& engine,
                                            const Tokenizer& tokenizer, const EvalSetup& o) {
  const ModelConfig& c = engine.config();
  if (o.n < 1 || o.n > 10000) fail("--n", std::to_string(o.n), "must be in [1, 10000]");
  if (o.show < 0 || o.show > o.n) {
    fail("--show", std::to_string(o.show), "must be in [0, --n = " + std::to_string(o.n) + "]");
  }
  std::vector<ref::TaskExample> examples;
  const int max_len = engine.context();
  const int length = o.length > 0 ? o.length : std::min(256, max_len / 2);
  if (o.task == "ppl") {
    if (o.text_file.empty()) fail("--text-file", "(none)", "the ppl task needs a text file");
    const std::vector<int> toks = tokenizer.encode(read_text_file(o.text_file), true);
    const int window = o.length > 0 ? o.length : std::min<int>(max_len, toks.size());
    if (window > max_len) {
      fail("--length", std::to_string(window),
           "the model's context is " + std::to_string(max_len) + " tokens");
    }
    for (std::size_t s = 0; s + window <= toks.size() && static_cast<int>(examples.size()) < o.n;
         s += window) {
      examples.push_back(
          ref::make_ppl(std::vector<int>(toks.begin() + s, toks.begin() + s + window)));
    }
    if (examples.empty()) examples.push_back(ref::make_ppl(toks));
  } else {
    for (int i = 0; i < o.n; ++i) {
      if (o.task == "passkey") {
        examples.push_back(ref::make_passkey(length, o.seed + i, tokenizer));
      } else if (o.task == "mqar") {
        examples.push_back(ref::make_mqar(length, o.pairs, o.queries, c.vocab_size, o.seed + i));
      } else {
        fail("--task", o.task, "must be passkey, mqar or ppl");
      }
    }
  }
  for (const auto& ex : examples) {
    const std::size_t total = ex.context.size() + ex.query.size();
    if (static_cast<int>(total) > max_len) {
      fail("--length", std::to_string(ex.context.size()),
           "the task needs " + std::to_string(total) +
               " tokens with its questions; the model's context is " + std::to_string(max_len));
    }
    engine.check_prompt_budget(static_cast<int>(ex.context.size()));
  }
  return examples;
}

}  // namespace

template <typename S>
void check_eval(const ref::Engine<S>& engine, const Tokenizer& tokenizer, const EvalSetup& setup) {
  eval_examples(engine, tokenizer, setup);
}

template <typename S>
EvalResult eval(ref::Engine<S>& engine, const Tokenizer& tokenizer, const EvalSetup& o) {
  const std::vector<ref::TaskExample> examples = eval_examples(engine, tokenizer, o);
  EvalResult r;
  for (const auto& ex : examples) {
    const ref::TaskScore s = ref::run_task(engine, ex);
    r.correct += s.correct;
    r.scored += s.scored;
    r.nll += s.nll;
    if (static_cast<int>(r.shown.size()) < o.show) {
      EvalExample e;
      // The prompt up to the first scored position: the answer tokens fed after it are shown as
      // the expected answer, not as prompt.
      e.prompt = ex.context;
      for (std::size_t i = 0; i < ex.query.size(); ++i) {
        e.prompt.push_back(ex.query[i]);
        if (ex.answer[i] >= 0) break;
      }
      for (int a : ex.answer) {
        if (a >= 0) e.expected.push_back(a);
      }
      e.produced = s.predicted;
      e.correct = s.correct;
      r.shown.push_back(std::move(e));
    }
    r.kv_bytes_held += static_cast<double>(s.kv_bytes_held) / examples.size();
    // The same context with nothing evicted: core's accounting (§7; sliding banks keep their
    // window), not a formula of its own.
    r.kv_bytes_full += static_cast<double>(kv_sequence_bytes(
                           engine.plan(), engine.config(),
                           static_cast<std::int64_t>(ex.context.size()), engine.kv_dtype())) /
                       examples.size();
  }
  return r;
}

template void check_eval(const ref::Engine<float>&, const Tokenizer&, const EvalSetup&);
template void check_eval(const ref::Engine<double>&, const Tokenizer&, const EvalSetup&);
template EvalResult eval(ref::Engine<float>&, const Tokenizer&, const EvalSetup&);
template EvalResult eval(ref::Engine<double>&, const Tokenizer&, const EvalSetup&);

}  // namespace detail
}  // namespace kvlab
