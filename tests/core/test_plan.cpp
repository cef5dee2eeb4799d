// Every generator's expansion (even and uneven group sizes) and every derived fact of a KvPlan.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/plan.hpp"

using kvlab::KvPlan;

namespace {

std::string expand(const std::string& spec, int layers) {
  return KvPlan::parse(spec, layers).to_string();
}

// "0_20_20_..._20_21" for the LCKV check, built by hand.
std::string repeat_map(int first, int value, int count, int last) {
  std::string s = std::to_string(first);
  for (int i = 0; i < count; ++i) s += "_" + std::to_string(value);
  return s + "_" + std::to_string(last);
}

void expect_error(const std::string& spec, int layers, const std::string& fragment) {
  try {
    KvPlan::parse(spec, layers);
    FAIL() << spec << " should have been rejected";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << fragment;
  }
}

}  // namespace

TEST(PlanGenerators, Standard) {
  EXPECT_EQ(expand("standard", 4), "0_1_2_3");
  EXPECT_EQ(expand("standard", 1), "0");
}

TEST(PlanGenerators, ClaEvenAndUneven) {
  EXPECT_EQ(expand("cla:2", 6), "0_0_2_2_4_4");
  EXPECT_EQ(expand("cla:3", 7), "0_0_0_3_3_3_6");
  EXPECT_EQ(expand("cla:4", 6), "0_0_0_0_4_4");
  EXPECT_EQ(expand("cla:1", 3), "0_1_2");
  EXPECT_EQ(expand("cla:5", 5), "0_0_0_0_0");
}

TEST(PlanGenerators, Mlkv) {
  // KV layers {0} ∪ {floor((i+1)·L/M) : i = 0..M-2}
  EXPECT_EQ(expand("mlkv:2", 6), "0_0_0_3_3_3");
  EXPECT_EQ(expand("mlkv:3", 7), "0_0_2_2_4_4_4");  // floor(7/3)=2, floor(14/3)=4
  EXPECT_EQ(expand("mlkv:1", 4), "0_0_0_0");
  EXPECT_EQ(expand("mlkv:4", 4), "0_1_2_3");
}

TEST(PlanGenerators, LckvMatchesOfficialTinyLlamaLayout) {
  EXPECT_EQ(expand("lckv:2", 22), repeat_map(0, 20, 20, 21));
  EXPECT_EQ(expand("lckv:0", 4), "3_3_3_3");
  EXPECT_EQ(expand("lckv:1", 5), "0_4_4_4_4");  // ceil(1/2) = 1 bottom, 0 top
  EXPECT_EQ(expand("lckv:3", 6), "0_1_4_4_4_5");
  EXPECT_EQ(expand("lckv:5", 6), "0_1_2_3_4_5");
}

TEST(PlanGenerators, Pizza) {
  EXPECT_EQ(expand("pizza-bottom:3", 6), "0_1_2_2_2_2");
  EXPECT_EQ(expand("pizza-top:3", 6), "0_1_5_5_5_5");
  EXPECT_EQ(expand("pizza-middle:3", 6), "0_1_3_3_3_3");  // floor((2+5)/2) = 3
  EXPECT_EQ(expand("pizza-top:1", 4), "3_3_3_3");
}

TEST(PlanGenerators, Sandwich) {
  // N = 4: ceil(3/2) = 2 at the bottom, floor(3/2) = 1 at the top, group [2, L-2].
  EXPECT_EQ(expand("sandwich-bottom:4", 8), "0_1_2_2_2_2_2_7");
  EXPECT_EQ(expand("sandwich-top:4", 8), "0_1_6_6_6_6_6_7");
  EXPECT_EQ(expand("sandwich-middle:4", 8), "0_1_4_4_4_4_4_7");
  EXPECT_EQ(expand("sandwich-top:3", 22), expand("lckv:2", 22));
  EXPECT_EQ(expand("sandwich-middle:3", 22), repeat_map(0, 10, 20, 21));
}

TEST(PlanGenerators, LasagnaEvenAndUneven) {
  EXPECT_EQ(expand("lasagna-bottom:3", 6), "0_0_2_2_4_4");
  EXPECT_EQ(expand("lasagna-bottom:3", 6), expand("cla:2", 6));
  EXPECT_EQ(expand("lasagna-top:3", 6), "1_1_3_3_5_5");
  // 7 layers in 3 groups: sizes 3, 2, 2.
  EXPECT_EQ(expand("lasagna-bottom:3", 7), "0_0_0_3_3_5_5");
  EXPECT_EQ(expand("lasagna-top:3", 7), "2_2_2_4_4_6_6");
  EXPECT_EQ(expand("lasagna-middle:3", 7), "1_1_1_3_3_5_5");
  EXPECT_EQ(expand("lasagna-middle:1", 4), "1_1_1_1");
}

TEST(PlanGenerators, Yoco) {
  EXPECT_EQ(expand("yoco", 6), "0s_1s_2s_3_3_3");
  EXPECT_EQ(expand("yoco", 5), "0s_1s_2_2_2");
  const KvPlan p = KvPlan::parse("yoco", 22);
  EXPECT_EQ(p.num_kv_layers(), 12);
  EXPECT_TRUE(p.sliding(10));
  EXPECT_FALSE(p.sliding(11));
  EXPECT_EQ(p.kv_of(21), 11);
}

TEST(PlanTextForm, RoundTripsEveryGenerator) {
  for (const std::string spec :
       {"standard", "cla:2", "cla:3", "mlkv:3", "lckv:2", "pizza-bottom:3", "pizza-top:3",
        "pizza-middle:3", "sandwich-bottom:4", "sandwich-top:4", "sandwich-middle:4",
        "lasagna-bottom:4", "lasagna-top:4", "lasagna-middle:4", "yoco"}) {
    for (int L : {5, 8, 13, 22}) {
      const KvPlan p = KvPlan::parse(spec, L);
      EXPECT_EQ(KvPlan::parse(p.to_string(), L), p) << spec << " L=" << L;
    }
  }
}

TEST(PlanTextForm, ParsesSlidingFlags) {
  const KvPlan p = KvPlan::parse("0s_1_1s_3", 4);
  EXPECT_TRUE(p.sliding(0));
  EXPECT_FALSE(p.sliding(1));
  EXPECT_TRUE(p.sliding(2));
  EXPECT_EQ(p.kv_of(2), 1);
  EXPECT_FALSE(p.bank_is_sliding(1));  // layer 1 reads its bank without a window
  EXPECT_TRUE(p.bank_is_sliding(0));
}

TEST(PlanDerived, KvLayersAndReaders) {
  const KvPlan p = KvPlan::parse("lckv:2", 22);
  EXPECT_EQ(p.kv_layers(), (std::vector<int>{0, 20, 21}));
  std::vector<int> r20;
  for (int l = 1; l <= 20; ++l) r20.push_back(l);
  EXPECT_EQ(p.readers(20), r20);
  EXPECT_EQ(p.readers(0), (std::vector<int>{0}));
  EXPECT_EQ(p.readers(21), (std::vector<int>{21}));
}

TEST(PlanDerived, UpwardEdges) {
  const KvPlan p = KvPlan::parse("0_3_3_3_4", 5);
  EXPECT_EQ(p.upward_edges(), (std::vector<std::pair<int, int>>{{1, 3}, {2, 3}}));
  EXPECT_TRUE(p.is_upward(1));
  EXPECT_FALSE(p.is_upward(3));
  EXPECT_FALSE(KvPlan::parse("cla:2", 6).has_upward());
  EXPECT_FALSE(KvPlan::parse("yoco", 6).has_upward());
  EXPECT_TRUE(KvPlan::parse("sandwich-middle:4", 8).has_upward());
}

TEST(PlanDerived, CyclicBlocks) {
  auto blocks = [](const std::string& spec, int L) {
    std::vector<std::pair<int, int>> out;
    for (auto b : KvPlan::parse(spec, L).cyclic_blocks()) out.emplace_back(b.first, b.last);
    return out;
  };
  using V = std::vector<std::pair<int, int>>;
  EXPECT_EQ(blocks("lckv:2", 22), (V{{1, 20}}));
  EXPECT_EQ(blocks("standard", 6), V{});
  EXPECT_EQ(blocks("cla:2", 6), V{});
  EXPECT_EQ(blocks("lasagna-top:3", 6), (V{{0, 1}, {2, 3}, {4, 5}}));
  // Two upward groups that chain: 0 reads 2, 1..2 read 2 -> [0,2]; 3 reads 5 -> [3,5].
  EXPECT_EQ(blocks("2_2_2_5_5_5", 6), (V{{0, 2}, {3, 5}}));
  // Growth: layer 1 reads 3, layer 2 reads 5 (inside [1,3]) -> the block grows to [1,5].
  EXPECT_EQ(blocks("0_3_5_3_5_5", 6), (V{{1, 5}}));
  // sandwich-middle: upward readers below the middle target, downward ones above.
  EXPECT_EQ(blocks("sandwich-middle:4", 8), (V{{2, 4}}));
  const KvPlan p = KvPlan::parse("lckv:2", 22);
  EXPECT_EQ(p.cyclic_block_of(0), -1);
  EXPECT_EQ(p.cyclic_block_of(1), 0);
  EXPECT_EQ(p.cyclic_block_of(20), 0);
  EXPECT_EQ(p.cyclic_block_of(21), -1);
}

TEST(PlanDerived, PassSchedule) {
  auto s = kvlab::pass_schedule(512);
  EXPECT_FALSE(s.token_by_token);
  EXPECT_EQ(s.passes, 9);
  EXPECT_EQ(s.m, 7);
  EXPECT_EQ(s.b, 2);
  s = kvlab::pass_schedule(9);
  EXPECT_TRUE(s.token_by_token);
  EXPECT_EQ(s.passes, 9);
  s = kvlab::pass_schedule(5, 3, 1);
  EXPECT_FALSE(s.token_by_token);
  EXPECT_EQ(s.passes, 4);
  EXPECT_THROW(kvlab::pass_schedule(5, -1, 2), kvlab::Error);
  EXPECT_THROW(kvlab::pass_schedule(5, 0, 0), kvlab::Error);
  // lckv:2 on 22 layers: 2 layers once + 20 layers 9 times for a long prompt.
  EXPECT_DOUBLE_EQ(kvlab::prefill_layer_passes(KvPlan::parse("lckv:2", 22), 512), 2 + 20 * 9);
  EXPECT_DOUBLE_EQ(kvlab::prefill_layer_passes(KvPlan::parse("cla:2", 22), 512), 22);
  EXPECT_DOUBLE_EQ(kvlab::prefill_layer_passes(KvPlan::parse("lckv:2", 22), 4), 22);
}

TEST(PlanErrors, UnknownGenerator) { expect_error("clx:2", 6, "unknown generator"); }
TEST(PlanErrors, TargetNotKvLayer) {
  expect_error("0_0_1_3", 4, "kv(2) = 1 is invalid: layer 1 is not a KV layer");
}
TEST(PlanErrors, IndexOutOfRange) { expect_error("0_1_7_3", 4, "kv(2) = 7"); }
TEST(PlanErrors, WrongLength) { expect_error("0_1_2", 4, "has 3 entries but the model has 4"); }
TEST(PlanErrors, MalformedEntry) {
  expect_error("0_x_2_3", 4, "entry 1");
  expect_error("0__2_3", 4, "entry 1");
  expect_error("0_1_2_", 4, "entry 3");
}
TEST(PlanErrors, GeneratorArguments) {
  expect_error("cla:0", 6, "K (layers per group) = 0 must be in [1, 6]");
  expect_error("cla:99", 6, "must be in [1, 6]");
  expect_error("cla:", 6, "K (layers per group) must be an integer");
  expect_error("cla:-2", 6, "must be an integer");
  expect_error("lckv:6", 6, "W (warm-up layers) = 6");
  expect_error("sandwich-side:2", 6, "bottom, top or middle");
  expect_error("standard:2", 6, "takes no argument");
  expect_error("lasagna-top:7", 6, "N (KV layers) = 7");
}
TEST(PlanErrors, AbsurdLayerCount) {
  EXPECT_THROW(KvPlan::parse("standard", 0), kvlab::Error);
  EXPECT_THROW(KvPlan::parse("standard", 5000), kvlab::Error);
}
