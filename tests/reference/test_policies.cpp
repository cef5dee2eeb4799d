// Sequence policies and SqueezeAttention (issue 5, techniques.md §5–§6): exactly which cells each
// policy keeps on hand-made patterns, per KV head; H2O scoring; both position modes; budgets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "reference/cpu_backend.hpp"
#include "reference/engine.hpp"
#include "reference/policies.hpp"
#include "reference/squeeze.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

namespace {

std::vector<int> kept_positions(const PolicySpec& p, int budget, const std::vector<int>& pos,
                                const std::vector<double>& score,
                                const std::vector<double>& count = {}) {
  const std::vector<double> c = count.empty() ? std::vector<double>(pos.size(), 1.0) : count;
  std::vector<int> out;
  for (int i : select_cells(p, budget, pos, score, c)) out.push_back(pos[i]);
  return out;
}

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int> tokens(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (3 + i * 7 + i * i) % 37;
  return t;
}

EngineOptions with_policy(const std::string& policy, const std::string& budget = "") {
  EngineOptions o;
  o.policy = PolicySpec::parse(policy);
  if (!budget.empty()) o.budget = BudgetSpec::parse(budget);
  return o;
}

}  // namespace

TEST(Policies, WindowKeepsTheMostRecent) {
  const std::vector<double> zero(10, 0.0);
  EXPECT_EQ(kept_positions(PolicySpec::parse("window"), 4, iota(10), zero),
            (std::vector<int>{6, 7, 8, 9}));
  EXPECT_EQ(kept_positions(PolicySpec::parse("window"), 12, iota(10), zero), iota(10));
}

TEST(Policies, StreamingKeepsSinksAndRecentInsideTheBudget) {
  const std::vector<double> zero(10, 0.0);
  EXPECT_EQ(kept_positions(PolicySpec::parse("streaming:2"), 5, iota(10), zero),
            (std::vector<int>{0, 1, 7, 8, 9}));
  // Default 4 sinks.
  EXPECT_EQ(kept_positions(PolicySpec::parse("streaming"), 6, iota(10), zero),
            (std::vector<int>{0, 1, 2, 3, 8, 9}));
}

TEST(Policies, H2oKeepsRecentAndHeavyHitters) {
  //                         pos: 0    1    2    3    4    5    6    7
  const std::vector<double> score = {5.0, 0.1, 3.0, 0.2, 4.0, 0.0, 0.0, 0.0};
  // Budget 4, R = 2 recent (6, 7), then the two heaviest among 0..5: 0 (5.0) and 4 (4.0).
  EXPECT_EQ(kept_positions(PolicySpec::parse("h2o:2"), 4, iota(8), score),
            (std::vector<int>{0, 4, 6, 7}));
  // Default R = B / 2.
  EXPECT_EQ(kept_positions(PolicySpec::parse("h2o"), 4, iota(8), score),
            (std::vector<int>{0, 4, 6, 7}));
  // norm=count: 0 was seen by 10 rows (mean 0.5), 2 by 2 rows (mean 1.5), 4 by 8 (0.5).
  const std::vector<double> count = {10, 1, 2, 1, 8, 1, 1, 1};
  EXPECT_EQ(kept_positions(PolicySpec::parse("h2o:2,norm=count"), 4, iota(8), score, count),
            (std::vector<int>{0, 2, 6, 7}));  // 2 (1.5) then 0 and 4 tie at 0.5: the older wins
}

TEST(Policies, ParseErrorsNameTheField) {
  EXPECT_THROW(PolicySpec::parse("lru"), Error);
  EXPECT_THROW(PolicySpec::parse("window:0"), Error);
  EXPECT_THROW(PolicySpec::parse("full:3"), Error);
  EXPECT_THROW(PolicySpec::parse("window,norm=count"), Error);
  EXPECT_THROW(BudgetSpec::parse("1.5"), Error);
  EXPECT_THROW(BudgetSpec::parse("0.0"), Error);
  EXPECT_THROW(BudgetSpec::parse("-3"), Error);
  EXPECT_EQ(BudgetSpec::parse("25%").resolve(40), 10);
  EXPECT_EQ(BudgetSpec::parse("30%").resolve(10), 3);
  EXPECT_EQ(BudgetSpec::parse("17").resolve(40), 17);
  try {
    BudgetSpec::parse("1%").resolve(40);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--budget"), std::string::npos);
  }
}

namespace {

// The message of the kvlab::Error that f throws ("" when it throws nothing).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Policies, BankBudgetMinimumPerPolicy) {
  EXPECT_EQ(min_budget(PolicySpec::parse("full")), 1);
  EXPECT_EQ(min_budget(PolicySpec::parse("window")), 1);
  EXPECT_EQ(min_budget(PolicySpec::parse("streaming")), 5);  // 4 sinks + 1 recent
  EXPECT_EQ(min_budget(PolicySpec::parse("streaming:0")), 1);
  EXPECT_EQ(min_budget(PolicySpec::parse("h2o:6")), 6);
  EXPECT_EQ(min_budget(PolicySpec::parse("h2o")), 1);  // R = B / 2 fits any budget
  EXPECT_EQ(min_budget(PolicySpec::parse("h2o:0")), 1);
}

TEST(Policies, BankBudgetCheckRaisesSqueezeBudgetsAndRejectsUserBudgets) {
  const auto streaming = PolicySpec::parse("streaming:4"), h2o = PolicySpec::parse("h2o:6");
  const auto user = BudgetSource::user, squeeze = BudgetSource::squeeze;
  // Budgets the policy can honour pass unchanged, with no note.
  for (auto src : {user, squeeze}) {
    const BankBudget ok = check_bank_budget(streaming, 5, src, 2);
    EXPECT_EQ(ok.budget, 5);
    EXPECT_FALSE(ok.raised());
    EXPECT_EQ(check_bank_budget(h2o, 6, src).budget, 6);
    EXPECT_EQ(check_bank_budget(PolicySpec::parse("h2o"), 1, src).budget, 1);
    EXPECT_EQ(check_bank_budget(PolicySpec::parse("window"), 3, src).budget, 3);
  }
  // SqueezeAttention budgets below the minimum are raised, with a note that says why.
  const BankBudget s = check_bank_budget(streaming, 4, squeeze, 3);
  EXPECT_EQ(s.budget, 5);
  ASSERT_TRUE(s.raised());
  for (const char* part : {"bank 3", "4 raised to 5", "streaming:4", "sinks"}) {
    EXPECT_NE(s.note.find(part), std::string::npos) << s.note;
  }
  const BankBudget h = check_bank_budget(h2o, 2, squeeze, 0);
  EXPECT_EQ(h.budget, 6);
  for (const char* part : {"bank 0", "2 raised to 6", "h2o:6", "recent"}) {
    EXPECT_NE(h.note.find(part), std::string::npos) << h.note;
  }
  // The same budgets from the user are errors naming the field, the value and the range.
  std::string e = error_of([&] { check_bank_budget(streaming, 4, user); });
  for (const char* part : {"--budget = 4 tokens", "at least 5", "sinks"}) {
    EXPECT_NE(e.find(part), std::string::npos) << e;
  }
  e = error_of([&] { check_bank_budget(h2o, 5, user, 1); });
  for (const char* part : {"--policy = h2o:6", "budget of 5 (bank 1)", "at least 6"}) {
    EXPECT_NE(e.find(part), std::string::npos) << e;
  }
  // window:W sets the budget: another user budget, or SqueezeAttention's, is reported.
  const auto w8 = PolicySpec::parse("window:8");
  EXPECT_EQ(check_bank_budget(w8, 8, user).budget, 8);
  e = error_of([&] { check_bank_budget(w8, 5, user); });
  EXPECT_NE(e.find("--budget = 5"), std::string::npos) << e;
  EXPECT_NE(e.find("window:8 already sets the budget to 8"), std::string::npos) << e;
  for (int b : {3, 8, 12}) {
    e = error_of([&] { check_bank_budget(w8, b, squeeze); });
    EXPECT_NE(e.find("--policy = window:8"), std::string::npos) << e;
    EXPECT_NE(e.find("SqueezeAttention"), std::string::npos) << e;
  }
  // SqueezeAttention needs an evicting policy; no bank keeps fewer than 1 token.
  e = error_of([&] { check_bank_budget(PolicySpec::parse("full"), 10, squeeze); });
  EXPECT_NE(e.find("--policy = full"), std::string::npos) << e;
  for (auto src : {user, squeeze}) {
    e = error_of([&] { check_bank_budget(PolicySpec::parse("window"), 0, src, 4); });
    EXPECT_NE(e.find("--budget = 0 tokens (bank 4)"), std::string::npos) << e;
  }
}

TEST(KvStorePolicies, H2oSelectsPerKvHead) {
  ModelConfig c = tiny_config(1);  // 6 query heads, 2 KV heads
  KvStore<double> store(KvPlan::parse("standard", 1), c, 16, PolicySpec::parse("h2o:1"));
  const int row = store.row_size();
  std::vector<double> k(6 * row), v(6 * row);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = v[i] = static_cast<double>(i);
  const std::vector<int> pos = iota(6);
  store.append(0, k.data(), v.data(), pos.data(), 6);
  // One query row at position 5; heads 0-2 read KV head 0 and favour cell 1, heads 3-5 read KV
  // head 1 and favour cell 3.
  std::vector<double> probs(6 * 6, 0.0);
  for (int h = 0; h < 6; ++h) probs[h * 6 + (h < 3 ? 1 : 3)] = 1.0;
  const int q = 5;
  CpuBackend<double> cpu;
  store.add_scores(0, cpu, probs.data(), &q, AttentionSet{}, 6, 1, 6);
  store.set_budget(0, 2);
  store.apply_policy(0);
  EXPECT_EQ(store.positions(0, 0), (std::vector<int>{1, 5}));
  EXPECT_EQ(store.positions(0, 1), (std::vector<int>{3, 5}));
  // The K/V rows moved with their cells: head 1's first kept row is cell 3's.
  const int D = c.head_dim;
  EXPECT_EQ(store.keys(0)[0], k[1 * row]);
  EXPECT_EQ(store.keys(0)[D], k[3 * row + D]);
  EXPECT_EQ(store.bank(0).evicted_in_step, 4);
  EXPECT_EQ(store.bank(0).capacity, 3);  // budget + 1: the next step's token
}

TEST(EnginePolicies, BudgetOfTheWholeContextReproducesFullBitForBit) {
  const ModelConfig c = tiny_config();
  for (const std::string plan : {"standard", "cla:2", "lckv:2"}) {
    const auto w = init_random<double>(c, KvPlan::parse(plan, 6), 3);
    Engine<double> full(w);
    for (const std::string policy : {"window", "streaming:2", "h2o", "h2o:3,norm=count"}) {
      Engine<double> e(w, with_policy(policy, "64"));
      EXPECT_EQ(full.prefill(tokens(12), true), e.prefill(tokens(12), true)) << plan << policy;
      for (int t = 0; t < 5; ++t) EXPECT_EQ(full.decode(t + 1), e.decode(t + 1)) << policy;
    }
  }
}

TEST(EnginePolicies, PositionModesAgreeUntilSomethingIsEvicted) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("cla:2", 6), 4);
  EngineOptions abs_o = with_policy("streaming:2", "64"), cache_o = abs_o;
  cache_o.policy.positions = PositionMode::cache;
  Engine<double> a(w, abs_o), b(w, cache_o);
  auto la = a.prefill(tokens(10), true), lb = b.prefill(tokens(10), true);
  for (std::size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 1e-12);
  for (int t = 0; t < 4; ++t) {
    la = a.decode(t);
    lb = b.decode(t);
    for (std::size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 1e-12);
  }
  // With eviction the modes differ (cache mode re-rotates keys by slot).
  EngineOptions abs6 = with_policy("streaming:2", "6"), cache6 = abs6;
  cache6.policy.positions = PositionMode::cache;
  Engine<double> a6(w, abs6), b6(w, cache6);
  a6.prefill(tokens(10));
  b6.prefill(tokens(10));
  const auto x = a6.decode(1), y = b6.decode(1);
  double diff = 0;
  for (std::size_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::abs(x[i] - y[i]));
  EXPECT_GT(diff, 1e-9);
}

TEST(EnginePolicies, BanksHoldTheBudgetAfterPrefillAndEveryStep) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("cla:2", 6), 5);
  for (const std::string policy : {"window", "streaming:2", "h2o"}) {
    Engine<double> e(w, with_policy(policy, "50%"));
    RecordingObserver rec;
    e.add_observer(&rec);
    e.prefill(tokens(12));
    for (int b = 0; b < e.kv().num_banks(); ++b) EXPECT_EQ(e.kv().bank(b).held(), 6) << policy;
    EXPECT_EQ(rec.kv_steps[0].evicted, 6);
    for (int t = 0; t < 5; ++t) {
      e.decode(t);
      for (int b = 0; b < e.kv().num_banks(); ++b) {
        EXPECT_EQ(e.kv().bank(b).held(), 6);
        EXPECT_EQ(e.kv().bank(b).evicted_in_step, 1);
      }
    }
    EXPECT_EQ(e.kv().bytes_held(), 3 * 6 * e.kv().bytes_per_cell());
    if (policy == "streaming:2") {
      EXPECT_EQ(e.kv().positions(0), (std::vector<int>{0, 1, 13, 14, 15, 16}));
    }
    if (policy == "window") {
      EXPECT_EQ(e.kv().positions(0), (std::vector<int>{11, 12, 13, 14, 15, 16}));
    }
  }
}

TEST(EnginePolicies, H2oEvictedTokensGetNoFurtherScore) {
  // Standard plan: bank 0 is read by layer 0 alone, and each KV head by 3 query heads, so one
  // decode step hands each KV head exactly 3 of attention (every head's probabilities sum to 1
  // over the B + 1 cells the step sees). Budget 5, R = 2: each step adds a token and evicts one.
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("standard", 6), 6);
  Engine<double> e(w, with_policy("h2o:2", "5"));
  e.prefill(tokens(12));
  const int H_kv = 2, group = 3;
  const auto& bank = e.kv().bank(0);
  // Position -> score of head g's cells.
  auto cells = [&](int g) {
    std::map<int, double> m;
    for (int s = 0; s < bank.held(); ++s) m[bank.pos[s * H_kv + g]] = bank.score[s * H_kv + g];
    return m;
  };
  std::vector<std::set<int>> evicted(H_kv);
  for (int t = 0; t < 8; ++t) {
    std::vector<std::map<int, double>> before;
    for (int g = 0; g < H_kv; ++g) before.push_back(cells(g));
    e.decode(t % 37);
    const int fresh = 12 + t;  // the step's own token
    for (int g = 0; g < H_kv; ++g) {
      const std::map<int, double> now = cells(g);
      ASSERT_EQ(before[g].size(), 5u);
      ASSERT_EQ(now.size(), 5u);
      ASSERT_EQ(now.count(fresh), 1u) << "the newest token is in the recent window";
      // Exactly one old cell is gone; no evicted position ever comes back.
      std::vector<int> gone;
      for (const auto& [p, sc] : before[g]) {
        if (!now.count(p)) gone.push_back(p);
      }
      ASSERT_EQ(gone.size(), 1u) << "step " << t << " head " << g;
      for (const auto& [p, sc] : now) EXPECT_EQ(evicted[g].count(p), 0u) << "position " << p;
      evicted[g].insert(gone[0]);
      // The kept cells carry their own scores plus what this step gave them: each gain is in
      // [0, 3], and together they fall short of 3 by exactly what the evicted cell took; its
      // score left the bank with it (nothing of it moved to another slot).
      double kept_gain = 0;
      for (const auto& [p, sc] : now) {
        const double gain = sc - (p == fresh ? 0.0 : before[g].at(p));
        EXPECT_GE(gain, 0.0) << "position " << p;
        EXPECT_LE(gain, group + 1e-9) << "position " << p;
        kept_gain += gain;
      }
      const double took = group - kept_gain;
      EXPECT_GT(took, 0.0);  // a softmax gives every cell it sees a share
      // H2O evicted the lightest cell outside the 2 most recent, counting this step's share.
      const double evicted_score = before[g].at(gone[0]) + took;
      for (const auto& [p, sc] : now) {
        if (p < fresh - 1) {
          EXPECT_LE(evicted_score, sc + 1e-12) << "step " << t << " kept " << p;
        }
      }
    }
  }
  for (int g = 0; g < H_kv; ++g) EXPECT_EQ(evicted[g].size(), 8u);
}

TEST(Squeeze, KmeansIsOptimalAndSortedByCentre) {
  EXPECT_EQ(kmeans3_1d({0.9, 0.1, 0.5, 0.52, 0.11, 0.95}), (std::vector<int>{3, 1, 2, 2, 1, 3}));
  EXPECT_EQ(kmeans3_1d({0.5, 0.5, 0.5}), (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(kmeans3_1d({0.2, 0.8}), (std::vector<int>{1, 3}));
}

TEST(Squeeze, KmeansSeparatesTightClustersNearOne) {
  // Importances near 1 (layers that barely change the stream), 1e-8 apart: three clear groups,
  // the best split's SSE a quarter of the next best. Prefix sums of squares (≈ 6) lose the
  // 1e-16-sized SSEs to rounding and picked {87} {88, 89} {93, 94, 98}.
  const std::vector<double> v = {0.99999993, 0.99999987, 0.99999998,
                                 0.99999989, 0.99999994, 0.99999988};
  EXPECT_EQ(kmeans3_1d(v), (std::vector<int>{2, 1, 3, 1, 2, 1}));
  EXPECT_EQ(kmeans3_1d({0.99999977, 0.99999979, 0.9999999, 0.99999991, 0.99999995}),
            (std::vector<int>{1, 1, 2, 2, 3}));
  // The same pattern anywhere on [0, 1] gives the same clusters.
  for (double base : {0.0, 0.25, 0.5, 0.9, 0.9999, 0.99999}) {
    std::vector<double> w;
    for (double x : v) w.push_back(base + (x - 0.99999987) * 1e-1);
    EXPECT_EQ(kmeans3_1d(w), (std::vector<int>{2, 1, 3, 1, 2, 1})) << base;
  }
}

TEST(Squeeze, BudgetsKeepTheUniformTotal) {
  SqueezeSpec s;
  s.enabled = true;
  s.f0 = 0.4;
  s.f3 = 0.1;
  const std::vector<double> imp = {0.5, 0.6, 0.95, 0.97, 0.7, 0.96, 0.55, 0.99};
  const auto r = squeeze_budgets(imp, s, 100);
  EXPECT_EQ(r.cluster, (std::vector<int>{1, 1, 3, 3, 2, 3, 1, 3}));
  EXPECT_NEAR(r.a, (8 * 0.4 - 4 * 0.1) / 4, 1e-12);
  // Shares 70 (a = 0.7) and 10 (f3): whole numbers, so the budgets are exactly the shares.
  EXPECT_EQ(r.budget, (std::vector<int>{70, 70, 10, 10, 70, 10, 70, 10}));
  EXPECT_EQ(std::accumulate(r.budget.begin(), r.budget.end(), 0), 8 * 40);
  s.f3 = 0.4;  // f3 = f0: uniform
  for (int b : squeeze_budgets(imp, s, 100).budget) EXPECT_EQ(b, 40);
  s.f0 = 0.9;
  s.f3 = 0.1;  // a = (8·0.9 − 4·0.1)/4 = 1.7 > 1
  EXPECT_THROW(squeeze_budgets(imp, s, 100), Error);
  s.f0 = 0.1;
  s.f3 = 0.9;  // a < 0
  EXPECT_THROW(squeeze_budgets(imp, s, 100), Error);
}

TEST(Squeeze, ApportionHandsTheRestToTheLargestRemainders) {
  // Shares scaled to 10: 3.3, 3.3, 3.4 -> floors 3, 3, 3, and the one token left goes to 3.4.
  EXPECT_EQ(apportion_budgets({0.33, 0.33, 0.34}, 10), (std::vector<int>{3, 3, 4}));
  // Equal remainders: the lower bank first.
  EXPECT_EQ(apportion_budgets({1, 1, 1}, 5), (std::vector<int>{2, 2, 1}));
  EXPECT_EQ(apportion_budgets({1, 1, 1, 1}, 6), (std::vector<int>{2, 2, 1, 1}));
  // Shares equal in exact arithmetic but not in floats (0.9 · 15 and 0.3 · 15 scaled by 36 / 36
  // give 13.5000000000002 and 4.500000000000001): still a tie, lower bank first (§6 step 3).
  const double a = (4 * 0.6 - 2 * 0.3) / 2;  // 0.8999999999999999
  EXPECT_EQ(apportion_budgets({a * 15, 0.3 * 15, a * 15, 0.3 * 15}, 36),
            (std::vector<int>{14, 5, 13, 4}));
  // Shares are scaled: only their proportions matter.
  EXPECT_EQ(apportion_budgets({2, 6}, 20), (std::vector<int>{5, 15}));
  EXPECT_EQ(apportion_budgets({0.2, 0.6}, 20), (std::vector<int>{5, 15}));
  // The minimum: a share below 1 token is held at 1 and the others share the rest.
  EXPECT_EQ(apportion_budgets({0.01, 10, 10}, 10), (std::vector<int>{1, 5, 4}));
  EXPECT_EQ(apportion_budgets({0, 0, 5}, 3), (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(apportion_budgets({0, 1}, 7, 3), (std::vector<int>{3, 4}));
  EXPECT_THROW(apportion_budgets({1, 1, 1}, 2), Error);  // cannot give 3 banks 1 token each
  EXPECT_THROW(apportion_budgets({}, 2), Error);
  EXPECT_THROW(apportion_budgets({1, -1}, 4), Error);
  EXPECT_THROW(apportion_budgets({1, NAN}, 4), Error);
}

TEST(Squeeze, BudgetsSumToTheUniformTotalForEveryCombination) {
  // Importances that give all three clusters for any n >= 3 (and two for n = 2).
  int cases = 0;
  for (int n : {2, 3, 5, 7, 8, 13, 22, 32}) {
    std::vector<double> imp(n);
    for (int b = 0; b < n; ++b) imp[b] = 0.5 + 0.45 * ((b * 7919) % n) / n;
    for (int N : {7, 10, 20, 33, 100, 101, 257, 1000, 4096}) {
      for (double f0 : {0.1, 0.25, 0.29, 0.3, 0.5, 0.57, 0.7, 0.9}) {
        for (double p : {0.05, 0.1, 0.2, 0.33, 0.5, 0.77, 1.0}) {
          SqueezeSpec s;
          s.enabled = true;
          s.f0 = f0;
          s.p = p;
          if (fraction_tokens(f0, N) < 1) {
            EXPECT_THROW(squeeze_budgets(imp, s, N), Error);
            continue;
          }
          SqueezeResult r;
          try {
            r = squeeze_budgets(imp, s, N);
          } catch (const Error&) {
            continue;  // a > 1: no budgets to check
          }
          ++cases;
          const long U = uniform_total_tokens(n, f0, N);
          EXPECT_EQ(U, n * static_cast<long>(std::floor(f0 * N + 1e-9)));
          long total = 0;
          std::vector<double> share(n);
          for (int b = 0; b < n; ++b) {
            total += r.budget[b];
            share[b] = r.fraction[b] * N * U / (n * f0 * N);  // the real share, scaled to U
          }
          const bool raised = *std::min_element(share.begin(), share.end()) < 1;
          for (int b = 0; b < n; ++b) {
            EXPECT_GE(r.budget[b], 1);
            if (share[b] < 1) {
              EXPECT_EQ(r.budget[b], 1);
            }
            // Without a bank raised to the minimum, each budget is its share rounded down or up.
            if (!raised) {
              EXPECT_LT(std::abs(r.budget[b] - share[b]), 1.0 + 1e-9);
            }
          }
          EXPECT_EQ(total, U) << "n " << n << " N " << N << " f0 " << f0 << " p " << p;
          if (p == 1.0) {
            EXPECT_EQ(r.budget, std::vector<int>(n, fraction_tokens(f0, N)));
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 1500);
}

TEST(Squeeze, EqualFractionsGiveEveryBankTheUniformBudget) {
  SqueezeSpec s;
  s.enabled = true;
  for (int n : {1, 2, 3, 6, 11, 22}) {
    std::vector<double> imp(n);
    for (int b = 0; b < n; ++b) imp[b] = 0.9 + 0.01 * ((b * 5) % 7);
    for (int N : {5, 14, 60, 99, 100, 1023}) {
      for (double f : {0.2, 0.29, 0.3, 0.35, 0.58, 0.7, 0.82, 1.0}) {
        s.f0 = s.f3 = f;
        const int B = BudgetSpec{0, f}.resolve(N);  // what the uniform run keeps per bank
        EXPECT_EQ(squeeze_budgets(imp, s, N).budget, std::vector<int>(n, B))
            << n << " " << N << " " << f;
      }
    }
  }
}

TEST(Squeeze, NoTokensAreLostToFlooring) {
  // 20 banks, a prompt of 20 tokens, f0 = 0.25 (U = 20 · 5 = 100), f3 = 0.09 on 11 banks, so
  // a = (5 − 0.99) / 9: real shares 8.91 (clusters 1-2) and 1.8 (cluster 3). Flooring each bank
  // kept 9 · 8 + 11 · 1 = 83 and lost 17 tokens; the largest remainders keep all 100: the 9
  // remainders of 0.91 first, then 8 of the 11 remainders of 0.8, lower banks first.
  std::vector<double> imp(20);
  for (int b = 0; b < 20; ++b) imp[b] = b < 9 ? 0.5 + 0.01 * b : 0.95 + 0.001 * b;
  SqueezeSpec s;
  s.enabled = true;
  s.f0 = 0.25;
  s.f3 = 0.09;
  const auto r = squeeze_budgets(imp, s, 20);
  ASSERT_EQ(std::count(r.cluster.begin(), r.cluster.end(), 3), 11);
  EXPECT_NEAR(r.a, (20 * 0.25 - 11 * 0.09) / 9, 1e-12);
  EXPECT_EQ(std::accumulate(r.budget.begin(), r.budget.end(), 0), 100);
  std::vector<int> want(20);
  for (int b = 0; b < 20; ++b) want[b] = b < 9 ? 9 : (b < 17 ? 2 : 1);
  EXPECT_EQ(r.budget, want);
}

TEST(Squeeze, FractionsOfThePromptRoundAsWritten) {
  // 0.29 · 100 is 28.999999999999996 in binary; the budget is the 29 tokens the user asked for.
  EXPECT_EQ(fraction_tokens(0.29, 100), 29);
  EXPECT_EQ(BudgetSpec::parse("29%").resolve(100), 29);
  EXPECT_EQ(BudgetSpec::parse("57%").resolve(100), 57);
  EXPECT_EQ(BudgetSpec::parse("70%").resolve(90), 63);
  EXPECT_EQ(fraction_tokens(0.5, 7), 3);
  EXPECT_EQ(fraction_tokens(0.999, 1000), 999);
  EXPECT_EQ(fraction_tokens(1.0, 16777216), 16777216);
}

TEST(Squeeze, EqualFractionsReproduceTheUniformRunExactly) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("standard", 6), 8);
  EngineOptions uni = with_policy("streaming:2", "50%"), sq = with_policy("streaming:2");
  sq.squeeze.enabled = true;
  sq.squeeze.f0 = 0.5;
  sq.squeeze.f3 = 0.5;
  Engine<double> a(w, uni), b(w, sq);
  EXPECT_EQ(a.prefill(tokens(14), true), b.prefill(tokens(14), true));
  for (int t = 0; t < 4; ++t) EXPECT_EQ(a.decode(t), b.decode(t));
  EXPECT_EQ(b.squeeze().budget, std::vector<int>(6, 7));
  EXPECT_EQ(b.squeeze().layer_importance.size(), 6u);
  for (double s : b.squeeze().layer_importance) EXPECT_TRUE(s > -1 && s <= 1) << s;
}

TEST(Squeeze, SharedBanksTakeTheMostImportantReader) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("cla:2", 6), 9);
  EngineOptions o = with_policy("window");
  o.squeeze.enabled = true;
  o.squeeze.f0 = 0.5;
  o.squeeze.p = 0.4;
  Engine<double> e(w, o);
  e.prefill(tokens(20));
  const auto& r = e.squeeze();
  ASSERT_EQ(r.bank_importance.size(), 3u);
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(r.bank_importance[b],
              std::min(r.layer_importance[2 * b], r.layer_importance[2 * b + 1]));
    EXPECT_EQ(e.kv().bank(b).held(), r.budget[b]);
  }
}

TEST(EnginePolicies, BadInputIsNamed) {
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 1);
  EXPECT_THROW(Engine<double>(w, with_policy("streaming:4", "3")), Error);  // budget < sinks
  EngineOptions o = with_policy("full");
  o.squeeze.enabled = true;
  o.squeeze.f0 = 0.5;
  o.squeeze.f3 = 0.2;
  EXPECT_THROW(Engine<double>(w, o), Error);  // squeeze needs an evicting policy
  o.policy = PolicySpec::parse("window");
  o.squeeze.f3 = 1.5;
  EXPECT_THROW(Engine<double>(w, o), Error);
}

TEST(EnginePolicies, H2oScoresOnRequest) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("cla:2", 6), 7);
  Engine<double> e(w, with_policy("h2o", "6"));
  RecordingObserver rec;
  e.add_observer(&rec);
  e.prefill(tokens(10));
  EXPECT_TRUE(rec.h2o_scores.empty());  // off by default
  e.subscribe(&rec, mask(EventKind::h2o_scores));
  e.decode(3);
  ASSERT_EQ(rec.h2o_scores.size(), 3u * 2u);  // 3 banks x 2 KV heads, after the step
  std::set<std::pair<int, int>> seen;
  for (const auto& ev : rec.h2o_scores) {
    const int b = e.kv().bank_of_layer(ev.bank);
    ASSERT_GE(b, 0);
    EXPECT_EQ(e.kv().bank(b).kv_layer, ev.bank);
    seen.insert({ev.bank, ev.kv_head});
    EXPECT_EQ(ev.step, rec.summaries.back().step);
    // The bank's own cells for that head, after the step's eviction: 6 positions, their scores
    // and counts slot by slot.
    ASSERT_EQ(ev.positions.size(), 6u);
    ASSERT_EQ(ev.scores.size(), 6u);
    ASSERT_EQ(ev.counts.size(), 6u);
    EXPECT_EQ(ev.positions, e.kv().positions(b, ev.kv_head));
    EXPECT_EQ(ev.positions.back(), 10);  // the step's token is held
    double total = 0;
    for (int s = 0; s < 6; ++s) {
      EXPECT_EQ(ev.scores[s], e.kv().bank(b).score[s * 2 + ev.kv_head]);
      EXPECT_EQ(ev.counts[s], e.kv().bank(b).count[s * 2 + ev.kv_head]);
      EXPECT_GT(ev.scores[s], 0.0);
      EXPECT_GE(ev.counts[s], 1.0);
      total += ev.scores[s];
    }
    // Each bank is read by 2 layers of 3 query heads per KV head: 11 query rows (10 prompt, 1
    // step) gave it at most 2 · 3 · 11 of attention; the last step alone gave 2 · 3 to these
    // 7 cells before one was evicted.
    EXPECT_LE(total, 2.0 * 3 * 11 + 1e-9);
    EXPECT_GT(total, 0.0);
  }
  EXPECT_EQ(seen.size(), 6u);  // every (bank, head) once
  // Off again: no more events.
  e.unsubscribe(&rec);
  e.add_observer(&rec);  // the default kinds again, without h2o_scores
  e.decode(4);
  EXPECT_EQ(rec.h2o_scores.size(), 6u);
  // Only H2O banks report scores.
  Engine<double> win(w, with_policy("window", "6"));
  RecordingObserver rec2;
  win.subscribe(&rec2, kAllEvents);
  win.prefill(tokens(10));
  win.decode(3);
  EXPECT_TRUE(rec2.h2o_scores.empty());
}

TEST(EnginePolicies, SqueezeBudgetsBelowThePolicysLeastAreRaisedWithANote) {
  // streaming:4 keeps 4 sinks: a bank needs at least 5 tokens. f3 = 0.1 of 20 tokens gives the
  // least important cluster 2, which the engine raises to 5 and says so.
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("standard", 6), 9);
  EngineOptions o = with_policy("streaming:4");
  o.squeeze.enabled = true;
  o.squeeze.f0 = 0.5;
  o.squeeze.f3 = 0.1;
  Engine<double> e(w, o);
  RecordingObserver rec;
  e.add_observer(&rec);
  e.prefill(tokens(20));
  const SqueezeResult& r = e.squeeze();
  int raised = 0;
  for (std::size_t b = 0; b < r.budget.size(); ++b) {
    EXPECT_GE(r.budget[b], 5) << b;
    EXPECT_EQ(e.kv().bank(static_cast<int>(b)).held(), r.budget[b]);
    if (r.cluster[b] == 3) ++raised;
  }
  ASSERT_GT(raised, 0);
  ASSERT_EQ(static_cast<int>(r.notes.size()), raised);
  EXPECT_NE(r.notes[0].find("raised to 5"), std::string::npos) << r.notes[0];
  EXPECT_NE(r.notes[0].find("sinks"), std::string::npos) << r.notes[0];
  ASSERT_EQ(rec.squeezes.size(), 1u);
  EXPECT_EQ(rec.squeezes[0].notes, r.notes);
}

TEST(EnginePolicies, AFractionBudgetBelowH2osRecentWindowIsRefused) {
  // h2o:4 with 0.1 of a 20-token prompt = 2 tokens: it used to become a window silently.
  const auto w = init_random<double>(tiny_config(), KvPlan::parse("standard", 6), 9);
  Engine<double> e(w, with_policy("h2o:4", "10%"));
  try {
    e.prefill(tokens(20));
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("--policy = h2o:4 with a budget of 2"),
              std::string::npos)
        << err.what();
  }
}
