// LCKV iterative prefill in float64 (issue 4, techniques.md §3): the exactness theorem, decode
// after an iterative prefill, one pass for bottom-target plans, convergence mode, telemetry.
#include <gtest/gtest.h>

#include <cmath>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "reference/engine.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

namespace {

std::vector<int> tokens(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (5 + i * 11 + i * i * 3) % 37;
  return t;
}

// Max |a - b| / max |b| over rows [r0, r1) of (rows, V) matrices.
double rel_diff_rows(const std::vector<double>& a, const std::vector<double>& b, int r0, int r1,
                     int V) {
  double scale = 0, diff = 0;
  for (long i = static_cast<long>(r0) * V; i < static_cast<long>(r1) * V; ++i) {
    EXPECT_TRUE(std::isfinite(a[i])) << "non-finite logit at " << i;
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / scale;
}

EngineOptions schedule(PrefillMode mode, int passes = 9) {
  EngineOptions o;
  o.schedule.mode = mode;
  o.schedule.passes = passes;
  return o;
}

const std::vector<std::string> kUpwardPlans = {
    "lckv:2",        "sandwich-middle:4", "sandwich-top:3", "pizza-top:3", "pizza-middle:3",
    "lasagna-top:3", "lasagna-middle:2",  "0_3_5_3_5_5",    "2_2_2_5_5_5", "0s_3s_3_3_4_5"};

}  // namespace

TEST(Lckv, EnoughPassesEqualTokenByTokenAndFewerPassesFixTheFirstTokens) {
  const ModelConfig c = tiny_config();
  const int T = 12, V = c.vocab_size;
  for (const auto& spec : kUpwardPlans) {
    const KvPlan plan = KvPlan::parse(spec, 6);
    ASSERT_TRUE(plan.has_upward()) << spec;
    const auto w = init_random<double>(c, plan, 11);
    Engine<double> exact(w, schedule(PrefillMode::token_by_token));
    const auto ref = exact.prefill(tokens(T), true);
    for (int r : {T, T + 3}) {
      Engine<double> it(w, schedule(PrefillMode::fixed, r));
      const auto got = it.prefill(tokens(T), true);
      EXPECT_LT(rel_diff_rows(got, ref, 0, T, V), 1e-12) << spec << " passes " << r;
      // The cache written by the last pass is the exact one.
      for (int b = 0; b < it.kv().num_banks(); ++b) {
        EXPECT_EQ(it.kv().positions(b), exact.kv().positions(b));
        for (std::size_t i = 0;
             i < static_cast<std::size_t>(exact.kv().bank(b).held()) * it.kv().row_size(); ++i) {
          ASSERT_NEAR(it.kv().keys(b)[i], exact.kv().keys(b)[i], 1e-11) << spec;
          ASSERT_NEAR(it.kv().values(b)[i], exact.kv().values(b)[i], 1e-11) << spec;
        }
      }
    }
    for (int r : {1, 3, 7}) {
      Engine<double> it(w, schedule(PrefillMode::fixed, r));
      const auto got = it.prefill(tokens(T), true);
      EXPECT_LT(rel_diff_rows(got, ref, 0, r, V), 1e-12) << spec << " passes " << r;
      // ... and the rest are not there yet (the theorem is tight enough to be worth testing).
      EXPECT_GT(rel_diff_rows(got, ref, r, T, V), 1e-9) << spec << " passes " << r;
    }
  }
}

TEST(Lckv, DecodeAfterIterativePrefillIsExact) {
  // Prefill n tokens with n passes (exact), then decode: token t sees the target K/V of < t.
  const ModelConfig c = tiny_config();
  const int n = 11, total = 14;
  for (const auto& spec : kUpwardPlans) {
    const auto w = init_random<double>(c, KvPlan::parse(spec, 6), 2);
    const auto toks = tokens(total);
    Engine<double> a(w, schedule(PrefillMode::fixed, n));
    a.prefill(std::vector<int>(toks.begin(), toks.begin() + n));
    const auto full = Engine<double>(w, schedule(PrefillMode::fixed, total)).prefill(toks, true);
    for (int t = n; t < total; ++t) {
      const auto step = a.decode(toks[t]);
      const std::vector<double> want(full.begin() + static_cast<long>(t) * c.vocab_size,
                                     full.begin() + (t + 1L) * c.vocab_size);
      EXPECT_LT(rel_diff_rows(step, want, 0, 1, c.vocab_size), 1e-12) << spec << " token " << t;
    }
  }
}

TEST(Lckv, BottomTargetPlansTakeOnePass) {
  const ModelConfig c = tiny_config();
  for (const std::string spec : {"cla:2", "cla:3", "pizza-bottom:3", "sandwich-bottom:4",
                                 "lasagna-bottom:3", "yoco", "mlkv:2", "standard"}) {
    const KvPlan plan = KvPlan::parse(spec, 6);
    EXPECT_TRUE(plan.cyclic_blocks().empty()) << spec;
    const auto w = init_random<double>(c, plan, 4);
    Engine<double> single(w), iter(w, schedule(PrefillMode::fixed, 5));
    RecordingObserver rec;
    iter.add_observer(&rec);
    EXPECT_EQ(single.prefill(tokens(13), true), iter.prefill(tokens(13), true)) << spec;
    EXPECT_TRUE(rec.passes.empty()) << spec;
    EXPECT_TRUE(iter.passes_run().empty()) << spec;
  }
}

TEST(Lckv, ConvergenceModeStopsWhenTheChangeIsSmall) {
  const ModelConfig c = tiny_config();
  const int T = 20;
  const auto w = init_random<double>(c, KvPlan::parse("lckv:2", 6), 5);
  EngineOptions o = schedule(PrefillMode::converge);
  o.schedule.eps = 1e-6;
  o.schedule.max_passes = 40;
  Engine<double> e(w, o);
  RecordingObserver rec;
  e.add_observer(&rec);
  const auto got = e.prefill(tokens(T), true);
  ASSERT_EQ(e.passes_run().size(), 1u);
  const int passes = e.passes_run()[0];
  EXPECT_LT(passes, 40);
  ASSERT_EQ(static_cast<int>(rec.passes.size()), passes);  // one target (layer 4)
  EXPECT_TRUE(rec.passes.back().converged);
  EXPECT_LT(std::max(rec.passes.back().rel_dk, rec.passes.back().rel_dv), 1e-6);
  for (size_t i = 0; i + 1 < rec.passes.size(); ++i) EXPECT_FALSE(rec.passes[i].converged);
  EXPECT_EQ(rec.passes[0].rel_dk, 1.0);  // the first pass moves away from zeros entirely
  for (const auto& p : rec.passes) {
    // The relative mean change: mean |Δ| over the same scale, so never above the max.
    EXPECT_LE(p.rel_mean_dk, p.rel_dk);
    EXPECT_LE(p.rel_mean_dv, p.rel_dv);
    EXPECT_GT(p.rel_mean_dk, 0.0);
  }
  EXPECT_LT(rec.passes[0].rel_mean_dk, 1.0);  // mean |K| / max |K| from zeros
  const auto exact =
      Engine<double>(w, schedule(PrefillMode::token_by_token)).prefill(tokens(T), true);
  EXPECT_LT(rel_diff_rows(got, exact, 0, T, c.vocab_size), 1e-4);
}

TEST(Lckv, PassEventsReportErrorAgainstExactKv) {
  const ModelConfig c = tiny_config();
  const int T = 10;
  const auto w = init_random<double>(c, KvPlan::parse("lckv:2", 6), 6);
  Engine<double> exact(w, schedule(PrefillMode::token_by_token));
  exact.prefill(tokens(T));
  Engine<double> it(w, schedule(PrefillMode::fixed, T));
  const int b = it.kv().bank_of_layer(1);  // the target bank (layer 4)
  const long n = static_cast<long>(T) * it.kv().row_size();
  ASSERT_EQ(exact.kv().bank(b).held(), T);
  it.set_exact_kv(b, std::vector<double>(exact.kv().keys(b), exact.kv().keys(b) + n),
                  std::vector<double>(exact.kv().values(b), exact.kv().values(b) + n));
  RecordingObserver rec;
  it.add_observer(&rec);
  it.prefill(tokens(T));
  ASSERT_EQ(static_cast<int>(rec.passes.size()), T);
  EXPECT_GT(rec.passes[0].err_k, 1e-3);
  EXPECT_LT(rec.passes.back().err_k, 1e-12);
  EXPECT_LT(rec.passes.back().err_v, 1e-12);
  for (int p = 0; p < T; ++p) EXPECT_EQ(rec.passes[p].tokens_exact, p + 1);
}

TEST(Lckv, ForceNoDiagMasksEveryLayer) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("standard", 6), 8);
  EngineOptions o;
  o.force_nodiag = true;
  const auto a = Engine<double>(w).prefill(tokens(6), true);
  const auto b = Engine<double>(w, o).prefill(tokens(6), true);
  EXPECT_GT(rel_diff_rows(b, a, 0, 6, c.vocab_size), 1e-6);
  // The first token sees nothing in any layer: its logits are those of the embedding alone
  // passed through the MLPs, identical to a model whose attention outputs are zero.
  auto w0 = w;
  for (auto& L : w0.layers) std::fill(L.wo.begin(), L.wo.end(), 0.0);
  const auto zero_attn = Engine<double>(w0).prefill(tokens(1), true);
  EXPECT_LT(rel_diff_rows(b, zero_attn, 0, 1, c.vocab_size), 1e-14);
}

TEST(Lckv, TinyLlamaLckv2AllocatesThreeTwentySecondsOfStandard) {
  const ModelConfig c = find_model_preset("tinyllama-1.1b").config;
  KvStore<float> lckv(KvPlan::parse("lckv:2", 22), c, 16),
      standard(KvPlan::parse("standard", 22), c, 16);
  EXPECT_EQ(lckv.bytes_allocated() * 22, standard.bytes_allocated() * 3);
  EXPECT_EQ(lckv.bytes_allocated(), 16 * 3072 * 2);  // f32: twice the 16-bit 3072 B/token
}

TEST(Lckv, ScheduleErrorsNameTheFlag) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("lckv:2", 6), 1);
  EngineOptions o = schedule(PrefillMode::fixed, 0);
  EXPECT_THROW(Engine<double>(w, o), Error);
  o = schedule(PrefillMode::converge);
  o.schedule.eps = 0;
  try {
    Engine<double> e(w, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--converge"), std::string::npos);
  }
}

TEST(Lckv, TokensExactFollowsTheEarlierBlocksInConvergeMode) {
  // Two cyclic blocks ([0, 2] reads 2, [3, 5] reads 5). In converge mode the first block may stop
  // after r passes; only its first r output rows are then exact, so no pass of the second block
  // can make more than r tokens exact.
  const ModelConfig c = tiny_config();
  const KvPlan plan = KvPlan::parse("2_2_2_5_5_5", 6);
  ASSERT_EQ(plan.cyclic_blocks().size(), 2u);
  const int T = 14;
  bool checked = false;
  for (int seed = 1; seed <= 6; ++seed) {
    const auto w = init_random<double>(c, plan, seed);
    for (double eps : {0.3, 0.1, 0.03, 1e-2, 1e-3}) {
      EngineOptions o = schedule(PrefillMode::converge);
      o.schedule.eps = eps;
      Engine<double> e(w, o);
      RecordingObserver rec;
      e.add_observer(&rec);
      e.prefill(tokens(T));
      ASSERT_EQ(e.passes_run().size(), 2u);
      const int first = e.passes_run()[0];
      for (const auto& p : rec.passes) {
        const int bound = p.block == 0 ? std::min(p.pass, T) : std::min({p.pass, T, first});
        EXPECT_EQ(p.tokens_exact, bound) << "seed " << seed << " eps " << eps;
      }
      checked = checked || e.passes_run()[1] > first;
    }
  }
  EXPECT_TRUE(checked) << "no case where the second block ran longer than the first";
}
