// The visualizer's draw data (visualizer/viz_model.hpp) and its script parser, without a window:
// what the panels paint, computed from hand-made snapshots and plans.
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "core/plan.hpp"
#include "visualizer/script.hpp"
#include "visualizer/viz_model.hpp"

namespace kvlab::viz {
namespace {

bool overlaps(const Rect& a, const Rect& b) {
  return a.x < b.right() && b.x < a.right() && a.y < b.bottom() && b.y < a.bottom();
}

TEST(VizLayout, PanelsTileTheDisplayWithoutOverlapping) {
  for (const auto& [w, h] : {std::pair{1280.0f, 800.0f}, {900.0f, 650.0f}, {1920.0f, 1080.0f}}) {
    const PanelLayout p = panel_layout(w, h);
    const Rect all[] = {p.controls,  p.graph,   p.footprint, p.lckv,
                        p.attention, p.squeeze, p.text,      p.cache};
    for (int i = 0; i < 8; ++i) {
      EXPECT_GE(all[i].x, 0);
      EXPECT_GE(all[i].y, 0);
      EXPECT_LE(all[i].right(), w + 0.5f) << i;
      EXPECT_LE(all[i].bottom(), h + 0.5f) << i;
      EXPECT_GT(all[i].w, 140) << i;
      EXPECT_GT(all[i].h, 60) << i;
      EXPECT_GT(all[i].w * all[i].h, 0) << i;
      for (int j = i + 1; j < 8; ++j) EXPECT_FALSE(overlaps(all[i], all[j])) << i << " " << j;
    }
  }
}

// A snapshot of `plan` after `tokens` tokens with full banks of `bytes_per_token` each.
Snapshot full_snapshot(const KvPlan& plan, int tokens, std::int64_t bytes_per_token) {
  Snapshot s;
  s.step = 0;
  for (int l = 0; l < plan.layers(); ++l) {
    KvStepEvent e;
    e.layer = l;
    e.bank = plan.kv_of(l);
    e.writes = plan.is_kv_layer(l);
    e.tokens_held = tokens;
    e.bytes_held = tokens * bytes_per_token;
    e.budget = 64;
    s.layers.push_back(e);
    if (e.writes) s.banks[e.bank] = e;
  }
  StepSummaryEvent sum;
  sum.position = tokens - 1;
  for (const auto& [b, e] : s.banks) sum.kv_bytes_held += e.bytes_held;
  sum.kv_bytes_allocated = 64 * bytes_per_token * static_cast<std::int64_t>(s.banks.size());
  s.recent_steps.push_back(sum);
  return s;
}

TEST(VizFootprint, ClaHoldsHalfTheStandardPlansBytes) {
  const Footprint std4 = footprint(full_snapshot(KvPlan::parse("standard", 4), 10, 256));
  EXPECT_EQ(std4.banks, 4);
  EXPECT_EQ(std4.bytes_held, 4 * 10 * 256);
  EXPECT_EQ(std4.standard_bytes, std4.bytes_held);
  EXPECT_DOUBLE_EQ(std4.plan_height, 1.0);

  const Footprint cla = footprint(full_snapshot(KvPlan::parse("cla:2", 4), 10, 256));
  EXPECT_EQ(cla.banks, 2);
  EXPECT_EQ(cla.bytes_held, 2 * 10 * 256);
  EXPECT_EQ(cla.standard_bytes, 4 * 10 * 256);
  EXPECT_DOUBLE_EQ(cla.plan_height, 0.5);
  EXPECT_DOUBLE_EQ(cla.standard_height, 1.0);
  ASSERT_EQ(cla.columns.size(), 4u);
  EXPECT_TRUE(cla.columns[0].writes);
  EXPECT_FALSE(cla.columns[1].writes);  // layer 1 reads layer 0's bank: drawn, not counted
  EXPECT_EQ(cla.columns[1].bank, 0);
  EXPECT_DOUBLE_EQ(cla.columns[1].height, 1.0);
  EXPECT_NEAR(cla.columns[1].fill, 10.0 / 64, 1e-12);
  EXPECT_EQ(cla.tokens, 10);
  EXPECT_EQ(cla.bytes_allocated, 2 * 64 * 256);
  ASSERT_EQ(cla.history.size(), 1u);
  EXPECT_EQ(cla.history[0], 2 * 10 * 256);
}

TEST(VizFootprint, EmptySnapshotDrawsNothing) {
  const Footprint f = footprint(Snapshot{});
  EXPECT_TRUE(f.columns.empty());
  EXPECT_EQ(f.plan_height, 0);
  EXPECT_EQ(f.tokens, 0);
}

TEST(VizGraph, LayerZeroAtTheBottomAndHitsFindTheNode) {
  const Rect area{10, 20, 300, 400};
  const GraphLayout g = graph_layout(6, area);
  ASSERT_EQ(g.nodes.size(), 6u);
  for (int l = 1; l < 6; ++l) EXPECT_LT(g.nodes[l].cy, g.nodes[l - 1].cy);  // upward on screen
  for (const GraphNode& n : g.nodes) {
    EXPECT_GE(n.cy - g.node_h / 2, area.y);
    EXPECT_LE(n.cy + g.node_h / 2, area.bottom());
    EXPECT_GE(n.cx - g.node_w / 2, area.x);
    EXPECT_EQ(graph_hit(g, n.cx, n.cy), n.layer);
  }
  EXPECT_EQ(graph_hit(g, area.x + 1, area.y + 1), -1);
  EXPECT_TRUE(graph_layout(0, area).nodes.empty());
}

TEST(VizLayout, PanelsByName) {
  const PanelLayout p = panel_layout(1280, 800);
  EXPECT_EQ(panel_rect(p, "cache").x, p.cache.x);
  EXPECT_EQ(panel_rect(p, "attention").w, p.attention.w);
  EXPECT_EQ(panel_rect(p, "nosuch").x, 0);
}

TEST(VizGraph, LayerSummarySaysWhatItReadsAndWhatItCosts) {
  const KvPlan plan = KvPlan::parse("cla:2", 4);
  const PlanDiagram d = plan_diagram(plan);
  const Snapshot s = full_snapshot(plan, 3, 512);
  const std::string reader = layer_summary(d, s, 1);
  EXPECT_NE(reader.find("reads the K/V of layer 0"), std::string::npos) << reader;
  EXPECT_NE(reader.find("shared"), std::string::npos) << reader;
  const std::string kv = layer_summary(d, s, 2);
  EXPECT_NE(kv.find("KV layer"), std::string::npos) << kv;
  EXPECT_NE(kv.find("read by 3"), std::string::npos) << kv;
  EXPECT_NE(kv.find("1.5 KiB"), std::string::npos) << kv;
  const std::string up = layer_summary(plan_diagram(KvPlan::parse("lckv:2", 4)), Snapshot{}, 1);
  EXPECT_NE(up.find("above"), std::string::npos) << up;
  EXPECT_NE(up.find("cyclic block 0"), std::string::npos) << up;
  EXPECT_EQ(layer_summary(d, s, 9), "");
}

PrefillPassEvent pass(int block, int target, int p, double rel) {
  PrefillPassEvent e;
  e.block = block;
  e.target_layer = target;
  e.pass = p;
  e.tokens = 20;
  e.tokens_exact = p;
  e.rel_dk = rel;
  e.rel_dv = rel / 10;
  return e;
}

TEST(VizConvergence, OneSeriesPerTargetOnALogScale) {
  std::vector<PrefillPassEvent> ev;
  for (int p = 1; p <= 4; ++p) {
    ev.push_back(pass(0, 5, p, std::pow(10.0, -p)));
    ev.push_back(pass(0, 6, p, 0.5 * std::pow(10.0, -p)));
  }
  ev.push_back(pass(1, 9, 1, 0));  // a zero change is floored, not -inf
  const Convergence c = convergence(ev);
  ASSERT_EQ(c.series.size(), 3u);
  EXPECT_EQ(c.passes, 4);
  EXPECT_EQ(c.series[0].target_layer, 5);
  EXPECT_EQ(c.series[1].target_layer, 6);
  EXPECT_EQ(c.series[2].block, 1);
  EXPECT_FLOAT_EQ(c.series[0].log_dk[2], -3.0f);
  EXPECT_FLOAT_EQ(c.series[0].log_dv[2], -4.0f);
  EXPECT_EQ(c.series[0].tokens_exact[3], 4);
  EXPECT_TRUE(c.series[0].log_err_k.empty());
  EXPECT_FLOAT_EQ(c.series[2].log_dk[0], -12.0f);
  EXPECT_FLOAT_EQ(c.log_min, -12.0f);
  EXPECT_FLOAT_EQ(c.log_max, -1.0f);
  EXPECT_TRUE(convergence({}).series.empty());
}

TEST(VizSqueeze, ClustersAndBudgetsFollowEachLayersBank) {
  const PlanDiagram d = plan_diagram(KvPlan::parse("cla:2", 4));
  Snapshot s;
  SqueezeEvent q;
  q.prompt_tokens = 40;
  q.layer_importance = {0.90, 0.95, 0.99, 0.98};
  q.bank_layer = {0, 2};
  q.bank_importance = {0.90, 0.98};
  q.cluster = {1, 3};
  q.budget = {30, 10};
  q.a = 0.75;
  s.squeeze = q;
  const SqueezeBars b = squeeze_bars(s, d);
  EXPECT_TRUE(b.clustered);
  EXPECT_EQ(b.cluster, (std::vector<int>{1, 1, 3, 3}));
  EXPECT_EQ(b.budget, (std::vector<int>{30, 30, 10, 10}));
  EXPECT_DOUBLE_EQ(b.centres[0], 0.90);
  EXPECT_DOUBLE_EQ(b.centres[1], 0);
  EXPECT_DOUBLE_EQ(b.centres[2], 0.98);
  EXPECT_LT(b.lo, 0.90);  // every layer shows a bar
  EXPECT_GE(b.hi, 0.99);

  Snapshot only_cosines;
  only_cosines.importance = LayerImportanceEvent{40, {0.5, 0.6, 0.7, 0.8}};
  const SqueezeBars c = squeeze_bars(only_cosines, d);
  EXPECT_FALSE(c.clustered);
  EXPECT_EQ(c.cluster, (std::vector<int>{0, 0, 0, 0}));
  EXPECT_EQ(c.budget, (std::vector<int>{-1, -1, -1, -1}));
  EXPECT_TRUE(squeeze_bars(Snapshot{}, d).cos_sim.empty());
}

TEST(VizCacheMap, KeptEvictedAndSinksFromTheAttentionsKeyPositions) {
  Snapshot s;
  s.step = 3;
  StepSummaryEvent sum;
  sum.step = 3;
  sum.position = 9;  // 10 positions
  s.recent_steps.push_back(sum);
  KvStepEvent b0;
  b0.layer = b0.bank = 0;
  b0.writes = true;
  b0.tokens_held = 5;
  s.banks[0] = b0;
  KvStepEvent b2 = b0;
  b2.layer = b2.bank = 2;
  b2.tokens_held = 4;
  s.banks[2] = b2;
  // Bank 0's read: one query over cells at positions 0, 1 (sinks), 7, 8, 9; two heads, one KV head.
  AttentionEvent a;
  a.step = 3;
  a.layer = 1;
  a.bank = 0;
  a.heads = 2;
  a.kv_heads = 1;
  a.rows = 1;
  a.cells = 5;
  a.key_pos = {0, 1, 7, 8, 9};
  a.probs = {0.5f, 0.1f, 0.1f, 0.1f, 0.2f, 0.3f, 0.1f, 0.2f, 0.2f, 0.2f};
  s.attention[1] = a;
  const CacheMap m = cache_map(s);
  EXPECT_EQ(m.positions, 10);
  EXPECT_EQ(m.banks, (std::vector<int>{0, 2}));
  EXPECT_FALSE(m.exact);  // bank 2 had no recorded attention: by recency
  EXPECT_EQ(m.at(0, 0), CacheMap::sink);
  EXPECT_EQ(m.at(0, 1), CacheMap::sink);
  EXPECT_EQ(m.at(0, 2), CacheMap::evicted);
  EXPECT_EQ(m.at(0, 6), CacheMap::evicted);
  EXPECT_EQ(m.at(0, 7), CacheMap::kept);
  EXPECT_EQ(m.at(0, 9), CacheMap::kept);
  EXPECT_FLOAT_EQ(m.mass[0], 0.4f);  // mean over the two heads
  EXPECT_FLOAT_EQ(m.mass[9], 0.2f);
  EXPECT_FLOAT_EQ(m.max_mass, 0.4f);
  for (int p = 0; p < 6; ++p) EXPECT_EQ(m.at(1, p), CacheMap::evicted) << p;
  for (int p = 6; p < 10; ++p) EXPECT_EQ(m.at(1, p), CacheMap::kept) << p;
  EXPECT_EQ(cache_map(Snapshot{}).positions, 0);
}

// The same read under H2O: the old kept cells are heavy hitters and carry the mean of the KV
// heads' accumulated scores; under streaming they stay sinks and carry none.
TEST(VizCacheMap, HeavyHittersUnderH2oWithTheirScores) {
  Snapshot s;
  s.step = 2;
  StepSummaryEvent sum;
  sum.step = 2;
  sum.position = 5;  // 6 positions
  s.recent_steps.push_back(sum);
  KvStepEvent b0;
  b0.layer = b0.bank = 0;
  b0.writes = true;
  s.banks[0] = b0;
  AttentionEvent a;
  a.step = 2;
  a.layer = 0;
  a.bank = 0;
  a.heads = 2;
  a.kv_heads = 2;
  a.rows = 1;
  a.cells = 3;
  a.key_pos = {1, 4, 5, 1, 4, 5};  // position 1 kept, 0, 2, 3 gone
  a.probs = {0.6f, 0.2f, 0.2f, 0.2f, 0.3f, 0.5f};
  s.attention[0] = a;
  H2oScoresEvent h0;
  h0.step = 2;
  h0.bank = 0;
  h0.kv_head = 0;
  h0.positions = {1, 4, 5};
  h0.scores = {2.0, 0.5, 0.25};
  H2oScoresEvent h1 = h0;
  h1.kv_head = 1;
  h1.scores = {1.0, 0.5, 0.75};
  s.h2o[{0, 0}] = h0;
  s.h2o[{0, 1}] = h1;

  const CacheMap h = cache_map(s, "h2o:2");
  EXPECT_EQ(h.at(0, 1), CacheMap::heavy);
  EXPECT_EQ(h.at(0, 0), CacheMap::evicted);
  EXPECT_EQ(h.at(0, 4), CacheMap::kept);
  EXPECT_TRUE(h.scored);
  EXPECT_FLOAT_EQ(h.score[1], 1.5f);  // mean of 2.0 and 1.0
  EXPECT_FLOAT_EQ(h.score[5], 0.5f);
  EXPECT_FLOAT_EQ(h.score[0], -1.0f);  // gone: no score

  s.h2o.clear();
  const CacheMap st = cache_map(s, "streaming:1");
  EXPECT_EQ(st.at(0, 1), CacheMap::sink);
  EXPECT_FALSE(st.scored);
}

TEST(VizModel, HumanBytes) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(3.0 * 1024 * 1024), "3.0 MiB");
}

TEST(VizScript, ParsesEveryVerb) {
  const auto s = parse_script(
      "# a comment\n\nmodel tiny-standard\nplan cla:2\nprompt Once upon a time\nprefill\n"
      "step 5\nwait\nframes 3\nresize 900 650\nsqueeze 0.4,0.1\ntrace\nscreenshot out.png\n"
      "screenshot-panel cache c.png\ncompare cla:2\n");
  ASSERT_EQ(s.size(), 13u);
  EXPECT_EQ(s[12].arg, "cla:2");
  EXPECT_EQ(s[11].arg, "cache c.png");
  EXPECT_EQ(s[0].verb, "model");
  EXPECT_EQ(s[0].arg, "tiny-standard");
  EXPECT_EQ(s[2].arg, "Once upon a time");
  EXPECT_EQ(s[4].verb, "step");
  EXPECT_EQ(s[4].n, 5);
  EXPECT_EQ(s[7].n, 900);
  EXPECT_EQ(s[7].m, 650);
  EXPECT_EQ(s[10].arg, "out.png");
  EXPECT_EQ(s[10].line, 13);
}

TEST(VizScript, RejectionsNameTheLine) {
  const char* bad[] = {"jump 3",     "step",        "step -1", "step 2x",     "frames 0",
                       "resize 900", "prefill now", "plan",    "resize 10 10"};
  for (const char* b : bad) {
    try {
      parse_script(std::string("wait\n") + b + "\n");
      ADD_FAILURE() << b;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--script"), std::string::npos) << m;
      EXPECT_NE(m.find("line 2"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(load_script("/nonexistent/script.txt"), Error);
}

}  // namespace
}  // namespace kvlab::viz
