// The shared BPE merge loop (core/tokenizers/bpe_merge.hpp): lowest priority first, the leftmost
// on ties, merges that create new pairs, and agreement with a plain rescan-every-pair BPE on
// random inputs; the <0xNN> byte pieces.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "core/tokenizers/bpe_merge.hpp"

using kvlab::bpe_merge;
using kvlab::BpeMerge;

namespace {

using Table = std::map<std::pair<int, int>, BpeMerge>;

kvlab::BpePairLookup lookup_in(const Table& t) {
  return [&t](int left, int right) -> std::optional<BpeMerge> {
    const auto it = t.find({left, right});
    if (it == t.end()) return std::nullopt;
    return it->second;
  };
}

// The textbook loop: rescan every adjacent pair, merge the lowest priority (leftmost on ties).
std::vector<int> naive_merge(std::vector<int> s, const Table& t) {
  while (true) {
    size_t best = s.size();
    double best_priority = 0;
    int merged = -1;
    for (size_t k = 0; k + 1 < s.size(); ++k) {
      const auto it = t.find({s[k], s[k + 1]});
      if (it == t.end()) continue;
      if (best == s.size() || it->second.priority < best_priority) {
        best = k;
        best_priority = it->second.priority;
        merged = it->second.merged;
      }
    }
    if (best == s.size()) return s;
    s[best] = merged;
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

}  // namespace

TEST(BpeMerge, EmptyAndSingleSymbolsAreUnchanged) {
  const Table t = {{{1, 2}, {0, 3}}};
  EXPECT_EQ(bpe_merge({}, lookup_in(t)), std::vector<int>{});
  EXPECT_EQ(bpe_merge({1}, lookup_in(t)), std::vector<int>{1});
  EXPECT_EQ(bpe_merge({2, 1}, lookup_in(t)), (std::vector<int>{2, 1}));
}

TEST(BpeMerge, LowestPriorityFirst) {
  // a b c: (b, c) has the lower priority, so "bc" forms and "ab" never can.
  const Table t = {{{1, 2}, {2, 10}}, {{2, 3}, {1, 11}}};
  EXPECT_EQ(bpe_merge({1, 2, 3}, lookup_in(t)), (std::vector<int>{1, 11}));
  // Swapping the priorities gives "ab" c.
  const Table u = {{{1, 2}, {1, 10}}, {{2, 3}, {2, 11}}};
  EXPECT_EQ(bpe_merge({1, 2, 3}, lookup_in(u)), (std::vector<int>{10, 3}));
}

TEST(BpeMerge, LeftmostOnTies) {
  // a a a: the leftmost pair merges, leaving "aa" a.
  const Table t = {{{1, 1}, {0.5, 7}}};
  EXPECT_EQ(bpe_merge({1, 1, 1}, lookup_in(t)), (std::vector<int>{7, 1}));
  EXPECT_EQ(bpe_merge({1, 1, 1, 1}, lookup_in(t)), (std::vector<int>{7, 7}));
  // Equal priorities on different pairs: a b c d with (a, b) and (c, d) both at 3.
  const Table u = {{{1, 2}, {3, 5}}, {{3, 4}, {3, 6}}, {{2, 3}, {4, 8}}};
  EXPECT_EQ(bpe_merge({1, 2, 3, 4}, lookup_in(u)), (std::vector<int>{5, 6}));
}

TEST(BpeMerge, MergesCreateNewPairsAndSkipStaleOnes) {
  // h e l l o: (l, l) -> ll first, then (e, ll) -> ell, then (h, ell) -> hell; the queued (e, l)
  // candidate is stale once "ll" formed.
  enum { h = 1, e, l, o, ll, ell, hell, el };
  const Table t = {
      {{l, l}, {0, ll}}, {{e, l}, {5, el}}, {{e, ll}, {1, ell}}, {{h, ell}, {2, hell}}};
  EXPECT_EQ(bpe_merge({h, e, l, l, o}, lookup_in(t)), (std::vector<int>{hell, o}));
}

TEST(BpeMerge, NegativeAndFractionalPriorities) {
  // As llama2.c uses it: priority = -score, so the best score merges first.
  const Table t = {{{1, 2}, {-2.5, 10}}, {{2, 3}, {-2.25, 11}}};
  EXPECT_EQ(bpe_merge({1, 2, 3}, lookup_in(t)), (std::vector<int>{10, 3}));
}

TEST(BpeMerge, AgreesWithTheRescanLoopOnRandomInputs) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    const int alphabet = 2 + static_cast<int>(rng() % 4);
    Table t;
    // Merges among the base symbols and the symbols they create (ids >= 100), with many ties.
    std::vector<int> symbols;
    for (int a = 0; a < alphabet; ++a) symbols.push_back(a);
    const int merges = 1 + static_cast<int>(rng() % 12);
    for (int m = 0; m < merges; ++m) {
      const int a = symbols[rng() % symbols.size()];
      const int b = symbols[rng() % symbols.size()];
      const int merged = 100 + m;
      t[{a, b}] = {static_cast<double>(rng() % 5), merged};
      symbols.push_back(merged);
    }
    std::vector<int> input(rng() % 24);
    for (int& s : input) s = static_cast<int>(rng() % static_cast<unsigned>(alphabet));
    EXPECT_EQ(bpe_merge(input, lookup_in(t)), naive_merge(input, t)) << "trial " << trial;
  }
}

TEST(BpeBytePieces, ParsesTwoHexDigitsInEitherCase) {
  EXPECT_EQ(kvlab::parse_byte_piece("<0x00>"), 0);
  EXPECT_EQ(kvlab::parse_byte_piece("<0x0A>"), 10);
  EXPECT_EQ(kvlab::parse_byte_piece("<0xff>"), 255);
  EXPECT_EQ(kvlab::parse_byte_piece("<0xFf>"), 255);
  EXPECT_EQ(kvlab::parse_byte_piece("<0xG0>"), -1);
  EXPECT_EQ(kvlab::parse_byte_piece("<0x0>"), -1);
  EXPECT_EQ(kvlab::parse_byte_piece("<0X41>"), -1);
  EXPECT_EQ(kvlab::parse_byte_piece("<0x41"), -1);
  EXPECT_EQ(kvlab::parse_byte_piece("a"), -1);
  EXPECT_EQ(kvlab::parse_byte_piece(""), -1);
}
