// The visualizer's worker thread (visualizer/worker.hpp) without a window: it owns the Session,
// runs what the UI posts, and publishes state and telemetry the UI copies.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "visualizer/viz_model.hpp"
#include "visualizer/worker.hpp"

namespace kvlab::viz {
namespace {

const std::string kTiny = std::string(KVLAB_SOURCE_DIR) + "/tests/data/tiny_config.json";

// Waits until the worker has done everything posted (at most 60 s).
void settle(const Worker& w) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!w.idle()) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void load(Worker& w, const std::string& model) {
  WorkerCommand c;
  c.kind = WorkerCommand::load;
  c.options.model = model;
  c.options.allow_random = true;
  w.post(c);
}

void prefill(Worker& w, const std::string& prompt) {
  WorkerCommand c;
  c.kind = WorkerCommand::prefill;
  c.prompt = prompt;
  w.post(c);
}

void plan(Worker& w, const std::string& spec) {
  WorkerCommand c;
  c.kind = WorkerCommand::configure;
  c.run_options = w.state().run;
  c.run_options.plan = spec;
  w.post(c);
}

Footprint footprint_of(const Worker& w) {
  return footprint(w.state().telemetry->snapshot());
}

TEST(VizWorker, RunsThePromptAndAPlanSwitchHalvesTheFootprint) {
  Worker w;
  load(w, kTiny);
  prefill(w, "hello there");
  settle(w);
  WorkerState s = w.state();
  ASSERT_TRUE(s.loaded) << s.error;
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.format, "random");
  EXPECT_EQ(s.position, 12);  // BOS + 11 bytes
  EXPECT_EQ(s.prompt_pieces.size(), 12u);
  EXPECT_EQ(s.diagram.layers, 4);
  const Footprint standard = footprint_of(w);
  EXPECT_EQ(standard.banks, 4);
  EXPECT_EQ(standard.bytes_held, standard.standard_bytes);

  plan(w, "cla:2");  // re-runs the same prompt under the new plan
  settle(w);
  s = w.state();
  EXPECT_EQ(s.plan_text, "0_0_2_2");
  EXPECT_EQ(s.position, 12);
  const Footprint cla = footprint_of(w);
  EXPECT_EQ(cla.banks, 2);
  EXPECT_EQ(cla.bytes_held * 2, standard.bytes_held);
  EXPECT_EQ(cla.standard_bytes, standard.bytes_held);
  EXPECT_EQ(cla.bytes_held, s.kv_bytes_held);  // telemetry agrees with the session

  WorkerCommand step;
  step.kind = WorkerCommand::step;
  step.count = 3;
  w.post(step);
  settle(w);
  s = w.state();
  EXPECT_EQ(s.position, 15);
  EXPECT_EQ(s.generated_pieces.size(), 3u);
  EXPECT_EQ(footprint_of(w).history.size(), 4u);  // the prefill and three steps
}

TEST(VizWorker, AMissingModelIsAnErrorInTheStateNotACrash) {
  Worker w;
  load(w, "/nonexistent/model-dir");
  prefill(w, "hi");
  settle(w);
  const WorkerState s = w.state();
  EXPECT_FALSE(s.loaded);
  EXPECT_NE(s.error.find("/nonexistent/model-dir"), std::string::npos) << s.error;
  EXPECT_EQ(s.finished, 2u);

  // A corrupt checkpoint: named, and still no crash.
  char tmpl[] = "/tmp/kvlab-viz-corrupt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/config.json") << "{\"hidden_size\": 64, \"num_hidden_layers\": ";
  load(w, dir);
  settle(w);
  EXPECT_FALSE(w.state().loaded);
  EXPECT_NE(w.state().error.find("config.json"), std::string::npos) << w.state().error;
  std::filesystem::remove_all(dir);

  // A bad plan keeps the model running under its previous plan.
  load(w, kTiny);
  prefill(w, "hi");
  settle(w);
  plan(w, "cla:3x");
  settle(w);
  const WorkerState t = w.state();
  EXPECT_TRUE(t.loaded);
  EXPECT_NE(t.error.find("cla:3x"), std::string::npos) << t.error;
  EXPECT_EQ(t.plan_text, "0_1_2_3");
}

TEST(VizWorker, LckvPassesReachTheSnapshot) {
  Worker w;
  load(w, kTiny);
  plan(w, "lckv:2");
  settle(w);
  WorkerCommand trace;
  trace.kind = WorkerCommand::trace;
  trace.prompt = "a prompt longer than nine tokens";
  w.post(trace);
  settle(w);
  const WorkerState s = w.state();
  ASSERT_EQ(s.error, "");
  const Convergence c = convergence(s.telemetry->snapshot().passes);
  ASSERT_EQ(c.series.size(), 1u);
  EXPECT_EQ(c.passes, 9);
  EXPECT_EQ(c.series[0].log_err_k.size(), 9u);  // the trace compares with exact K/V
  EXPECT_LT(c.series[0].log_dk.back(), c.series[0].log_dk.front());
}

TEST(VizWorker, RunDecodesUntilPausedAndTheUiNeverWaits) {
  Worker w;
  load(w, kTiny);
  prefill(w, "hi");
  settle(w);
  w.set_speed(0);  // as fast as it goes
  WorkerCommand run;
  run.kind = WorkerCommand::run;
  w.post(run);
  // The UI thread's copies stay quick while the model runs.
  double slowest_ms = 0;
  for (int i = 0; i < 50; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const WorkerState s = w.state();
    if (s.telemetry) s.telemetry->snapshot();
    slowest_ms = std::max(
        slowest_ms,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  WorkerCommand pause;
  pause.kind = WorkerCommand::pause;
  w.post(pause);
  settle(w);
  const int held = w.state().position;
  EXPECT_GT(held, 3);
  EXPECT_FALSE(w.state().running);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(w.state().position, held);  // paused: nothing moves
  EXPECT_LT(slowest_ms, 250.0);  // copies under short locks, never a model call (loose: shared CI)
}

// Compare's loss: the score command gives each plan's perplexity on the same tokens, the ones a
// session of its own computes, and leaves the worker under the last plan with no sequence.
TEST(VizWorker, ScoreGivesEachPlansPerplexityOnTheSameTokens) {
  Worker a;
  load(a, kTiny);
  prefill(a, "hello there");
  WorkerCommand step;
  step.kind = WorkerCommand::step;
  step.count = 5;
  a.post(step);
  settle(a);
  const WorkerState as = a.state();
  ASSERT_EQ(as.error, "");
  ASSERT_EQ(as.sequence.size(), 17u);  // BOS + 11 bytes + 5 generated

  Worker b;
  load(b, kTiny);
  WorkerCommand score;
  score.kind = WorkerCommand::score;
  score.tokens = as.sequence;
  score.plans = {"standard", "cla:2"};
  b.post(score);
  settle(b);
  const WorkerState bs = b.state();
  ASSERT_EQ(bs.error, "");
  ASSERT_EQ(bs.scores.size(), 2u);
  EXPECT_EQ(bs.plan_spec, "cla:2");
  EXPECT_TRUE(bs.sequence.empty());
  for (const PlanScore& p : bs.scores) {
    SessionOptions o;
    o.model = kTiny;
    o.allow_random = true;  // the same random weights (drawn under the standard plan) ...
    Session s = Session::load(o);
    RunOptions r = s.run_options();
    r.plan = p.plan;  // ... run under the plan, as the worker does
    s.configure(r);
    const PplResult want = s.ppl(as.sequence, static_cast<int>(as.sequence.size()));
    EXPECT_EQ(p.tokens, 17);
    EXPECT_DOUBLE_EQ(p.perplexity, want.perplexity()) << p.plan;
    EXPECT_GT(p.perplexity, 1.0);
  }
  EXPECT_NE(bs.scores[0].perplexity, bs.scores[1].perplexity);

  score.tokens = {1};  // too short: a named error, the worker stays up
  b.post(score);
  settle(b);
  EXPECT_NE(b.state().error.find("score"), std::string::npos) << b.state().error;
}

// The Attention panel's step-through: while attention is recorded, the worker also keeps each
// layer's scores before the softmax (the engine's tensors telemetry), the same step's: the
// softmax of a row of scores is that row's recorded weights, and masked cells are -inf there and
// 0 in the weights (here LCKV's diagonal in an upward layer). Off, no scores arrive.
TEST(VizWorker, ScoresBeforeTheSoftmaxCameWithTheWeights) {
  Worker w;
  load(w, kTiny);
  plan(w, "lckv:2");  // 0_2_2_3: layer 1 reads layer 2 above (diagonal masked)
  prefill(w, "hello there");
  settle(w);
  WorkerState s = w.state();
  ASSERT_EQ(s.error, "");
  ASSERT_TRUE(s.attn_scores);
  const std::map<int, TensorEvent> scores = s.attn_scores->latest();
  const Snapshot snap = s.telemetry->snapshot();
  ASSERT_TRUE(scores.count(1)) << "no scores for layer 1";
  ASSERT_TRUE(snap.attention.count(1));
  const TensorEvent& t = scores.at(1);
  const AttentionEvent& a = snap.attention.at(1);
  ASSERT_EQ(t.shape, (std::vector<std::int64_t>{a.heads, a.rows, a.cells}));
  int masked = 0;
  for (int h = 0; h < a.heads; ++h) {
    for (int i = 1; i < a.rows; ++i) {  // row 0 of an upward layer sees nothing
      const double* sr = t.values.data() + (static_cast<std::size_t>(h) * a.rows + i) * a.cells;
      const float* pr = a.probs.data() + (static_cast<std::size_t>(h) * a.rows + i) * a.cells;
      double mx = -INFINITY, z = 0;
      for (int j = 0; j < a.cells; ++j) mx = std::max(mx, sr[j]);
      for (int j = 0; j < a.cells; ++j) z += std::isfinite(sr[j]) ? std::exp(sr[j] - mx) : 0.0;
      for (int j = 0; j < a.cells; ++j) {
        if (!std::isfinite(sr[j])) {
          ++masked;
          EXPECT_EQ(pr[j], 0.0f);
        } else {
          EXPECT_NEAR(pr[j], std::exp(sr[j] - mx) / z, 1e-5) << h << " " << i << " " << j;
        }
      }
      const int q = a.query_pos[i];
      for (int j = 0; j < a.cells; ++j) {
        if (a.key_pos[j] == q) {
          EXPECT_FALSE(std::isfinite(sr[j])) << "the diagonal is masked";
        }
      }
    }
  }
  EXPECT_GT(masked, 0);

  WorkerCommand off;
  off.kind = WorkerCommand::attention;
  off.count = 0;
  w.post(off);
  settle(w);
  const std::uint64_t v = w.state().attn_scores->version();
  WorkerCommand step;
  step.kind = WorkerCommand::step;
  w.post(step);
  settle(w);
  EXPECT_EQ(w.state().attn_scores->version(), v) << "scores arrived while not recording";
}

}  // namespace
}  // namespace kvlab::viz
