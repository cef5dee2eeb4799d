// The optimizer against hand computations: one and two AdamW steps (bias correction, decoupled
// decay on matrices only), clipping by global norm, the warmup + cosine schedule; and the
// training initialisation's scales.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "reference/train/adamw.hpp"
#include "reference/train/presets.hpp"
#include "tests/reference/tiny_model.hpp"

namespace {

using namespace kvlab;
using namespace kvlab::ref::train;

template <typename S>
class AdamWTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AdamWTyped, Scalars);

template <typename S>
ref::ModelWeights<S> small_model() {
  return init_for_training<S>(tiny_config(2), KvPlan::parse("cla:2", 2), 7);
}

// One element's update, written out as in the paper (decay first, then the Adam step).
struct Hand {
  double p, m = 0, v = 0;
  void step(double g, double lr, int t, bool decay, const AdamWOptions& o) {
    if (decay) p -= lr * o.weight_decay * p;
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    const double mh = m / (1 - std::pow(o.beta1, t)), vh = v / (1 - std::pow(o.beta2, t));
    p -= lr * mh / (std::sqrt(vh) + o.eps);
  }
};

TYPED_TEST(AdamWTyped, TwoStepsMatchAHandComputation) {
  using S = TypeParam;
  auto w = small_model<S>();
  const auto w0 = w;
  auto g = zeros_like(w);
  AdamWOptions o;
  o.weight_decay = 0.25;  // large, so that decay shows
  AdamW<S> opt(w, o);
  auto params = parameters(g);
  const double tol = std::is_same_v<S, float> ? 1e-6 : 1e-15;
  const double gs[2] = {0.3, -0.7};
  const double lrs[2] = {0.01, 0.02};
  for (int t = 0; t < 2; ++t) {
    for (auto& p : params) {
      for (size_t k = 0; k < p.data->size(); ++k) (*p.data)[k] = static_cast<S>(gs[t] * (k % 3));
    }
    opt.step(w, g, lrs[t]);
  }
  EXPECT_EQ(opt.t(), 2);
  auto P = parameters(w);
  auto P0 = parameters(const_cast<ref::ModelWeights<S>&>(w0));
  int checked_matrix = 0, checked_norm = 0;
  for (size_t i = 0; i < P.size(); ++i) {
    for (size_t k : {size_t(0), size_t(1), size_t(2), size_t(5)}) {
      Hand h{static_cast<double>((*P0[i].data)[k])};
      for (int t = 0; t < 2; ++t) {
        h.step(static_cast<double>(static_cast<S>(gs[t] * (k % 3))), lrs[t], t + 1, P0[i].matrix,
               o);
      }
      EXPECT_NEAR(static_cast<double>((*P[i].data)[k]), h.p, tol * (1 + std::abs(h.p)))
          << P[i].name << "[" << k << "]";
      (P[i].matrix ? checked_matrix : checked_norm)++;
    }
  }
  EXPECT_GT(checked_matrix, 0);
  EXPECT_GT(checked_norm, 0);
  // A norm weight with zero gradient is not decayed: it stays exactly 1.
  EXPECT_EQ(w.final_norm[0], S(1));
  // A matrix element with zero gradient only decays.
  const double p0 = static_cast<double>(w0.embed[0]);
  EXPECT_NEAR(static_cast<double>(w.embed[0]), p0 * (1 - 0.01 * 0.25) * (1 - 0.02 * 0.25),
              tol * (1 + std::abs(p0)));
}

TYPED_TEST(AdamWTyped, FirstStepMovesEveryTouchedWeightByAboutLr) {
  // Bias correction: after step 1, m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
  using S = TypeParam;
  auto w = small_model<S>();
  const auto w0 = w;
  auto g = zeros_like(w);
  for (auto& x : g.layers[0].wq) x = S(-4);
  AdamWOptions o;
  o.weight_decay = 0;
  AdamW<S> opt(w, o);
  opt.step(w, g, 0.5);
  EXPECT_NEAR(static_cast<double>(w.layers[0].wq[3]), static_cast<double>(w0.layers[0].wq[3]) + 0.5,
              1e-6);
  EXPECT_EQ(w.layers[1].wq, w0.layers[1].wq);
}

TYPED_TEST(AdamWTyped, ClippingScalesToTheGlobalNorm) {
  using S = TypeParam;
  auto w = small_model<S>();
  auto g = zeros_like(w);
  std::size_t n = 0;
  for (auto& p : parameters(g)) {
    for (auto& x : *p.data) x = S(2);
    n += p.data->size();
  }
  const double norm = 2 * std::sqrt(static_cast<double>(n));
  EXPECT_NEAR(global_norm(g), norm, 1e-9 * norm);
  EXPECT_NEAR(clip_by_global_norm(g, 10 * norm), norm, 1e-9 * norm);  // under: unchanged
  EXPECT_EQ(g.embed[0], S(2));
  EXPECT_NEAR(clip_by_global_norm(g, 1.0), norm, 1e-9 * norm);
  EXPECT_NEAR(global_norm(g), 1.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(g.embed[0]), 1.0 / std::sqrt(static_cast<double>(n)), 1e-7);
}

TYPED_TEST(AdamWTyped, RestoreChecksShapes) {
  using S = TypeParam;
  auto w = small_model<S>();
  AdamW<S> opt(w, {});
  auto other = init_for_training<S>(tiny_config(2), KvPlan::parse("standard", 2), 7);
  EXPECT_THROW(opt.restore(3, zeros_like(other), zeros_like(other)), Error);
  opt.restore(3, zeros_like(w), zeros_like(w));
  EXPECT_EQ(opt.t(), 3);
}

TEST(Schedule, WarmupThenCosineToTheFloor) {
  Schedule s;
  s.peak = 1.0;
  s.floor = 0.1;
  s.warmup = 10;
  s.total = 110;
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1.0);
  EXPECT_NEAR(s.lr_at(60), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(s.lr_at(110), 0.1, 1e-12);
  EXPECT_NEAR(s.lr_at(500), 0.1, 1e-12);  // past the end: the floor
  for (int t = 10; t < 110; ++t) EXPECT_LE(s.lr_at(t + 1), s.lr_at(t));
  s.warmup = 0;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1.0);
  s.peak = -1;
  EXPECT_THROW(s.validate(), Error);
}

TEST(TrainInit, Gpt2ScalesAndOnlyKvLayersHaveKv) {
  ModelConfig c = find_train_preset("tiny").shape;
  c.vocab_size = 500;
  const KvPlan plan = KvPlan::parse("cla:2", c.num_hidden_layers);
  const auto w = init_for_training<double>(c, plan, 3);
  auto stddev = [](const ref::Buffer<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / static_cast<double>(v.size()));
  };
  EXPECT_NEAR(stddev(w.embed), 0.02, 0.001);
  EXPECT_NEAR(stddev(w.layers[0].w1), 0.02, 0.001);
  EXPECT_NEAR(stddev(w.layers[0].wo), 0.02 / std::sqrt(12.0), 0.0005);
  EXPECT_NEAR(stddev(w.layers[0].w2), 0.02 / std::sqrt(12.0), 0.0005);
  EXPECT_FALSE(w.layers[0].wk.empty());
  EXPECT_TRUE(w.layers[1].wk.empty());
  EXPECT_TRUE(w.classifier.empty());  // tied
  const auto again = init_for_training<double>(c, plan, 3);
  EXPECT_EQ(w.layers[5].w3, again.layers[5].w3);
  EXPECT_THROW(init_for_training<float>(c, KvPlan::parse("standard", 4), 3), Error);
}

TEST(TrainPresets, NamedErrors) {
  EXPECT_THROW(find_train_preset("huge"), Error);
  EXPECT_EQ(find_train_preset("small").shape.hidden_size, 256);
  EXPECT_THROW(train_config(find_train_preset("tiny"), 1024, 3), Error);
  EXPECT_EQ(train_config(find_train_preset("tiny"), 1024, 1).num_key_value_heads, 1);
}

}  // namespace
