// Gradients of the model family (reference/train): every operation's backward and the whole
// model's against central finite differences in float64, on awkward sizes (odd T, GQA ratios 2
// and 4, a head dim that is no power of two); the loss against the inference engine's logits;
// float32 against float64; the same bits for any thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "reference/engine.hpp"
#include "reference/train/grad.hpp"
#include "reference/train/ops_grad.hpp"
#include "reference/weights.hpp"

namespace {

using namespace kvlab;
using namespace kvlab::ref;
using namespace kvlab::ref::train;

std::vector<double> randn(long n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Checks d f / d x[i] == analytic[i] for every i by central differences (f is a scalar of x).
void expect_fd(const std::function<double()>& f, std::vector<double>& x,
               const std::vector<double>& analytic, const char* what, double tol = 1e-7) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double eps = 1e-5;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = f();
    x[i] = keep - eps;
    const double down = f();
    x[i] = keep;
    const double fd = (up - down) / (2 * eps);
    const double err = std::abs(fd - analytic[i]) / std::max(1.0, std::abs(fd));
    worst = std::max(worst, err);
    EXPECT_LT(err, tol) << what << " element " << i << ": fd " << fd << " analytic " << analytic[i];
    if (err >= tol) return;
  }
  SCOPED_TRACE(what);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// ---------------------------------------------------------------- per operation

TEST(TrainOps, RmsnormBackwardMatchesFiniteDifferences) {
  const int N = 5, C = 7;
  auto x = randn(N * C, 1), w = randn(C, 2), r = randn(N * C, 3);
  std::vector<double> out(N * C), rstd(N);
  auto f = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
    return dot(out, r);
  };
  f();
  std::vector<double> dx(N * C, 0), dw(C, 0);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), rstd.data(), w.data(), N, C);
  expect_fd(f, x, dx, "rmsnorm dx");
  expect_fd(f, w, dw, "rmsnorm dw");
}

TEST(TrainOps, LinearBackwardMatchesFiniteDifferences) {
  const int N = 131, I = 3, O = 35;  // more rows than one tile, more outputs than one
  auto x = randn(static_cast<long>(N) * I, 4), w = randn(O * I, 5), r = randn(N * O, 6);
  std::vector<double> out(N * O);
  auto f = [&] {
    linear_forward(out.data(), x.data(), w.data(), N, I, O, 1);
    return dot(out, r);
  };
  std::vector<double> dx(N * I, 0), dw(O * I, 0);
  linear_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), N, I, O, 2, false);
  expect_fd(f, x, dx, "linear dx");
  expect_fd(f, w, dw, "linear dw");
}

TEST(TrainOps, RopeBackwardIsTheTransposedRotation) {
  const int B = 2, T = 5, heads = 3, D = 6, N = B * T;
  std::vector<double> cs, sn;
  rope_tables(cs, sn, T, D, 10000.0);
  auto x = randn(N * heads * D, 7), r = randn(N * heads * D, 8);
  std::vector<double> y;
  auto f = [&] {
    y = x;
    rope_forward(y.data(), cs.data(), sn.data(), N, T, heads, D);
    return dot(y, r);
  };
  std::vector<double> dx = r;
  rope_backward(dx.data(), cs.data(), sn.data(), N, T, heads, D);
  expect_fd(f, x, dx, "rope dx");
  // Pairs i with i + D/2 (Hugging Face), position n % T: row 0 of each batch row is unrotated.
  f();
  for (int c = 0; c < heads * D; ++c) EXPECT_EQ(y[T * heads * D + c], x[T * heads * D + c]);
}

struct AttentionCase {
  int H, H_kv;
  AttentionSet set;
};

TEST(TrainOps, AttentionBackwardMatchesFiniteDifferences) {
  const int B = 2, T = 7, D = 6;
  AttentionSet causal, strict, window, strict_window;
  strict.strict = true;
  window.window = 3;
  strict_window.strict = true;
  strict_window.window = 2;
  for (AttentionCase c : {AttentionCase{4, 2, causal}, AttentionCase{4, 1, strict},
                          AttentionCase{4, 4, window}, AttentionCase{8, 2, strict_window}}) {
    const int N = B * T, Q = c.H * D, KV = c.H_kv * D;
    auto q = randn(N * Q, 9), k = randn(N * KV, 10), v = randn(N * KV, 11), r = randn(N * Q, 12);
    std::vector<double> out(N * Q), probs(static_cast<long>(B) * c.H * T * T);
    auto f = [&] {
      attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, c.H, c.H_kv,
                        D, c.set, 1);
      return dot(out, r);
    };
    f();
    // Empty sets give zero rows: the first query of a strict layer.
    if (c.set.strict) {
      for (int i = 0; i < Q; ++i) EXPECT_EQ(out[i], 0.0);
    }
    std::vector<double> dq(N * Q), dk(N * KV, 0), dv(N * KV, 0);
    attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), q.data(), k.data(),
                       v.data(), B, T, c.H, c.H_kv, D, 3);
    expect_fd(f, q, dq, "attention dq");
    expect_fd(f, k, dk, "attention dk");
    expect_fd(f, v, dv, "attention dv");
  }
}

TEST(TrainOps, SwigluAndCrossEntropyAndEmbeddingBackward) {
  const long n = 23;
  auto g = randn(n, 13, 2.0), u = randn(n, 14), r = randn(n, 15);
  std::vector<double> out(n);
  auto f = [&] {
    swiglu_forward(out.data(), g.data(), u.data(), n);
    return dot(out, r);
  };
  std::vector<double> dg(n), du(n);
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  expect_fd(f, g, dg, "swiglu dgate");
  expect_fd(f, u, du, "swiglu dup");

  const int N = 5, V = 11;
  auto logits = randn(N * V, 16, 3.0);
  const std::vector<int> tgt = {0, 10, 3, 3, 7};
  auto ce = [&] {
    std::vector<double> l = logits;
    return cross_entropy(l.data(), tgt.data(), N, V, false, 1.0, 1) / N;
  };
  std::vector<double> d = logits;
  cross_entropy(d.data(), tgt.data(), N, V, true, 1.0 / N, 2);
  expect_fd(ce, logits, d, "cross-entropy dlogits");

  const int C = 4;
  const std::vector<int> toks = {2, 0, 2, 1};
  auto emb = randn(3 * C, 17), re = randn(4 * C, 18);
  std::vector<double> eo(4 * C);
  auto fe = [&] {
    embedding_forward(eo.data(), emb.data(), toks.data(), 4, C);
    return dot(eo, re);
  };
  std::vector<double> de(3 * C, 0);
  embedding_backward(de.data(), re.data(), toks.data(), 4, C);
  expect_fd(fe, emb, de, "embedding");
}

// ---------------------------------------------------------------- the whole model

// Awkward: GQA 4/2 (ratio 2), D = 6, odd vocabulary, window 2.
ModelConfig grad_config(int layers = 4, int H = 4, int H_kv = 2) {
  ModelConfig c;
  c.num_attention_heads = H;
  c.num_key_value_heads = H_kv;
  c.head_dim = 6;
  c.hidden_size = H * 6;
  c.num_hidden_layers = layers;
  c.intermediate_size = 20;
  c.vocab_size = 13;
  c.max_position_embeddings = 64;
  c.sliding_window = 2;
  c.tie_word_embeddings = false;
  return c;
}

std::vector<int> make_batch(int B, int T, int V, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> v(static_cast<long>(B) * (T + 1));
  for (auto& t : v) t = static_cast<int>(rng() % V);
  return v;
}

struct ModelCase {
  const char* name;
  ModelConfig cfg;
  std::string plan;
  TrainPasses passes;
  bool nodiag = false;
};

std::vector<ModelCase> model_cases() {
  TrainPasses p01{0, 1, 0}, p32{3, 2, 0}, p32kv{3, 2, 0.7}, p02kv{0, 2, 0.5};
  ModelConfig tied = grad_config();
  tied.tie_word_embeddings = true;
  return {
      {"standard", grad_config(), "standard", {}},
      {"gqa4_tied",
       [] {
         auto c = grad_config(3, 4, 1);
         c.tie_word_embeddings = true;
         return c;
       }(),
       "standard",
       {}},
      {"gqa_ratio4", grad_config(3, 8, 2), "standard", {}},
      {"cla2", grad_config(), "cla:2", {}},
      {"sliding", grad_config(), "0s_1_1s_3s", {}},
      {"lckv_0_1", grad_config(), "lckv:2", p01},
      {"lckv_3_2", grad_config(), "lckv:2", p32},
      {"lckv_3_2_kvloss", grad_config(), "lckv:2", p32kv},
      {"lckv_0_2_kvloss_nodiag", tied, "0_2_2_3", p02kv, true},
      {"two_blocks", grad_config(5), "1_1_4_4_4", p32},
  };
}

// Whole-model gradient against central differences: the directional derivative along a random
// direction over every parameter, and a few entries of every tensor one by one.
TEST(TrainGrad, WholeModelMatchesFiniteDifferences) {
  for (const ModelCase& mc : model_cases()) {
    SCOPED_TRACE(mc.name);
    const KvPlan plan = KvPlan::parse(mc.plan, mc.cfg.num_hidden_layers);
    ModelWeights<double> w = init_random<double>(mc.cfg, plan, 11);
    // Norm weights away from 1 so their gradients are not special.
    for (auto& p : parameters(w)) {
      if (!p.matrix) {
        auto n = randn(static_cast<long>(p.data->size()), 3, 0.3);
        for (std::size_t i = 0; i < n.size(); ++i) (*p.data)[i] += n[i];
      }
    }
    const int B = 2, T = 5;
    const auto batch = make_batch(B, T, mc.cfg.vocab_size, 5);
    GradModel<double> model(mc.cfg, plan, mc.passes, 1, mc.nodiag);
    ModelWeights<double> g;
    const LossReport rep = model.loss_and_grad(w, batch.data(), B, T, g);
    EXPECT_TRUE(std::isfinite(rep.total()));
    if (mc.passes.kv_loss_weight > 0) {
      EXPECT_GT(rep.kv_loss, 0);
    }
    // The K/V of the passes without gradient are constants (§4): hold them fixed.
    model.freeze_constants(true);
    auto f = [&] { return model.loss(w, batch.data(), B, T).total(); };
    EXPECT_DOUBLE_EQ(f(), rep.total());

    auto params = parameters(w);
    auto grads = parameters(g);
    ASSERT_EQ(params.size(), grads.size());
    // Directional derivative.
    std::vector<std::vector<double>> dir;
    double analytic = 0;
    for (std::size_t p = 0; p < params.size(); ++p) {
      dir.push_back(randn(static_cast<long>(params[p].data->size()), 100 + p));
      for (std::size_t i = 0; i < dir[p].size(); ++i) analytic += dir[p][i] * (*grads[p].data)[i];
    }
    const double eps = 1e-6;
    auto shift = [&](double s) {
      for (std::size_t p = 0; p < params.size(); ++p) {
        for (std::size_t i = 0; i < dir[p].size(); ++i) (*params[p].data)[i] += s * dir[p][i];
      }
    };
    shift(eps);
    const double up = f();
    shift(-2 * eps);
    const double down = f();
    shift(eps);
    const double fd = (up - down) / (2 * eps);
    EXPECT_NEAR(fd, analytic, 1e-6 * std::max(1.0, std::abs(fd)));
    // Entries of every tensor.
    std::mt19937_64 rng(7);
    for (std::size_t p = 0; p < params.size(); ++p) {
      auto& data = *params[p].data;
      for (int k = 0; k < 4; ++k) {
        const std::size_t i = rng() % data.size();
        const double keep = data[i];
        data[i] = keep + 1e-5;
        const double a = f();
        data[i] = keep - 1e-5;
        const double b = f();
        data[i] = keep;
        const double d = (a - b) / 2e-5;
        EXPECT_NEAR((*grads[p].data)[i], d, 1e-7 * std::max(1.0, std::abs(d)))
            << params[p].name << "[" << i << "]";
      }
    }
  }
}

// The loss equals the mean next-token NLL from the inference engine's prefill logits.
TEST(TrainGrad, LossEqualsTheEnginesNextTokenNll) {
  struct Case {
    ModelConfig cfg;
    std::string plan;
    TrainPasses passes;
  };
  const std::vector<Case> cases = {{grad_config(), "standard", {}},
                                   {grad_config(3, 8, 2), "standard", {}},
                                   {grad_config(), "cla:2", {}},
                                   {grad_config(), "0s_1_1s_3s", {}},
                                   {grad_config(), "lckv:2", {3, 2, 0}},
                                   {grad_config(), "lckv:2", {0, 1, 0}},
                                   {grad_config(5), "1_1_4_4_4", {2, 2, 0}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.plan);
    const KvPlan plan = KvPlan::parse(c.plan, c.cfg.num_hidden_layers);
    const ModelWeights<double> w = init_random<double>(c.cfg, plan, 3);
    const int T = 11;  // > m + b: the engine iterates rather than going token by token
    const auto tokens = make_batch(1, T, c.cfg.vocab_size, 9);
    EngineOptions o;
    o.schedule.mode = PrefillMode::fixed;
    o.schedule.passes = c.passes.m + c.passes.b;
    Engine<double> engine(w, o);
    const std::vector<int> in(tokens.begin(), tokens.end() - 1);
    const auto logits = engine.prefill(in, /*all_logits=*/true);
    const int V = c.cfg.vocab_size;
    double nll = 0;
    for (int t = 0; t < T; ++t) {
      const double* row = logits.data() + static_cast<long>(t) * V;
      const double mx = *std::max_element(row, row + V);
      double s = 0;
      for (int j = 0; j < V; ++j) s += std::exp(row[j] - mx);
      nll += mx + std::log(s) - row[tokens[t + 1]];
    }
    nll /= T;
    GradModel<double> model(c.cfg, plan, c.passes, 1);
    EXPECT_NEAR(model.loss(w, tokens.data(), 1, T).loss, nll, 1e-12 * std::abs(nll));
  }
}

TEST(TrainGrad, Float32IsCloseToFloat64) {
  for (const char* spec : {"cla:2", "lckv:2"}) {
    SCOPED_TRACE(spec);
    const ModelConfig cfg = grad_config();
    const KvPlan plan = KvPlan::parse(spec, cfg.num_hidden_layers);
    const auto wd = init_random<double>(cfg, plan, 4);
    const auto wf = convert_weights<float>(wd);
    const auto batch = make_batch(3, 9, cfg.vocab_size, 2);
    TrainPasses p{2, 2, 0.3};
    GradModel<double> md(cfg, plan, p, 1);
    GradModel<float> mf(cfg, plan, p, 1);
    ModelWeights<double> gd;
    ModelWeights<float> gf;
    const auto rd = md.loss_and_grad(wd, batch.data(), 3, 9, gd);
    const auto rf = mf.loss_and_grad(wf, batch.data(), 3, 9, gf);
    EXPECT_NEAR(rf.total(), rd.total(), 1e-4 * rd.total());
    auto pd = parameters(gd);
    auto pf = parameters(gf);
    for (std::size_t i = 0; i < pd.size(); ++i) {
      double scale = 0, err = 0;
      for (std::size_t j = 0; j < pd[i].data->size(); ++j) {
        scale = std::max(scale, std::abs((*pd[i].data)[j]));
        err = std::max(err, std::abs((*pd[i].data)[j] - (*pf[i].data)[j]));
      }
      EXPECT_LT(err, 1e-3 * scale + 1e-7) << pd[i].name;
    }
  }
}

TEST(TrainGrad, SameBitsForAnyThreadCount) {
  ModelConfig cfg = grad_config(5, 8, 2);
  cfg.max_position_embeddings = 256;
  for (const char* spec : {"standard", "1_1_4_4_4"}) {
    SCOPED_TRACE(spec);
    const KvPlan plan = KvPlan::parse(spec, cfg.num_hidden_layers);
    const auto w = init_random<double>(cfg, plan, 8);
    const int B = 3, T = 150;  // two row tiles and a partial one
    const auto batch = make_batch(B, T, cfg.vocab_size, 1);
    ModelWeights<double> g1, g3;
    GradModel<double> m1(cfg, plan, {1, 2, 0.2}, 1), m3(cfg, plan, {1, 2, 0.2}, 3);
    const auto r1 = m1.loss_and_grad(w, batch.data(), B, T, g1);
    const auto r3 = m3.loss_and_grad(w, batch.data(), B, T, g3);
    EXPECT_EQ(r1.loss, r3.loss);
    EXPECT_EQ(r1.kv_loss, r3.kv_loss);
    auto p1 = parameters(g1);
    auto p3 = parameters(g3);
    for (std::size_t i = 0; i < p1.size(); ++i) {
      EXPECT_TRUE(*p1[i].data == *p3[i].data) << p1[i].name;
    }
  }
}

TEST(TrainGrad, GradientsAreOverwrittenNotAccumulated) {
  const ModelConfig cfg = grad_config();
  const KvPlan plan = KvPlan::parse("standard", cfg.num_hidden_layers);
  const auto w = init_random<double>(cfg, plan, 8);
  const auto batch = make_batch(2, 5, cfg.vocab_size, 1);
  GradModel<double> m(cfg, plan, {}, 1);
  ModelWeights<double> a, b;
  m.loss_and_grad(w, batch.data(), 2, 5, a);
  b = a;
  m.loss_and_grad(w, batch.data(), 2, 5, b);
  EXPECT_TRUE(a.embed == b.embed);
  EXPECT_TRUE(a.layers[1].wq == b.layers[1].wq);
}

TEST(TrainGrad, NamedErrors) {
  const ModelConfig cfg = grad_config();
  const KvPlan plan = KvPlan::parse("standard", cfg.num_hidden_layers);
  const auto w = init_random<double>(cfg, plan, 8);
  GradModel<double> m(cfg, plan, {}, 1);
  std::vector<int> batch = {1, 2, 13, 4};
  try {
    m.loss(w, batch.data(), 1, 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token = 13"), std::string::npos) << e.what();
  }
  EXPECT_THROW((TrainPasses{0, 0, 0}.validate()), Error);
  EXPECT_THROW((TrainPasses{-1, 2, 0}.validate()), Error);
  EXPECT_THROW((TrainPasses{1, 2, -0.5}.validate()), Error);
  // A plan whose KV layers the weights lack.
  GradModel<double> cla(cfg, KvPlan::parse("0_0_0_3", 4), {}, 1);
  const auto wc = init_random<double>(cfg, KvPlan::parse("0_0_0_3", 4), 1);
  GradModel<double> std_model(cfg, plan, {}, 1);
  std::vector<int> ok = {1, 2, 3, 4};
  EXPECT_THROW(std_model.loss(wc, ok.data(), 1, 3), Error);
}

}  // namespace
