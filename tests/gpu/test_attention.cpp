// gpu::attention against ref::attention computed in float64 on the same (float) inputs, on every
// path (automatic; exact with probs and scores, probs alone, scores alone, neither; prefill; decode
// with 1, 3, 7 and automatic chunks; decode's scalar
// fallback through misaligned pointers) and on awkward cases: odd lengths, T = 1, GQA ratios
// 1/2/3/4/8/16, head sizes 33/64/80/128/256, causal, strict (LCKV) and window sets, per-KV-head
// positions (H2O), cells out of order, an empty set, N = 0. Outputs start as NaN inside guard
// regions: an unwritten element or a stray write fails. Tolerances: out within 2e-5 + 1e-4·|want|
// (float32 sums of up to 4k terms against float64), probs within 1e-6 + 1e-4·|want|, scores within
// 1e-5 + 1e-5·|want| and -inf exactly where the reference has it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/attention.cuh"
#include "reference/attention.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::gpu::AttentionOptions;
using kvlab::gpu::AttentionPath;
using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

struct Case {
  const char* name;
  int T, N, H, H_kv, D;
  bool strict = false;
  int window = 0;
  bool per_head = false;  // kpos (H_kv, N), each head its own subset of positions (H2O)
  bool shuffled = false;  // cells not in position order
  int q_end = -1;         // queries at positions [q_end - T, q_end); -1: just past the last cell
};

const Case kCases[] = {
    {"prompt, MHA, D=64", 37, 37, 4, 4, 64},
    {"prompt, GQA 4, D=80", 77, 77, 8, 2, 80},
    {"prompt, strict (LCKV), MQA 8, D=128", 100, 100, 8, 1, 128, true},
    {"prompt, window 16, GQA 2, D=33", 65, 65, 6, 3, 33, false, 16},
    {"prompt, GQA 16, D=256", 50, 50, 16, 1, 256},
    {"chunked prefill, 40 rows over 200 cells", 40, 200, 8, 4, 64, false, 0, false, false, 200},
    {"decode, GQA 4, D=128, 1000 cells", 1, 1000, 32, 8, 128, false, 0, false, false, 1000},
    {"decode, GQA 3, window 257, per-head kpos, D=80", 1, 3001, 12, 4, 80, false, 257, true},
    {"3 rows, strict, per-head kpos, D=64", 3, 513, 8, 8, 64, true, 0, true},
    {"decode, MQA 8, D=256, 4097 cells", 1, 4097, 8, 1, 256},
    {"20 rows, per-head kpos, shuffled, window 50", 20, 300, 4, 2, 128, false, 50, true, true},
    {"decode, GQA 2, strict, 999 cells", 1, 999, 4, 2, 128, true},
    {"empty set: one cell at the query's position, strict", 1, 1, 2, 1, 64, true, 0, false, false,
     1},
    {"every set empty: strict, window 1", 9, 40, 4, 2, 64, true, 1},
    {"no cells", 5, 0, 4, 2, 64},
};

struct Inputs {
  std::vector<float> q, k, v;
  std::vector<int> qpos, kpos;
  int stride = 0;
};

Inputs make_inputs(const Case& c, unsigned seed) {
  Inputs in;
  const std::size_t qn = static_cast<std::size_t>(c.T) * c.H * c.D;
  const std::size_t kn = static_cast<std::size_t>(c.N) * c.H_kv * c.D;
  in.q = uniform(qn, seed, -3.0, 3.0);  // peaked enough that the softmax is not flat
  in.k = uniform(kn, seed + 1);
  in.v = uniform(kn, seed + 2);
  std::mt19937 rng(seed + 3);
  int top = c.N;  // one past the largest position
  if (c.per_head) {
    in.stride = c.N;
    in.kpos.resize(static_cast<std::size_t>(c.H_kv) * c.N);
    std::vector<int> all(2 * c.N);
    std::iota(all.begin(), all.end(), 0);
    top = 0;
    for (int g = 0; g < c.H_kv; ++g) {
      std::shuffle(all.begin(), all.end(), rng);
      std::vector<int> pick(all.begin(), all.begin() + c.N);
      std::sort(pick.begin(), pick.end());
      if (c.shuffled) std::shuffle(pick.begin(), pick.end(), rng);
      std::copy(pick.begin(), pick.end(), in.kpos.begin() + static_cast<long>(g) * c.N);
      for (int p : pick) top = std::max(top, p + 1);
    }
  } else {
    in.kpos.resize(c.N);
    std::iota(in.kpos.begin(), in.kpos.end(), 0);
    if (c.shuffled) std::shuffle(in.kpos.begin(), in.kpos.end(), rng);
  }
  const int q_end = c.q_end >= 0 ? c.q_end : std::max(top, c.T);
  in.qpos.resize(c.T);
  for (int t = 0; t < c.T; ++t) in.qpos[t] = q_end - c.T + t;
  return in;
}

struct Truth {
  std::vector<double> out, probs, scores;
};

Truth truth(const Case& c, const Inputs& in) {
  Truth r;
  const std::vector<double> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end()),
      v(in.v.begin(), in.v.end());
  r.out.assign(static_cast<std::size_t>(c.T) * c.H * c.D, 0.0);
  r.probs.assign(static_cast<std::size_t>(c.H) * c.T * c.N, 0.0);
  r.scores.assign(r.probs.size(), 0.0);
  kvlab::ref::attention(r.out.data(), q.data(), in.qpos.data(), c.T, k.data(), v.data(),
                        in.kpos.data(), c.N, c.H, c.H_kv, c.D,
                        kvlab::ref::AttentionSet{c.strict, c.window}, 1, r.probs.data(), in.stride,
                        r.scores.data());
  return r;
}

std::string label(const Case& c, const std::string& how) {
  return std::string(c.name) + " (T=" + std::to_string(c.T) + " N=" + std::to_string(c.N) +
         " H=" + std::to_string(c.H) + " H_kv=" + std::to_string(c.H_kv) +
         " D=" + std::to_string(c.D) + "), " + how;
}

// Runs one configuration and compares out (and probs/scores when asked) with the truth.
// `misalign` shifts q, k and v by one float (the decode path's scalar fallback).
// observe: 0 nothing, 1 probs and scores, 2 probs alone (the scores go through the probs buffer),
// 3 scores alone.
void run_and_check(const Case& c, const Inputs& in, const Truth& want, const AttentionOptions& o,
                   int observe, bool misalign, const std::string& how) {
  SCOPED_TRACE(label(c, how));
  const int off = misalign ? 1 : 0;
  auto padded = [&](const std::vector<float>& h) {
    std::vector<float> p(h.size() + 1, 0.0f);
    std::copy(h.begin(), h.end(), p.begin() + off);
    return p;
  };
  const std::vector<float> hq = padded(in.q), hk = padded(in.k), hv = padded(in.v);
  DeviceBuffer<float> dq = to_device(hq), dk = to_device(hk), dv = to_device(hv);
  DeviceBuffer<int> dqpos = to_device(in.qpos), dkpos = to_device(in.kpos);
  GuardedOutput<float> out(static_cast<std::size_t>(c.T) * c.H * c.D);
  GuardedOutput<float> probs(static_cast<std::size_t>(c.H) * c.T * c.N);
  GuardedOutput<float> scores(probs.size());

  kvlab::gpu::AttentionArgs a;
  a.out = out.data();
  a.q = dq.data() + off;
  a.qpos = dqpos.data();
  a.T = c.T;
  a.k = dk.data() + off;
  a.v = dv.data() + off;
  a.kpos = dkpos.data();
  a.N = c.N;
  a.kpos_head_stride = in.stride;
  a.H = c.H;
  a.H_kv = c.H_kv;
  a.D = c.D;
  a.set = kvlab::ref::AttentionSet{c.strict, c.window};
  if (observe == 1 || observe == 2) a.probs = probs.data();
  if (observe == 1 || observe == 3) a.scores = scores.data();
  const std::size_t bytes = kvlab::gpu::attention_workspace_bytes(a, o);
  DeviceBuffer<char> work(bytes);
  // The workspace starts as NaN bytes too: no path may read it before writing it.
  if (bytes > 0) CUDA_CHECK(cudaMemset(work.data(), 0xFF, bytes));
  kvlab::gpu::attention(a, work.data(), bytes, nullptr, o);

  std::vector<float> got;
  EXPECT_EQ(out.fetch(got), "") << "out";
  EXPECT_EQ(compare(got, want.out, 2e-5, 1e-4), "") << "out";
  if (a.probs) {
    EXPECT_EQ(probs.fetch(got), "") << "probs";
    EXPECT_EQ(compare(got, want.probs, 1e-6, 1e-4), "") << "probs";
  }
  if (a.scores) {
    EXPECT_EQ(scores.fetch(got), "") << "scores";
    EXPECT_EQ(compare(got, want.scores, 1e-5, 1e-5), "") << "scores";
  }
  EXPECT_TRUE(to_host(dq) == hq) << "the kernel wrote into q";
  EXPECT_TRUE(to_host(dk) == hk) << "the kernel wrote into k";
  EXPECT_TRUE(to_host(dv) == hv) << "the kernel wrote into v";
}

TEST(GpuAttention, EveryPathMatchesTheReference) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  unsigned seed = 100;
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c, seed += 10);
    const Truth want = truth(c, in);
    run_and_check(c, in, want, {}, 0, false, "automatic");
    run_and_check(c, in, want, {}, 1, false, "automatic with probs and scores (exact)");
    run_and_check(c, in, want, {}, 2, false, "automatic with probs alone (exact, in place)");
    run_and_check(c, in, want, {}, 3, false, "automatic with scores alone (exact)");
    run_and_check(c, in, want, {AttentionPath::exact, 0}, 0, false, "exact");
    run_and_check(c, in, want, {AttentionPath::prefill, 0}, 0, false, "prefill");
    if (c.T <= 64) {  // the decode path reads K/V once per row: keep it to small T
      for (int splits : {0, 1, 3, 7})
        run_and_check(c, in, want, {AttentionPath::decode, splits}, 0, false,
                      "decode, splits " + std::to_string(splits));
      run_and_check(c, in, want, {AttentionPath::decode, 5}, 0, true,
                    "decode, misaligned (scalar loads)");
    }
  }
}

// The automatic choice: exact when observed or D > 256, decode for T <= 4, else prefill.
TEST(GpuAttention, AutomaticPathChoice) {
  kvlab::gpu::AttentionArgs a;
  a.T = 1, a.N = 10, a.H = 4, a.H_kv = 2, a.D = 64;
  EXPECT_EQ(kvlab::gpu::attention_path(a), AttentionPath::decode);
  a.T = 4;
  EXPECT_EQ(kvlab::gpu::attention_path(a), AttentionPath::decode);
  a.T = 5;
  EXPECT_EQ(kvlab::gpu::attention_path(a), AttentionPath::prefill);
  a.D = 300;
  EXPECT_EQ(kvlab::gpu::attention_path(a), AttentionPath::exact);
  a.D = 64;
  float dummy = 0;
  a.probs = &dummy;
  EXPECT_EQ(kvlab::gpu::attention_path(a), AttentionPath::exact);
  EXPECT_EQ(kvlab::gpu::attention_path(a, {AttentionPath::prefill, 0}), AttentionPath::prefill);
}

// Decode's chunks on a long cache: every split count, including more chunks than blocks of 64.
TEST(GpuAttention, DecodeSplitsOnALongCache) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const Case c{"decode, GQA 8, 20000 cells", 1, 20000, 16, 2, 128};
  const Inputs in = make_inputs(c, 7);
  const Truth want = truth(c, in);
  for (int splits : {0, 1, 2, 64, 313, 4096})
    run_and_check(c, in, want, {AttentionPath::decode, splits}, 0, false,
                  "splits " + std::to_string(splits));
  alignas(16) static float f[4];
  static int i[1];
  kvlab::gpu::AttentionArgs a;
  a.out = f, a.q = f, a.k = f, a.v = f, a.qpos = i, a.kpos = i;
  a.T = 1, a.N = 20000, a.H = 16, a.H_kv = 2, a.D = 128;
  const int auto_splits = kvlab::gpu::attention_decode_splits(a);
  EXPECT_GE(auto_splits, 1);
  EXPECT_LE(auto_splits, (20000 + 63) / 64);
}

kvlab::gpu::AttentionArgs valid_args() {
  static float f[1];
  static int i[1];
  kvlab::gpu::AttentionArgs a;
  a.out = f, a.q = f, a.k = f, a.v = f, a.qpos = i, a.kpos = i;
  a.T = 1, a.N = 1, a.H = 4, a.H_kv = 2, a.D = 64;
  return a;
}

std::string error_of(const kvlab::gpu::AttentionArgs& a, const AttentionOptions& o = {}) {
  try {
    kvlab::gpu::attention(a, nullptr, 0, nullptr, o);
  } catch (const kvlab::Error& e) {
    return e.what();
  }
  return "no error";
}

// Argument checks happen before any CUDA call, so this runs on machines without a GPU as well.
TEST(GpuAttentionArgs, RejectsBadArgumentsNamingTheField) {
  auto a = valid_args();
  a.T = -1;
  EXPECT_NE(error_of(a).find("attention T = -1"), std::string::npos) << error_of(a);
  a = valid_args(), a.N = -2;
  EXPECT_NE(error_of(a).find("attention N = -2"), std::string::npos) << error_of(a);
  a = valid_args(), a.H = 0;
  EXPECT_NE(error_of(a).find("attention H = 0"), std::string::npos) << error_of(a);
  a = valid_args(), a.H_kv = 3;
  EXPECT_NE(error_of(a).find("attention H_kv = 3"), std::string::npos) << error_of(a);
  a = valid_args(), a.D = 0;
  EXPECT_NE(error_of(a).find("attention D = 0"), std::string::npos) << error_of(a);
  a = valid_args(), a.kpos_head_stride = 5;
  EXPECT_NE(error_of(a).find("attention kpos_head_stride = 5"), std::string::npos) << error_of(a);
  a = valid_args(), a.set.window = -1;
  EXPECT_NE(error_of(a).find("attention window = -1"), std::string::npos) << error_of(a);
  a = valid_args(), a.q = nullptr;
  EXPECT_NE(error_of(a).find("attention q = null"), std::string::npos) << error_of(a);
  a = valid_args(), a.kpos = nullptr;
  EXPECT_NE(error_of(a).find("attention kpos = null"), std::string::npos) << error_of(a);
  a = valid_args();
  float p[1];
  a.probs = p;
  EXPECT_NE(error_of(a, {AttentionPath::decode, 0}).find("only the exact path"), std::string::npos);
  EXPECT_NE(error_of(a, {AttentionPath::prefill, 0}).find("only the exact path"),
            std::string::npos);
  a = valid_args(), a.D = 300;
  EXPECT_NE(error_of(a, {AttentionPath::prefill, 0}).find("attention D = 300"), std::string::npos);
  a = valid_args();
  EXPECT_NE(error_of(a, {AttentionPath::decode, -1}).find("decode_splits = -1"), std::string::npos);
  // The exact path needs H*T*N floats of workspace: none given.
  a = valid_args();
  EXPECT_NE(error_of(a, {AttentionPath::exact, 0}).find("attention workspace = 0 bytes"),
            std::string::npos)
      << error_of(a, {AttentionPath::exact, 0});
  EXPECT_EQ(kvlab::gpu::attention_workspace_bytes(a, {AttentionPath::exact, 0}),
            sizeof(float) * 4 * 1 * 1);
  // No rows: nothing to do, nothing launched.
  a = valid_args(), a.T = 0;
  EXPECT_NO_THROW(kvlab::gpu::attention(a, nullptr, 0));
}

}  // namespace
