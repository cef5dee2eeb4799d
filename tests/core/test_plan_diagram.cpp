// The plan diagram as data (core/plan_diagram.hpp): nodes, read and upward edges, cyclic blocks
// and KV layers for the generators, and agreement with the KvPlan facts it is built from.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/plan.hpp"
#include "core/plan_diagram.hpp"

using kvlab::KvPlan;
using kvlab::PlanDiagram;
using kvlab::PlanDiagramEdge;
using kvlab::PlanDiagramNode;

namespace {

PlanDiagram diagram(const std::string& spec, int layers) {
  return kvlab::plan_diagram(KvPlan::parse(spec, layers));
}

std::vector<std::pair<int, int>> pairs(const std::vector<PlanDiagramEdge>& edges) {
  std::vector<std::pair<int, int>> out;
  for (const PlanDiagramEdge& e : edges) out.emplace_back(e.reader, e.kv_layer);
  return out;
}

}  // namespace

TEST(PlanDiagram, StandardHasOnlyKvLayersAndNoEdges) {
  const PlanDiagram d = diagram("standard", 6);
  EXPECT_EQ(d.layers, 6);
  ASSERT_EQ(d.nodes.size(), 6u);
  for (int l = 0; l < 6; ++l) {
    const PlanDiagramNode& n = d.nodes[static_cast<size_t>(l)];
    EXPECT_EQ(n.layer, l);
    EXPECT_EQ(n.reads, l);
    EXPECT_TRUE(n.kv_layer);
    EXPECT_FALSE(n.upward);
    EXPECT_FALSE(n.sliding);
    EXPECT_EQ(n.cyclic_block, -1);
  }
  EXPECT_TRUE(d.read_edges.empty());
  EXPECT_TRUE(d.upward_edges.empty());
  EXPECT_TRUE(d.cyclic_blocks.empty());
  EXPECT_EQ(d.kv_layers, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(PlanDiagram, Cla2OddLayersReadTheEvenLayerBelow) {
  const PlanDiagram d = diagram("cla:2", 8);
  EXPECT_EQ(d.kv_layers, (std::vector<int>{0, 2, 4, 6}));
  for (int l = 0; l < 8; ++l) {
    const PlanDiagramNode& n = d.nodes[static_cast<size_t>(l)];
    EXPECT_EQ(n.kv_layer, l % 2 == 0) << l;
    EXPECT_EQ(n.reads, l % 2 == 0 ? l : l - 1) << l;
    EXPECT_FALSE(n.upward) << l;
  }
  EXPECT_EQ(pairs(d.read_edges),
            (std::vector<std::pair<int, int>>{{1, 0}, {3, 2}, {5, 4}, {7, 6}}));
  for (const PlanDiagramEdge& e : d.read_edges) EXPECT_FALSE(e.upward());
  EXPECT_TRUE(d.upward_edges.empty());
  EXPECT_TRUE(d.cyclic_blocks.empty());
}

TEST(PlanDiagram, LckvHasUpwardEdgesAndOneCyclicBlock) {
  // lckv:2 over 8 layers: 0_6_6_6_6_6_6_7 (layers 1..5 read layer 6 above them).
  const PlanDiagram d = diagram("lckv:2", 8);
  EXPECT_EQ(d.kv_layers, (std::vector<int>{0, 6, 7}));
  const std::vector<std::pair<int, int>> up = {{1, 6}, {2, 6}, {3, 6}, {4, 6}, {5, 6}};
  EXPECT_EQ(pairs(d.read_edges), up);
  EXPECT_EQ(pairs(d.upward_edges), up);
  for (const PlanDiagramEdge& e : d.upward_edges) EXPECT_TRUE(e.upward());
  ASSERT_EQ(d.cyclic_blocks.size(), 1u);
  EXPECT_EQ(d.cyclic_blocks[0].first, 1);
  EXPECT_EQ(d.cyclic_blocks[0].last, 6);
  for (int l = 0; l < 8; ++l) {
    const PlanDiagramNode& n = d.nodes[static_cast<size_t>(l)];
    EXPECT_EQ(n.upward, l >= 1 && l <= 5) << l;
    EXPECT_EQ(n.cyclic_block, l >= 1 && l <= 6 ? 0 : -1) << l;
  }
}

TEST(PlanDiagram, TwoCyclicBlocksAreNumberedBottomUp) {
  const PlanDiagram d = diagram("1_1_3_3", 4);
  EXPECT_EQ(d.kv_layers, (std::vector<int>{1, 3}));
  EXPECT_EQ(pairs(d.upward_edges), (std::vector<std::pair<int, int>>{{0, 1}, {2, 3}}));
  ASSERT_EQ(d.cyclic_blocks.size(), 2u);
  EXPECT_EQ(d.cyclic_blocks[1].first, 2);
  EXPECT_EQ(d.cyclic_blocks[1].last, 3);
  EXPECT_EQ(d.nodes[0].cyclic_block, 0);
  EXPECT_EQ(d.nodes[1].cyclic_block, 0);
  EXPECT_EQ(d.nodes[2].cyclic_block, 1);
  EXPECT_EQ(d.nodes[3].cyclic_block, 1);
}

TEST(PlanDiagram, SlidingLayersAndDownwardEdges) {
  const PlanDiagram d = diagram("0s_1s_2_2", 4);
  EXPECT_TRUE(d.nodes[0].sliding);
  EXPECT_TRUE(d.nodes[1].sliding);
  EXPECT_FALSE(d.nodes[2].sliding);
  EXPECT_FALSE(d.nodes[3].sliding);
  EXPECT_EQ(pairs(d.read_edges), (std::vector<std::pair<int, int>>{{3, 2}}));
  EXPECT_TRUE(d.upward_edges.empty());

  // YOCO: the bottom half sliding, the top half reads the middle layer.
  const PlanDiagram y = diagram("yoco", 8);
  EXPECT_EQ(y.kv_layers, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(pairs(y.read_edges), (std::vector<std::pair<int, int>>{{5, 4}, {6, 4}, {7, 4}}));
  for (int l = 0; l < 8; ++l) EXPECT_EQ(y.nodes[static_cast<size_t>(l)].sliding, l < 4) << l;
}

TEST(PlanDiagram, SandwichMiddleReadsUpAndDown) {
  // sandwich-middle:4 over 8 layers: 0_1_4_4_4_4_4_7, layers 2..6 share the middle layer 4.
  const PlanDiagram d = diagram("sandwich-middle:4", 8);
  EXPECT_EQ(d.kv_layers, (std::vector<int>{0, 1, 4, 7}));
  EXPECT_EQ(pairs(d.read_edges),
            (std::vector<std::pair<int, int>>{{2, 4}, {3, 4}, {5, 4}, {6, 4}}));
  EXPECT_EQ(pairs(d.upward_edges), (std::vector<std::pair<int, int>>{{2, 4}, {3, 4}}));
  EXPECT_FALSE(d.read_edges[2].upward());
  ASSERT_EQ(d.cyclic_blocks.size(), 1u);
  EXPECT_EQ(d.cyclic_blocks[0].first, 2);
  EXPECT_EQ(d.cyclic_blocks[0].last, 4);
  EXPECT_EQ(d.nodes[4].cyclic_block, 0);
  EXPECT_EQ(d.nodes[5].cyclic_block, -1);
}

TEST(PlanDiagram, AgreesWithThePlanFactsForEveryGenerator) {
  const std::vector<std::pair<std::string, int>> specs = {{"standard", 5},
                                                          {"cla:2", 7},
                                                          {"cla:3", 10},
                                                          {"mlkv:2", 8},
                                                          {"lckv:1", 6},
                                                          {"lckv:4", 22},
                                                          {"yoco", 9},
                                                          {"sandwich-middle:2", 8},
                                                          {"sandwich-middle:4", 8},
                                                          {"pizza-top:3", 12},
                                                          {"lasagna-bottom:2", 9},
                                                          {"0_0_2_2", 4},
                                                          {"0s_1s_2_2", 4},
                                                          {"1_1_3_3", 4},
                                                          {"3_3_3_3", 4}};
  for (const auto& [spec, layers] : specs) {
    SCOPED_TRACE(spec);
    const KvPlan plan = KvPlan::parse(spec, layers);
    const PlanDiagram d = kvlab::plan_diagram(plan);
    ASSERT_EQ(d.layers, plan.layers());
    ASSERT_EQ(d.nodes.size(), static_cast<size_t>(plan.layers()));
    EXPECT_EQ(d.kv_layers, plan.kv_layers());
    std::vector<std::pair<int, int>> reads;
    for (int l = 0; l < plan.layers(); ++l) {
      const PlanDiagramNode& n = d.nodes[static_cast<size_t>(l)];
      EXPECT_EQ(n.layer, l);
      EXPECT_EQ(n.reads, plan.kv_of(l));
      EXPECT_EQ(n.kv_layer, plan.is_kv_layer(l));
      EXPECT_EQ(n.upward, plan.is_upward(l));
      EXPECT_EQ(n.sliding, plan.sliding(l));
      EXPECT_EQ(n.cyclic_block, plan.cyclic_block_of(l));
      if (!plan.is_kv_layer(l)) reads.emplace_back(l, plan.kv_of(l));
    }
    EXPECT_EQ(pairs(d.read_edges), reads);
    EXPECT_EQ(pairs(d.upward_edges), plan.upward_edges());
    ASSERT_EQ(d.cyclic_blocks.size(), plan.cyclic_blocks().size());
    for (size_t b = 0; b < d.cyclic_blocks.size(); ++b) {
      EXPECT_EQ(d.cyclic_blocks[b].first, plan.cyclic_blocks()[b].first);
      EXPECT_EQ(d.cyclic_blocks[b].last, plan.cyclic_blocks()[b].last);
    }
  }
}
