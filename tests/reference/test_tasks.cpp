// The tasks' examples (techniques.md §8): MQAR from a seed that means the same example on every
// machine (golden values), the generator under it, and passkey prompts encoded as one text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "core/error.hpp"
#include "reference/rng.hpp"
#include "reference/tasks.hpp"

using namespace kvlab;
using namespace kvlab::ref;

TEST(Rng, SplitMix64Reference) {
  // The published first output of SplitMix64 from seed 0, and the first four from seed 42.
  EXPECT_EQ(Rng(0).next(), 0xE220A8397B1DCDAFull);
  Rng r(42);
  for (std::uint64_t want : {13679457532755275413ull, 2949826092126892291ull,
                             5139283748462763858ull, 6349198060258255764ull}) {
    EXPECT_EQ(r.next(), want);
  }
}

TEST(Rng, DrawsAreGoldenAndInRange) {
  Rng r(1);
  std::vector<int> below;
  for (int i = 0; i < 8; ++i) below.push_back(static_cast<int>(r.below(10)));
  EXPECT_EQ(below, (std::vector<int>{5, 9, 0, 5, 1, 8, 5, 3}));
  std::vector<int> v = {0, 1, 2, 3, 4, 5, 6, 7};
  r.shuffle(v);
  EXPECT_EQ(v, (std::vector<int>{2, 5, 1, 6, 7, 3, 4, 0}));
  std::vector<int> drawn;
  for (int i = 0; i < 8; ++i) drawn.push_back(r.draw({0.0, 1.0, 0.0, 3.0}));
  EXPECT_EQ(drawn, (std::vector<int>{1, 3, 3, 3, 3, 1, 1, 3}));
  // Ranges: below(n) in [0, n) (n = 1 and n = 2^63 + 1, where half the draws are rejected);
  // zero weights never drawn; the weights' proportions hold.
  Rng q(9);
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4000; ++i) {
    EXPECT_EQ(q.below(1), 0u);
    EXPECT_LT(q.below((1ull << 63) + 1), (1ull << 63) + 1);
    ++counts[q.draw({0.0, 1.0, 0.0, 3.0})];
  }
  EXPECT_EQ(counts[0] + counts[2], 0);
  EXPECT_NEAR(counts[3] / 4000.0, 0.75, 0.03);
}

TEST(Tasks, MqarFromASeedIsTheSameEverywhere) {
  // Golden: vocab 64 gives keys from [8, 36) and values from [36, 64); 5 pairs, filler 4 up to 20
  // tokens; 4 queries, recent pairs more often, each key once, its value scored.
  const TaskExample ex = make_mqar(20, 5, 4, 64, 7);
  EXPECT_EQ(ex.context, (std::vector<int>{25, 39, 14, 55, 34, 49, 21, 40, 28, 60,  //
                                          4,  4,  4,  4,  4,  4,  4,  4,  4,  4}));
  EXPECT_EQ(ex.query, (std::vector<int>{21, 40, 34, 49, 28, 60, 14, 55}));
  EXPECT_EQ(ex.answer, (std::vector<int>{40, -1, 49, -1, 60, -1, 55, -1}));
  // Any seed: distinct keys, values in their range, every query a key followed by its value.
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    const TaskExample e = make_mqar(64, 16, 8, 300, seed);
    ASSERT_EQ(e.context.size(), 64u);
    std::set<int> keys;
    for (int i = 0; i < 16; ++i) {
      const int k = e.context[2 * i], v = e.context[2 * i + 1];
      EXPECT_TRUE(k >= 8 && k < 8 + 146) << k;
      EXPECT_TRUE(v >= 8 + 146 && v < 8 + 292) << v;
      keys.insert(k);
    }
    EXPECT_EQ(keys.size(), 16u);
    std::set<int> asked;
    for (std::size_t q = 0; q < e.query.size(); q += 2) {
      const auto at = std::find(e.context.begin(), e.context.begin() + 32, e.query[q]);
      ASSERT_NE(at, e.context.begin() + 32);
      EXPECT_EQ(e.answer[q], *(at + 1));
      EXPECT_EQ(e.query[q + 1], *(at + 1));
      EXPECT_EQ(e.answer[q + 1], -1);
      asked.insert(e.query[q]);
    }
    EXPECT_EQ(asked.size(), 8u);
  }
  EXPECT_THROW(make_mqar(20, 5, 6, 64, 7), Error);  // more queries than pairs
}
