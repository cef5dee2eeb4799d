// The Session (session/): it owns what it runs (run under AddressSanitizer in the asan preset,
// so a dangling weight or tokenizer would be caught), f32 and f64 sessions agree, the operations
// match the engine they wrap, and bad options are rejected by name.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/telemetry.hpp"
#include "reference/checkpoint.hpp"
#include "reference/engine.hpp"
#include "session/builtin_models.hpp"
#include "session/model_source.hpp"
#include "session/session.hpp"
#include "tests/reference/tiny_model.hpp"

namespace fs = std::filesystem;
using namespace kvlab;

namespace {

// tiny_config with a vocabulary that holds the byte tokenizer (258 tokens) and a few ids past it.
ModelConfig text_config() {
  ModelConfig c = tiny_config();
  c.vocab_size = 300;
  return c;
}

std::shared_ptr<const ref::ModelWeights<float>> random_weights(const std::string& plan = "cla:2",
                                                               std::uint64_t seed = 11) {
  const ModelConfig c = text_config();
  return std::make_shared<const ref::ModelWeights<float>>(
      ref::init_random<float>(c, KvPlan::parse(plan, c.num_hidden_layers), seed));
}

std::vector<int> some_tokens(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (7 + 13 * i + i * i) % 300;
  return t;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i])) << "NaN/inf at " << i;
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / std::max(scale, 1e-300);
}

template <typename S>
std::vector<double> as_double(const std::vector<S>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// `fn` throws kvlab::Error whose message contains every fragment.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no kvlab::Error; expected: " << *fragments.begin();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& f : fragments) {
      EXPECT_NE(what.find(f), std::string::npos) << what << "\nexpected: " << f;
    }
  }
}

class SessionFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("kvlab_session_" + std::to_string(::getpid()) + "_" + t->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // A kvlab checkpoint (byte tokenizer) of the random weights, as `kvlab init` writes it.
  fs::path checkpoint(const std::string& plan = "cla:2", const std::string& name = "ckpt") {
    const fs::path out = dir_ / name;
    ref::CheckpointMeta meta;
    meta.plan_spec = plan;
    ref::save_checkpoint(out.string(), *random_weights(plan), meta);
    return out;
  }
  fs::path dir_;
};

}  // namespace

// ---- (a) a Session outlives nothing it depends on -------------------------------------------

TEST(SessionOwnership, RunsAfterEveryOtherHandleIsGone) {
  RunOptions run;
  run.policy = "h2o";
  run.budget = "50%";
  std::weak_ptr<const ref::ModelWeights<float>> weights_alive;
  std::weak_ptr<const Tokenizer> tokenizer_alive;
  auto make = [&] {
    auto w = random_weights();
    auto t = std::make_shared<const ByteTokenizer>();
    weights_alive = w;
    tokenizer_alive = t;
    Session s = Session::from_weights(w, t, run);
    w.reset();  // the caller's handles go; the loaded objects live only in the session
    t.reset();
    return s;
  };
  Session moved_from = make();
  Session s = std::move(moved_from);
  EXPECT_FALSE(weights_alive.expired());
  EXPECT_FALSE(tokenizer_alive.expired());

  // The same model, made again, run by a bare engine: what the session must reproduce.
  const auto again = random_weights();
  ref::EngineOptions eo;
  eo.policy = ref::PolicySpec::parse("h2o");
  eo.budget = ref::BudgetSpec::parse("50%");
  ref::Engine<float> engine(again, eo);

  const std::vector<int> prompt = s.encode("Once upon a time");
  ASSERT_EQ(prompt.size(), 17u);
  EXPECT_EQ(as_double(engine.prefill(prompt, true)), s.prefill(prompt, true));
  for (int tok : {104, 105, 33}) EXPECT_EQ(as_double(engine.decode(tok)), s.step(tok));
  EXPECT_EQ(s.position(), 20);
  EXPECT_EQ(s.kv_bytes_held(), engine.kv().bytes_held());

  // generate: greedy tokens are the engine's argmax chain.
  GenerateOptions g;
  g.max_new = 6;
  std::vector<int> seen;
  const GenerateResult r = s.generate(prompt, g, [&](int tok) {
    seen.push_back(tok);
    return true;
  });
  EXPECT_EQ(r.tokens, seen);
  EXPECT_EQ(r.prompt_tokens, 17);
  std::vector<float> logits = engine.prefill(prompt);
  std::vector<int> expected;
  for (int i = 0; i < g.max_new; ++i) {
    const int tok =
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (tok == ByteTokenizer::kEos) break;
    expected.push_back(tok);
    if (i + 1 < g.max_new) logits = engine.decode(tok);
  }
  EXPECT_EQ(r.tokens, expected);
  EXPECT_EQ(s.token_text(104), "h");
  EXPECT_EQ(s.token_text(299), "<299>");  // past the byte tokenizer: no text

  // Rebuilding the engine under other options reuses the shared weights; then it still runs.
  RunOptions other;
  other.plan = "0_0_0_0_0_0";
  s.configure(other);
  EXPECT_EQ(s.plan().to_string(), "0_0_0_0_0_0");
  EXPECT_EQ(s.prefill(some_tokens(9)).size(), 300u);
  EXPECT_FALSE(weights_alive.expired());

  // The session was the last owner.
  { Session gone = std::move(s); }
  EXPECT_TRUE(weights_alive.expired());
  EXPECT_TRUE(tokenizer_alive.expired());
}

TEST_F(SessionFiles, LoadedSessionNeedsNoFilesAfterwards) {
  const fs::path ck = checkpoint("lckv:2");
  SessionOptions o;
  o.model = ck.string();
  o.run.schedule.mode = ref::PrefillMode::fixed;
  Session s = Session::load(o);
  fs::remove_all(ck);  // nothing on disk is read after load
  EXPECT_EQ(s.model_format(), "kvlab");
  EXPECT_EQ(s.plan_spec(), "lckv:2");
  EXPECT_EQ(s.tokenizer().name(), "byte");
  const auto prompt = s.encode("hello there");
  const auto logits = s.prefill(prompt);
  EXPECT_EQ(logits.size(), 300u);
  EXPECT_EQ(s.passes_run(), std::vector<int>{9});
  GenerateOptions g;
  g.max_new = 4;
  g.temperature = 0.9;
  g.seed = 5;
  const auto a = s.generate(prompt, g).tokens;
  const auto b = s.generate(prompt, g).tokens;
  EXPECT_EQ(a, b);  // seeded sampling
  EXPECT_LE(a.size(), 4u);
}

TEST_F(SessionFiles, BuiltinModelsAreFoundByName) {
  checkpoint("cla:2", "tiny-test");
  ::setenv("KVLAB_MODELS", dir_.c_str(), 1);
  const auto builtins = builtin_models();
  ASSERT_EQ(builtins.size(), 1u);
  EXPECT_EQ(builtins[0].name, "tiny-test");
  EXPECT_EQ(resolve_model("tiny-test"), (dir_ / "tiny-test").string());
  EXPECT_EQ(resolve_model("stories15m"), "stories15m");    // no such built-in: unchanged
  EXPECT_EQ(resolve_model("./tiny-test"), "./tiny-test");  // a path stays a path
  SessionOptions o;
  o.model = "tiny-test";
  Session s = Session::load(o);
  EXPECT_EQ(s.plan_spec(), "cla:2");
  ::unsetenv("KVLAB_MODELS");
}

// ---- (b) f32 and f64 sessions of one model agree ---------------------------------------------

TEST_F(SessionFiles, F32AndF64AgreeOnTheSameModel) {
  // From the same float32 weights: the f64 session runs them converted (exactly).
  const auto w32 = random_weights("lckv:2");
  const auto w64 =
      std::make_shared<const ref::ModelWeights<double>>(ref::convert_weights<double>(*w32));
  RunOptions run;
  run.schedule.mode = ref::PrefillMode::token_by_token;
  Session f32 = Session::from_weights(w32, nullptr, run);
  Session f64 = Session::from_weights(w64, nullptr, run);
  EXPECT_EQ(f32.precision(), Precision::f32);
  EXPECT_EQ(f64.precision(), Precision::f64);
  const auto toks = some_tokens(12);
  // Tolerance: float32 rounding through 6 layers of width 48, relative to the largest logit.
  constexpr double kTol = 1e-4;
  EXPECT_LT(max_rel_diff(f32.prefill(toks, true), f64.prefill(toks, true)), kTol);
  for (int tok : {3, 250, 299}) EXPECT_LT(max_rel_diff(f32.step(tok), f64.step(tok)), kTol);

  // The same checkpoint loaded in both precisions: logits and perplexity agree.
  const fs::path ck = checkpoint("cla:2");
  SessionOptions o;
  o.model = ck.string();
  Session a = Session::load(o);
  o.precision = Precision::f64;
  Session b = Session::load(o);
  EXPECT_LT(max_rel_diff(a.prefill(toks, true), b.prefill(toks, true)), kTol);
  const PplResult pa = a.ppl(some_tokens(40), 16), pb = b.ppl(some_tokens(40), 16);
  EXPECT_EQ(pa.predicted, 39 + 0L);
  EXPECT_EQ(pa.predicted, pb.predicted);
  EXPECT_NEAR(pa.perplexity(), pb.perplexity(), kTol * pb.perplexity());

  // Random weights are made in float32 for both precisions: the same model again.
  const fs::path cfg = dir_ / "config.json";
  std::ofstream(cfg) << config_to_json(text_config()).dump(2);
  SessionOptions r;
  r.model = cfg.string();
  r.allow_random = true;
  r.seed = 4;
  Session r32 = Session::load(r);
  r.precision = Precision::f64;
  Session r64 = Session::load(r);
  EXPECT_TRUE(r64.random_weights());
  EXPECT_EQ(r64.plan_spec(), "standard");
  EXPECT_LT(max_rel_diff(r32.prefill(toks, true), r64.prefill(toks, true)), kTol);
}

// ---- the operations -------------------------------------------------------------------------

TEST(SessionOps, PerplexityIsTheMeanNllOfTheWindows) {
  Session s = Session::from_weights(random_weights("standard"), nullptr);
  const auto toks = some_tokens(20);
  const PplResult r = s.ppl(toks, 8);  // windows [0, 8), [7, 15), [14, 20)
  EXPECT_EQ(r.window, 8);
  EXPECT_EQ(r.predicted, 19);
  double nll = 0;
  for (std::size_t start : {0u, 7u, 14u}) {
    const std::size_t end = std::min<std::size_t>(start + 8, toks.size());
    const std::vector<int> win(toks.begin() + start, toks.begin() + end);
    const auto logits = s.prefill(win, true);
    for (std::size_t t = 0; t + 1 < win.size(); ++t) {
      const double* row = logits.data() + t * 300;
      double mx = row[0], sum = 0;
      for (int v = 0; v < 300; ++v) mx = std::max(mx, row[v]);
      for (int v = 0; v < 300; ++v) sum += std::exp(row[v] - mx);
      nll += std::log(sum) + mx - row[win[t + 1]];
    }
  }
  EXPECT_NEAR(r.nll, nll, 1e-9 * nll);
  EXPECT_DOUBLE_EQ(r.perplexity(), std::exp(r.nll / r.predicted));
}

// Session::bank_kv (the Python module's K/V view): a bank's cells as the engine holds them, the
// positions per KV head, and a named error for a layer that is not a KV layer.
TEST(SessionOps, BankKvIsWhatTheEngineHolds) {
  auto w = random_weights("cla:2");
  RunOptions run;
  run.policy = "window:4";
  Session s = Session::from_weights(w, nullptr, run);
  ref::EngineOptions eo;
  eo.policy = ref::PolicySpec::parse("window:4");
  ref::Engine<float> e(w, eo);
  const auto toks = some_tokens(9);
  s.prefill(toks);
  e.prefill(toks);
  const int kv_heads = w->config.num_key_value_heads, D = w->config.head_dim;
  for (int t : s.plan().kv_layers()) {
    const BankKv b = s.bank_kv(t);
    const auto held = e.held_kv(e.kv().bank_of_layer(t));
    EXPECT_EQ(b.kv_layer, t);
    EXPECT_EQ(b.cells, held.cells);
    EXPECT_EQ(b.cells, 4);  // the window
    ASSERT_EQ(b.k.size(), static_cast<std::size_t>(b.cells * kv_heads * D));
    for (std::size_t i = 0; i < b.k.size(); ++i) {
      EXPECT_EQ(b.k[i], static_cast<double>(held.k[i]));
      EXPECT_EQ(b.v[i], static_cast<double>(held.v[i]));
    }
    EXPECT_EQ(b.positions, e.kv().head_positions(e.kv().bank_of_layer(t)));
    std::vector<int> head0(b.positions.begin(), b.positions.begin() + b.cells);
    std::sort(head0.begin(), head0.end());
    EXPECT_EQ(head0, (std::vector<int>{5, 6, 7, 8}));  // the last 4 of 9 positions
  }
  EXPECT_THROW(
      {
        try {
          s.bank_kv(1);
        } catch (const Error& err) {
          EXPECT_NE(std::string(err.what()).find("kv_layer = 1"), std::string::npos) << err.what();
          throw;
        }
      },
      Error);
}

// Session::grad computes in float64 under the run plan: an f32 and an f64 session of the same
// weights give the same bits, with tensors named as tensor_specs under that plan.
TEST(SessionOps, GradIsFloat64UnderTheRunPlan) {
  RunOptions run;
  run.plan = "cla:2";
  const auto w32 = random_weights("standard");
  Session s32 = Session::from_weights(w32, nullptr, run);
  Session s64 = Session::from_weights(
      std::make_shared<const ref::ModelWeights<double>>(ref::convert_weights<double>(*w32)),
      nullptr, run);
  const auto toks = some_tokens(9);
  const GradResult a = s32.grad(toks, {});
  const GradResult b = s64.grad(toks, {});
  EXPECT_EQ(a.loss.loss, b.loss.loss);
  EXPECT_EQ(a.grads, b.grads);
  EXPECT_EQ(a.plan, "0_0_2_2_4_4");
  EXPECT_FALSE(a.iterative);
  EXPECT_EQ(a.predictions, 8);
  const auto specs = ref::tensor_specs(s32.config(), s32.plan());
  ASSERT_EQ(a.specs.size(), specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    EXPECT_EQ(a.specs[i].name, specs[i].name);
    EXPECT_EQ(static_cast<long>(a.grads[i].size()), [&] {
      long n = 1;
      for (auto d : specs[i].shape) n *= d;
      return n;
    }());
  }
  expect_error([&] { s32.grad({5}, {}); }, {"--tokens = 1 tokens"});
  expect_error([&] { s32.grad(toks, parse_train_passes("2,0")); }, {"--train-passes = 2,0"});
}

TEST(SessionOps, TraceSqueezeEvalAndBench) {
  RunOptions run;
  run.schedule.mode = ref::PrefillMode::fixed;
  run.schedule.passes = 3;
  Session s =
      Session::from_weights(random_weights("lckv:2"), std::make_shared<ByteTokenizer>(), run);
  RecordingObserver rec;
  s.add_observer(&rec);
  const auto toks = some_tokens(10);
  const TraceReport t = s.trace_prefill(toks, /*exact=*/true);
  EXPECT_EQ(t.tokens, 10);
  ASSERT_EQ(t.blocks.size(), 1u);
  EXPECT_EQ(t.passes_run, std::vector<int>{3});
  EXPECT_FALSE(t.passes.empty());
  EXPECT_EQ(rec.passes.size(), t.passes.size());  // the session's observers saw the trace
  for (const auto& e : t.passes) EXPECT_GE(e.err_k, 0.0);
  EXPECT_GT(t.logits_rel_error, 0.0);  // 3 passes over 10 tokens are not exact yet
  EXPECT_EQ(s.position(), 0);          // the session's own sequence is untouched

  // SqueezeAttention needs its spec, then reports per layer and per bank.
  expect_error([&] { s.squeeze(toks); }, {"--f0 = (none)"});
  RunOptions sq;
  sq.policy = "streaming:1";
  sq.squeeze = parse_squeeze("0.5,0.2");
  s.configure(sq);
  const SqueezeReport q = s.squeeze(some_tokens(20));
  ASSERT_EQ(q.bank.size(), 6u);
  EXPECT_EQ(q.prompt_tokens, 20);
  EXPECT_EQ(q.evicting_banks, 3);  // lckv:2 on 6 layers: KV layers 0, 4, 5
  EXPECT_EQ(q.uniform_total, 30);
  EXPECT_LE(q.total_budget, q.uniform_total);
  EXPECT_EQ(q.kv_bytes_held, s.kv_bytes_held());
  // Observers follow the session into its new engine.
  EXPECT_FALSE(rec.summaries.empty());
  const std::size_t before = rec.summaries.size();
  s.prefill(toks);
  EXPECT_EQ(rec.summaries.size(), before + 1);

  RunOptions ev;
  ev.policy = "window";
  ev.budget = "50%";
  s.configure(ev);
  EvalSetup e;
  e.task = "mqar";
  e.n = 2;
  e.length = 30;
  e.pairs = 4;
  e.queries = 2;
  const EvalResult r = s.eval(e);
  EXPECT_EQ(r.scored, 4);
  EXPECT_NEAR(r.kv_bytes_held / r.kv_bytes_full, 0.5, 0.05);

  BenchSetup b;
  b.context = 5;
  b.tokens = 2;
  b.repeat = 1;
  const BenchResult br = s.bench(b);
  EXPECT_GT(br.tokens_per_s, 0.0);
  EXPECT_EQ(br.weight_bytes_per_token, static_cast<double>(s.weight_bytes() - 300 * 48 * 4));
  b.mode = "prefill";
  b.context = 12;
  EXPECT_GT(s.bench(b).tokens_per_s, 0.0);
}

// ---- (c) named errors -----------------------------------------------------------------------

TEST_F(SessionFiles, NamedErrorsForBadOptions) {
  const fs::path ck = checkpoint("cla:2");
  auto load = [&](auto edit) {
    SessionOptions o;
    o.model = ck.string();
    edit(o);
    return Session::load(o);
  };
  expect_error([] { parse_precision("f16"); },
               {"--precision = f16 is invalid: must be f32 or f64"});
  expect_error([&] { load([](SessionOptions& o) { o.run.context = 65; }); },
               {"--context = 65 is invalid", "max_position_embeddings"});
  expect_error([&] { load([](SessionOptions& o) { o.run.threads = 0; }); },
               {"--threads = 0 is invalid: must be in [1, 256]"});
  expect_error([&] { load([](SessionOptions& o) { o.run.plan = "standard"; }); },
               {"layer 1 would be a KV layer", "no W_K/W_V"});
  expect_error([&] { load([](SessionOptions& o) { o.run.plan = "clx:2"; }); },
               {"plan = clx:2 is invalid"});
  expect_error([&] { load([](SessionOptions& o) { o.run.policy = "lru"; }); },
               {"--policy = lru is invalid"});
  expect_error([&] { load([](SessionOptions& o) { o.run.positions = "rope"; }); },
               {"--positions = rope is invalid: must be absolute or cache"});
  expect_error([&] { load([](SessionOptions& o) { o.run.budget = "1.5"; }); },
               {"--budget = 1.5 is invalid"});
  expect_error(
      [&] {
        load([](SessionOptions& o) {
          o.run.policy = "window";
          o.run.squeeze = parse_squeeze("0.4,0.1");
          o.run.budget = "8";
        });
      },
      {"--budget = 8 is invalid: --squeeze sets the budgets"});
  expect_error(
      [&] {
        load([](SessionOptions& o) {
          o.run.policy = "window";
          o.run.squeeze.enabled = true;
          o.run.squeeze.f0 = 0.5;
        });
      },
      {"--f3/--p = (none) is invalid: give exactly one of --f3 and --p"});
  expect_error([] { parse_squeeze("0.4"); }, {"--squeeze = 0.4 is invalid: give f0,f3"});
  expect_error([&] { load([](SessionOptions& o) { o.run.schedule.passes = 0; }); },
               {"--passes = 0 is invalid"});
  // Models and tokenizers.
  expect_error([&] { load([&](SessionOptions& o) { o.model = (dir_ / "absent").string(); }); },
               {"--model = " + (dir_ / "absent").string() + " is invalid"});
  expect_error([&] { load([&](SessionOptions& o) { o.model = (ck / "config.json").string(); }); },
               {"not a llama2.c .bin: give the directory"});
  expect_error(
      [&] {
        load([&](SessionOptions& o) {
          o.model = "gpt-9";
          o.allow_random = true;
        });
      },
      {"--model = gpt-9 is invalid: unknown preset"});
  expect_error(
      [&] { load([&](SessionOptions& o) { o.tokenizer = (dir_ / "nope.json").string(); }); },
      {"does not exist"});
  expect_error(
      [] {
        auto w = std::make_shared<const ref::ModelWeights<float>>(ref::init_random<float>(
            tiny_config(), KvPlan::parse("standard", 6), 1));  // vocab 37 < 258
        Session::from_weights(w, std::make_shared<ByteTokenizer>());
      },
      {"has 258 tokens, more than the model's vocab_size = 37"});
  expect_error([] { Session::from_weights(std::shared_ptr<const ref::ModelWeights<float>>(), {}); },
               {"model = (none) is invalid"});

  // Operations.
  Session s = load([](SessionOptions&) {});
  GenerateOptions g;
  g.temperature = -1;
  expect_error([&] { s.generate({1, 2}, g); }, {"--temperature = -1", "must be in [0, 100]"});
  g = {};
  g.top_p = 0;
  expect_error([&] { s.generate({1, 2}, g); }, {"--top-p = 0"});
  g = {};
  g.seed = -2;
  expect_error([&] { s.generate({1, 2}, g); }, {"--seed = -2"});
  expect_error([&] { s.ppl(some_tokens(10), 1); }, {"--context = 1 is invalid"});
  expect_error([&] { s.ppl({5}, 8); }, {"perplexity needs at least 2 tokens"});
  expect_error([&] { s.tokens_of({}); }, {"--prompt/--tokens/--text-file = (none)"});
  expect_error([&] { s.tokens_of({.text = "a", .tokens = "1", .text_file = ""}); }, {"(several)"});
  expect_error([&] { s.tokens_of({.text = "", .tokens = "1,300", .text_file = ""}); },
               {"--tokens = 300 is invalid"});
  expect_error([&] { s.tokens_of({.text = "", .tokens = "", .text_file = "/nonexistent/t.txt"}); },
               {"--text-file = /nonexistent/t.txt is invalid: cannot open the file"});
  expect_error([&] { s.prefill(some_tokens(65)); }, {"prompt = 65 tokens is invalid"});
  expect_error([&] { s.step(300); }, {"token = 300"});
  EvalSetup e;
  e.task = "chess";
  expect_error([&] { s.eval(e); }, {"--task = chess is invalid"});
  BenchSetup b;
  b.context = 64;
  expect_error([&] { s.bench(b); }, {"--context = 64 is invalid", "context of 64 tokens"});
  b.mode = "nope";
  expect_error([&] { s.bench(b); }, {"mode = nope is invalid"});

  // A configure that fails leaves the session as it was.
  RunOptions bad = s.run_options();
  bad.threads = 0;
  expect_error([&] { s.configure(bad); }, {"--threads = 0"});
  EXPECT_EQ(s.run_options().threads, 1);
  EXPECT_EQ(s.prefill(some_tokens(4)).size(), 300u);

  // Traces show iterative passes.
  SessionOptions lo;
  lo.model = checkpoint("lckv:2", "lckv").string();
  lo.run.schedule.mode = ref::PrefillMode::token_by_token;
  Session l = Session::load(lo);
  expect_error([&] { l.trace_prefill(some_tokens(5), false); },
               {"--token-by-token = true is invalid"});

  // No tokenizer: token ids work, text is refused by name.
  Session none = Session::from_weights(random_weights(), nullptr);
  EXPECT_EQ(none.tokenizer().name(), "none");
  EXPECT_EQ(none.prefill({1, 2, 3}).size(), 300u);
  expect_error([&] { none.encode("hi"); }, {"--tokenizer = (none)", "has no tokenizer"});
}

TEST(SessionTelemetry, SubscriptionsByKindFollowTheSessionAcrossConfigure) {
  Session s = Session::from_weights(random_weights("cla:2"), nullptr);
  RecordingObserver cheap, costly;
  s.add_observer(&cheap);
  s.subscribe(&costly, EventKind::attention | EventKind::layer_importance);
  s.prefill({1, 2, 3, 4, 5});
  s.step(6);
  EXPECT_EQ(cheap.summaries.size(), 2u);
  EXPECT_TRUE(cheap.attention.empty());  // not subscribed: not computed for it
  EXPECT_TRUE(costly.summaries.empty());
  EXPECT_EQ(costly.attention.size(), 2u * s.config().num_hidden_layers);
  EXPECT_EQ(costly.importance.size(), 1u);
  // A new configuration keeps the subscriptions; unsubscribe ends them.
  RunOptions run = s.run_options();
  run.threads = 2;
  s.configure(run);
  s.prefill({1, 2, 3});
  EXPECT_EQ(costly.importance.size(), 2u);
  s.unsubscribe(&costly);
  s.prefill({1, 2});
  EXPECT_EQ(costly.importance.size(), 2u);
  EXPECT_EQ(cheap.summaries.size(), 4u);
}
