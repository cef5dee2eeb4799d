// The float32 decode attention (reference/attention_decode.hpp) against the reference attention
// (reference/attention.hpp) in float64, on awkward sizes: GQA ratios 1/2/4/8, head sizes 3/64/80/
// 128, cell counts around the block size, strict and sliding sets, per-head positions (H2O), an
// empty set. Every output, probability and score written (the buffers start as NaN), and the same
// bits for every thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "reference/attention.hpp"
#include "reference/attention_decode.hpp"

using namespace kvlab::ref;

namespace {

std::vector<double> values(long n, unsigned seed) {
  std::vector<double> v(n);
  unsigned s = 2654435761u * (seed + 1);
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<double>(s >> 8) / (1 << 24) * 4 - 2;
  }
  return v;
}

struct Case {
  int N, H, H_kv, D;
  AttentionSet set;
  bool per_head;  // positions per KV head, as H2O keeps them
};

struct Out {
  std::vector<float> out, probs, scores;
};

Out run_fast(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
             const std::vector<float>& v, const std::vector<int>& kpos, int qpos, int threads) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Out o{std::vector<float>(c.H * c.D, nan), std::vector<float>(c.H * c.N, nan),
        std::vector<float>(c.H * c.N, nan)};
  AttentionArgs<float> a;
  a.out = o.out.data();
  a.q = q.data();
  a.qpos = &qpos;
  a.T = 1;
  a.k = k.data();
  a.v = v.data();
  a.kpos = kpos.data();
  a.N = c.N;
  a.kpos_head_stride = c.per_head ? c.N : 0;
  a.H = c.H;
  a.H_kv = c.H_kv;
  a.D = c.D;
  a.set = c.set;
  a.probs = o.probs.data();
  a.scores = o.scores.data();
  attention_decode(a, threads);
  return o;
}

void check(const Case& c) {
  const int qpos = 2 * c.N + 3;
  // Positions ascending, with gaps (an evicted cache); per head, different ones; one cell at
  // qpos itself so that the strict set has something to exclude.
  const int heads = c.per_head ? c.H_kv : 1;
  std::vector<int> kpos(static_cast<std::size_t>(heads) * c.N);
  for (int g = 0; g < heads; ++g) {
    for (int j = 0; j < c.N; ++j) kpos[g * c.N + j] = 2 * j + g % 2;
    if (c.N > 0) kpos[g * c.N + c.N - 1] = qpos;
  }
  const auto qd = values(c.H * c.D, c.N + c.D),
             kd = values(static_cast<long>(c.N) * c.H_kv * c.D, 7),
             vd = values(static_cast<long>(c.N) * c.H_kv * c.D, 9);
  const std::vector<float> q(qd.begin(), qd.end()), k(kd.begin(), kd.end()),
      v(vd.begin(), vd.end());
  // The reference, in float64 on the same (float-rounded) inputs.
  const std::vector<double> q64(q.begin(), q.end()), k64(k.begin(), k.end()),
      v64(v.begin(), v.end());
  std::vector<double> out64(c.H * c.D), probs64(c.H * c.N), scores64(c.H * c.N);
  attention(out64.data(), q64.data(), &qpos, 1, k64.data(), v64.data(), kpos.data(), c.N, c.H,
            c.H_kv, c.D, c.set, 1, probs64.data(), c.per_head ? c.N : 0, scores64.data());
  const std::string what =
      "N=" + std::to_string(c.N) + " H=" + std::to_string(c.H) + " H_kv=" + std::to_string(c.H_kv) +
      " D=" + std::to_string(c.D) + " strict=" + std::to_string(c.set.strict) +
      " window=" + std::to_string(c.set.window) + " per_head=" + std::to_string(c.per_head);
  const Out one = run_fast(c, q, k, v, kpos, qpos, 1);
  for (std::size_t i = 0; i < out64.size(); ++i) {
    ASSERT_TRUE(std::isfinite(one.out[i])) << what << " out[" << i << "] unwritten or NaN";
    EXPECT_NEAR(one.out[i], out64[i], 2e-5 * (1 + std::abs(out64[i]))) << what << " out " << i;
  }
  for (std::size_t i = 0; i < probs64.size(); ++i) {
    ASSERT_FALSE(std::isnan(one.probs[i])) << what << " probs[" << i << "] unwritten";
    ASSERT_FALSE(std::isnan(one.scores[i])) << what << " scores[" << i << "] unwritten";
    EXPECT_NEAR(one.probs[i], probs64[i], 2e-6) << what << " probs " << i;
    if (probs64[i] == 0) {
      EXPECT_EQ(one.probs[i], 0.0f) << what << " masked probs " << i;
    }
    if (std::isinf(scores64[i])) {
      EXPECT_EQ(one.scores[i], scores64[i]) << what << " masked score " << i;
    } else {
      EXPECT_NEAR(one.scores[i], scores64[i], 1e-5 * (1 + std::abs(scores64[i]))) << what;
    }
  }
  for (int threads : {2, 3, 8}) {
    const Out t = run_fast(c, q, k, v, kpos, qpos, threads);
    EXPECT_EQ(t.out, one.out) << what << " threads=" << threads;
    EXPECT_EQ(t.probs, one.probs) << what << " threads=" << threads;
  }
}

}  // namespace

TEST(AttentionDecode, MatchesTheReferenceOnAwkwardSizes) {
  for (int N : {0, 1, 2, 7, 127, 128, 129, 300}) {
    for (auto [H, H_kv] : {std::pair{4, 4}, {4, 2}, {8, 2}, {8, 1}}) {
      for (int D : {3, 64, 80, 128}) {
        for (AttentionSet set : {AttentionSet{false, 0}, AttentionSet{true, 0},
                                 AttentionSet{false, 5}, AttentionSet{true, 2}}) {
          for (bool per_head : {false, true}) check({N, H, H_kv, D, set, per_head});
        }
      }
    }
  }
}

TEST(AttentionDecode, AnEmptySetGivesZerosNotNaN) {
  // One cell at the query's own position under the strict (LCKV diagonal) set: nothing to see.
  const int qpos = 4, kp = 4;
  std::vector<float> q(8, 1.0f), k(8, 1.0f), v(8, 1.0f), out(8, NAN), probs(2, NAN);
  AttentionArgs<float> a;
  a.out = out.data();
  a.q = q.data();
  a.qpos = &qpos;
  a.T = 1;
  a.k = k.data();
  a.v = v.data();
  a.kpos = &kp;
  a.N = 1;
  a.H = 2;
  a.H_kv = 2;
  a.D = 4;
  a.set = AttentionSet{true, 0};
  a.probs = probs.data();
  attention_decode(a, 2);
  EXPECT_EQ(out, std::vector<float>(8, 0.0f));
  EXPECT_EQ(probs, std::vector<float>(2, 0.0f));
}
