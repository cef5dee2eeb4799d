// Reference engine invariants in float64 (issue 3): prefill/decode consistency for every plan,
// observers change nothing, thread counts change nothing, the KV store allocates exactly core's
// accounting, and bad input is rejected by name.
#include <gtest/gtest.h>

#include <cmath>

#include <filesystem>
#include <fstream>
#include "core/accounting.hpp"
#include "core/error.hpp"

#include "reference/attention.hpp"
#include "reference/checkpoint.hpp"
#include "reference/engine.hpp"
#include "reference/ops.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

namespace {

std::vector<int> tokens(int n, int seed = 1) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (seed * 7 + i * 13 + i * i) % 37;
  return t;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double scale = 0, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i])) << "NaN/inf at " << i;
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / std::max(scale, 1e-300);
}

std::vector<double> row(const std::vector<double>& m, int r, int V) {
  return std::vector<double>(m.begin() + static_cast<long>(r) * V, m.begin() + (r + 1L) * V);
}

}  // namespace

TEST(EngineInvariants, PrefillThenDecodeEqualsLongerPrefillForEveryPlan) {
  // Lengths that cross cyclic blocks and the default 9 passes (12, 13): an upward decode step
  // that read one cell too many or too few would differ. The long prefill runs enough passes to
  // be exact (r >= T, §3), so every decode row must equal its row.
  const ModelConfig c = tiny_config();
  EngineOptions exact;
  exact.schedule.mode = PrefillMode::fixed;
  exact.schedule.passes = 16;
  for (const auto& spec : all_plan_specs()) {
    const KvPlan plan = KvPlan::parse(spec, c.num_hidden_layers);
    const auto w = init_random<double>(c, plan, 42);
    for (const int T : {12, 13}) {
      const auto toks = tokens(T);
      Engine<double> a(w), b(w, exact);
      // Prefill of n tokens, then decode tokens n+1 .. T one by one.
      const int n = T - 7;
      a.prefill(std::vector<int>(toks.begin(), toks.begin() + n));
      const auto full = b.prefill(toks, /*all_logits=*/true);
      for (int t = n; t < T; ++t) {
        const auto step = a.decode(toks[t]);
        EXPECT_LT(max_rel_diff(step, row(full, t, c.vocab_size)), 1e-11)
            << spec << " T " << T << " token " << t;
      }
      // The logits of the first n rows do not depend on later tokens (causality).
      const auto shorter =
          Engine<double>(w, exact).prefill(std::vector<int>(toks.begin(), toks.begin() + n), true);
      for (int t = 0; t < n; ++t) {
        EXPECT_LT(max_rel_diff(row(shorter, t, c.vocab_size), row(full, t, c.vocab_size)), 1e-11)
            << spec;
      }
    }
  }
}

TEST(EngineInvariants, ObserversChangeNothing) {
  const ModelConfig c = tiny_config();
  for (const auto& spec : {"standard", "cla:2", "yoco", "lckv:2"}) {
    const auto w = init_random<double>(c, KvPlan::parse(spec, 6), 7);
    Engine<double> plain(w), watched(w);
    RecordingObserver rec;
    watched.add_observer(&rec);
    const auto toks = tokens(8);
    EXPECT_EQ(plain.prefill(toks, true), watched.prefill(toks, true)) << spec;
    EXPECT_EQ(plain.decode(3), watched.decode(3)) << spec;
    ASSERT_EQ(rec.summaries.size(), 2u);
    EXPECT_EQ(rec.kv_steps.size(), 12u);  // 6 layers x 2 steps
    EXPECT_EQ(rec.summaries[1].phase, "decode");
    EXPECT_EQ(rec.summaries[1].kv_bytes_held, watched.kv().bytes_held());
  }
}

TEST(EngineInvariants, OneAndTwoThreadsAgree) {
  ModelConfig c = tiny_config();
  c.intermediate_size = 72;  // enough rows for the projections to split
  for (const auto& spec : {"standard", "cla:2", "sandwich-middle:4"}) {
    const auto w = init_random<double>(c, KvPlan::parse(spec, 6), 3);
    EngineOptions one, two;
    one.threads = 1;
    two.threads = 2;
    Engine<double> a(w, one), b(w, two);
    const auto toks = tokens(11);
    EXPECT_LT(max_rel_diff(a.prefill(toks, true), b.prefill(toks, true)), 1e-13) << spec;
    EXPECT_LT(max_rel_diff(a.decode(5), b.decode(5)), 1e-13) << spec;
  }
}

TEST(EngineInvariants, FloatAgreesWithDouble) {
  const ModelConfig c = tiny_config();
  const auto wd = init_random<double>(c, KvPlan::parse("cla:2", 6), 9);
  const auto wf = convert_weights<float>(wd);
  const auto toks = tokens(10);
  const auto ld = Engine<double>(wd).prefill(toks, true);
  const auto lf = Engine<float>(wf).prefill(toks, true);
  std::vector<double> lfd(lf.begin(), lf.end());
  EXPECT_LT(max_rel_diff(lfd, ld), 1e-4);
}

TEST(KvStore, AllocatesExactlyCoresAccountingForEveryGenerator) {
  const ModelConfig c = tiny_config();
  for (const auto& spec : all_plan_specs()) {
    const KvPlan plan = KvPlan::parse(spec, 6);
    for (int context : {1, 2, 3, 17, 64}) {
      KvStore<float> store(plan, c, context);
      EXPECT_EQ(store.bytes_allocated(), kv_sequence_bytes(plan, c, context, Dtype::f32))
          << spec << " context " << context;
      EXPECT_EQ(store.num_banks(), plan.num_kv_layers());
    }
  }
}

TEST(KvStore, BytesHeldFollowTheSequenceAndTheWindow) {
  const ModelConfig c = tiny_config();           // window 3
  const KvPlan plan = KvPlan::parse("yoco", 6);  // banks 0s 1s 2s (window) and 3 (full)
  const auto w = init_random<double>(c, plan, 1);
  Engine<double> e(w);
  e.prefill(tokens(5));
  EXPECT_EQ(e.kv().bank(0).held(), 3);
  EXPECT_EQ(e.kv().bank(3).held(), 5);
  EXPECT_EQ(e.kv().positions(0), (std::vector<int>{2, 3, 4}));
  e.decode(1);
  EXPECT_EQ(e.kv().positions(1), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(e.kv().bank(1).evicted_in_step, 1);
  EXPECT_EQ(e.kv().bytes_held(), kv_sequence_bytes(plan, c, 6, Dtype::f32) * 2);  // doubles
}

TEST(Attention, EmptySetGivesExactZeroAndMaskIsRespected) {
  // One head, D = 2: a query at position 0 in an upward layer sees nothing.
  const std::vector<double> q = {1, 0, 0, 1}, k = {1, 0, 0, 1}, v = {5, 6, 7, 8};
  const std::vector<int> pos = {0, 1};
  std::vector<double> out(4, -1);
  AttentionSet strict;
  strict.strict = true;
  attention(out.data(), q.data(), pos.data(), 2, k.data(), v.data(), pos.data(), 2, 1, 1, 2, strict,
            1);
  EXPECT_EQ(out[0], 0.0);
  EXPECT_EQ(out[1], 0.0);
  EXPECT_EQ(out[2], 5.0);  // the second query sees only the first key
  EXPECT_EQ(out[3], 6.0);
  AttentionSet causal;
  attention(out.data(), q.data(), pos.data(), 2, k.data(), v.data(), pos.data(), 2, 1, 1, 2, causal,
            1);
  EXPECT_EQ(out[0], 5.0);
  const double p1 = 1.0 / (1.0 + std::exp(-1.0 / std::sqrt(2.0)));  // softmax of (0, 1/√2)
  EXPECT_NEAR(out[2], 5 * (1 - p1) + 7 * p1, 1e-15);
}

TEST(Rope, InterleavedPairingEqualsHalfPairingAfterRowPermutation) {
  const int H = 2, D = 8, C = 3;
  std::vector<double> w(H * D * C), x(C);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(1.0 + i);
  for (int i = 0; i < C; ++i) x[i] = std::cos(2.0 + i);
  auto project = [&](const std::vector<double>& m) {
    std::vector<double> y(H * D, 0);
    for (int r = 0; r < H * D; ++r)
      for (int k = 0; k < C; ++k) y[r] += m[r * C + k] * x[k];
    return y;
  };
  const int pos[1] = {5};
  // Interleaved weights rotated interleaved == converted weights rotated half, up to the same
  // row permutation of the result.
  std::vector<double> yi = project(w);
  rope(yi.data(), pos, 1, H, D, 10000.0, RopePairing::interleaved);
  const auto wh = rope_rows_interleaved_to_half(w, H, D, C);
  std::vector<double> yh = project(wh);
  rope(yh.data(), pos, 1, H, D, 10000.0, RopePairing::half);
  const auto yi_as_half = rope_rows_interleaved_to_half(yi, H, D, 1);
  for (int i = 0; i < H * D; ++i) EXPECT_NEAR(yi_as_half[i], yh[i], 1e-14);
  EXPECT_EQ(rope_rows_interleaved_to_half(wh, H, D, C, /*inverse=*/true), w);
}

TEST(EngineErrors, TokenOutOfRange) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 1);
  Engine<double> e(w);
  try {
    e.prefill({1, 2, 37});
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("token = 37 (at index 2) is invalid"), std::string::npos)
        << err.what();
  }
  EXPECT_THROW(e.prefill({-1}), Error);
  EXPECT_THROW(e.prefill({}), Error);
}

TEST(EngineErrors, PromptLongerThanContext) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 1);
  EngineOptions o;
  o.context = 4;
  Engine<double> e(w, o);
  EXPECT_NO_THROW(e.prefill(tokens(4)));
  EXPECT_THROW(e.decode(1), Error);
  EXPECT_THROW(e.prefill(tokens(5)), Error);
}

TEST(EngineErrors, PlanNeedsWeightsTheCheckpointLacks) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("cla:2", 6), 1);
  EngineOptions o;
  o.plan = KvPlan::parse("standard", 6);
  EXPECT_THROW(Engine<double>(w, o), Error);
  o.plan = KvPlan::parse("cla:4", 6);  // KV layers 0, 4 ⊂ {0, 2, 4}
  EXPECT_NO_THROW(Engine<double>(w, o));
  o.threads = 0;
  EXPECT_THROW(Engine<double>(w, o), Error);
}

TEST(Weights, CheckRejectsNaN) {
  auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 1);
  EXPECT_NO_THROW(check_weights(w));
  w.layers[3].w2[5] = std::nan("");
  try {
    check_weights(w);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.3.mlp.down_proj.weight"), std::string::npos);
  }
}

TEST(Checkpoint, EitherRopePairingLoadsToTheSameLogits) {
  // The same weights written with W_Q/W_K rows in interleaved pairing (Meta / llama2.c) and in
  // Hugging Face's half pairing load to the same model.
  const ModelConfig c = tiny_config();
  const auto w = init_random<float>(c, KvPlan::parse("cla:2", 6), 12);
  const auto base =
      std::filesystem::temp_directory_path() / ("kvlab_rope_" + std::to_string(::getpid()));
  save_checkpoint((base / "half").string(), w);
  save_checkpoint_interleaved((base / "inter").string(), w);
  const auto a = load_checkpoint<double>((base / "half").string());
  const auto b = load_checkpoint<double>((base / "inter").string());
  const auto la = Engine<double>(a).prefill(tokens(9), true);
  const auto lb = Engine<double>(b).prefill(tokens(9), true);
  EXPECT_LT(max_rel_diff(lb, la), 1e-14);
  // The stored rows really differ (the permutation is not the identity).
  EXPECT_NE(rope_rows_interleaved_to_half(a.layers[0].wq, c.num_attention_heads, c.head_dim,
                                          c.hidden_size, /*inverse=*/true),
            a.layers[0].wq);
  std::filesystem::remove_all(base);
}

namespace {
// The message of the kvlab::Error that constructing an engine with `o` throws ("" if none).
std::string engine_error(const EngineOptions& o) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 1);
  try {
    Engine<double> e(w, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(EngineErrors, NoSilentPolicyFallbacks) {
  EngineOptions o;
  // An evicting policy without a budget used to keep everything.
  o.policy = PolicySpec::parse("h2o");
  EXPECT_NE(engine_error(o).find("--budget = (none)"), std::string::npos) << engine_error(o);
  o.policy = PolicySpec::parse("streaming:2");
  EXPECT_NE(engine_error(o).find("--budget"), std::string::npos);
  o.policy = PolicySpec::parse("window:4");  // the window is the budget
  EXPECT_EQ(engine_error(o), "");
  // A budget past the context used to be clamped without a word (context 64 here).
  o.policy = PolicySpec::parse("h2o");
  o.budget = BudgetSpec::parse("65");
  EXPECT_NE(engine_error(o).find("must be at most the context, 64 tokens"), std::string::npos)
      << engine_error(o);
  o.budget = BudgetSpec::parse("64");
  EXPECT_EQ(engine_error(o), "");
  o.policy = PolicySpec::parse("window:80");
  o.budget = {};
  EXPECT_NE(engine_error(o).find("--budget = 80 tokens"), std::string::npos) << engine_error(o);
  // window:W with SqueezeAttention used to ignore W.
  o.policy = PolicySpec::parse("window:8");
  o.squeeze.enabled = true;
  o.squeeze.f0 = 0.5;
  o.squeeze.f3 = 0.2;
  EXPECT_NE(engine_error(o).find("--policy = window:8"), std::string::npos) << engine_error(o);
  o.policy = PolicySpec::parse("window");
  EXPECT_EQ(engine_error(o), "");
}
