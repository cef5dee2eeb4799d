// The Backend seam and subscribed telemetry (issue 10): the engine runs the same plan on two
// backends (CPU float32 and float64) and on a decorating backend that sees every operation;
// a telemetry kind nobody subscribed to computes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "core/telemetry.hpp"
#include "reference/cpu_backend.hpp"
#include "reference/engine.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

namespace {

std::vector<int> tokens(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (7 + i * 13 + i * i) % 37;
  return t;
}

// Forwards every operation to the CPU backend and counts it by name.
template <typename S>
class CountingBackend final : public Backend<S> {
 public:
  explicit CountingBackend(std::map<std::string, int>& calls) : calls_(calls) {}
  std::string name() const override { return "counting"; }
  void embed(S* x, const S* t, const int* tok, int T, int C) override {
    ++calls_["embed"], cpu_.embed(x, t, tok, T, C);
  }
  void rmsnorm(S* o, const S* x, const S* w, int T, int C, double eps) override {
    ++calls_["rmsnorm"], cpu_.rmsnorm(o, x, w, T, C, eps);
  }
  void linear(S* o, const S* x, const S* w, int T, int K, int N) override {
    ++calls_["linear"], cpu_.linear(o, x, w, T, K, N);
  }
  void rope(S* x, const int* p, int T, int h, int D, double th, RopePairing r) override {
    ++calls_["rope"], cpu_.rope(x, p, T, h, D, th, r);
  }
  void attention(const AttentionArgs<S>& a) override {
    ++calls_["attention"], cpu_.attention(a);
    if (a.probs) ++calls_["attention_probs"];
  }
  void swiglu(S* g, const S* u, long n) override { ++calls_["swiglu"], cpu_.swiglu(g, u, n); }
  void add(S* x, const S* y, long n) override { ++calls_["add"], cpu_.add(x, y, n); }
  void row_cosines(double* o, const S* a, const S* b, int T, int C) override {
    ++calls_["row_cosines"], cpu_.row_cosines(o, a, b, T, C);
  }

 private:
  CpuBackend<S> cpu_;
  std::map<std::string, int>& calls_;
};

double max_rel(const std::vector<float>& a, const std::vector<double>& b) {
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i])) << i;
    scale = std::max(scale, std::abs(b[i]));
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  return diff / scale;
}

}  // namespace

TEST(Backend, Float32AndFloat64CpuBackendsAgreeOnEveryPlan) {
  const ModelConfig c = tiny_config();
  for (const auto& spec : all_plan_specs()) {
    const KvPlan plan = KvPlan::parse(spec, c.num_hidden_layers);
    const auto w64 = init_random<double>(c, plan, 11);
    const auto w32 = convert_weights<float>(w64);
    Engine<double> e64(w64);
    Engine<float> e32(w32);
    EXPECT_EQ(e64.backend().name(), "cpu-f64");
    EXPECT_EQ(e32.backend().name(), "cpu-f32");
    const auto toks = tokens(12);
    EXPECT_LT(max_rel(e32.prefill(toks, true), e64.prefill(toks, true)), 1e-4) << spec;
    EXPECT_LT(max_rel(e32.decode(5), e64.decode(5)), 1e-4) << spec;
  }
}

TEST(Backend, TheEngineComputesOnlyThroughItsBackend) {
  const ModelConfig c = tiny_config();
  for (const std::string spec : {"standard", "cla:2", "lckv:2", "0s_0_2s_2_4_4s"}) {
    const auto w = init_random<double>(c, KvPlan::parse(spec, 6), 3);
    std::map<std::string, int> calls;
    Engine<double> plain(w);
    Engine<double> counted(std::make_shared<const ModelWeights<double>>(w), {},
                           std::make_unique<CountingBackend<double>>(calls));
    const auto toks = tokens(10);
    // Bit-identical: the counting backend forwards to the same CPU operations.
    EXPECT_EQ(plain.prefill(toks, true), counted.prefill(toks, true)) << spec;
    EXPECT_EQ(plain.decode(3), counted.decode(3)) << spec;
    for (const char* op : {"embed", "rmsnorm", "linear", "rope", "attention", "swiglu", "add"}) {
      EXPECT_GT(calls[op], 0) << spec << " " << op;
    }
    EXPECT_EQ(calls["attention_probs"], 0) << spec;  // nobody asked for them
    EXPECT_EQ(calls["row_cosines"], 0) << spec;
  }
}

TEST(Telemetry, UnsubscribedKindsCostNothing) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("cla:2", 6), 5);
  Engine<double> e(w);
  RecordingObserver rec;
  e.add_observer(&rec);  // the cheap default kinds only
  e.prefill(tokens(9));
  e.decode(4);
  EXPECT_EQ(e.backend().counters().attention_probs, 0);
  EXPECT_EQ(e.backend().counters().cosine_rows, 0);
  EXPECT_TRUE(rec.attention.empty());
  EXPECT_TRUE(rec.importance.empty());
  EXPECT_EQ(rec.summaries.size(), 2u);

  // Subscribing to attention and importance computes them, and changes no logit.
  Engine<double> watched(w);
  RecordingObserver all;
  watched.subscribe(&all, kAllEvents);
  Engine<double> quiet(w);
  EXPECT_EQ(quiet.prefill(tokens(9), true), watched.prefill(tokens(9), true));
  EXPECT_EQ(quiet.decode(4), watched.decode(4));
  EXPECT_GT(watched.backend().counters().attention_probs, 0);
  EXPECT_EQ(watched.backend().counters().cosine_rows, 9 * 6);  // every prompt row, every layer
  ASSERT_EQ(all.attention.size(), 12u);                        // 6 layers, 2 steps
  ASSERT_EQ(all.importance.size(), 1u);
  EXPECT_EQ(all.importance[0].cos_sim.size(), 6u);
  const AttentionEvent& a = all.attention.back();  // layer 5, the decode step, reads bank 4
  EXPECT_EQ(a.layer, 5);
  EXPECT_EQ(a.bank, 4);
  EXPECT_EQ(a.rows, 1);
  EXPECT_EQ(a.cells, 10);
  for (int h = 0; h < a.heads; ++h) {
    double sum = 0;
    for (int j = 0; j < a.cells; ++j) sum += a.probs[static_cast<long>(h) * a.cells + j];
    EXPECT_NEAR(sum, 1.0, 1e-6) << h;
  }
  // Unsubscribed: nothing more arrives.
  watched.unsubscribe(&all);
  const auto before = all.attention.size();
  watched.decode(6);
  EXPECT_EQ(all.attention.size(), before);
}

// EventKind::tensors (kvlab dump): not part of kAllEvents, computed only while subscribed, and
// consistent with itself: probs = softmax(scores) row by row, -inf scores where probs are 0.
TEST(Telemetry, TensorKindOnlyWhileSubscribed) {
  struct Tensors : Observer {
    std::map<std::string, TensorEvent> seen;
    void on_tensor(const TensorEvent& e) override { seen[e.name] = e; }
  };
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("lckv:2", 6), 5);
  EngineOptions o;
  o.schedule.mode = PrefillMode::fixed;
  o.schedule.passes = 2;
  Engine<double> quiet(w, o), all(w, o), tapped(w, o);
  Tensors none, rec;
  all.subscribe(&none, kAllEvents);
  tapped.subscribe(&rec, mask(EventKind::tensors));
  const auto logits = quiet.prefill(tokens(9), true);
  EXPECT_EQ(all.prefill(tokens(9), true), logits);
  EXPECT_EQ(tapped.prefill(tokens(9), true), logits);  // watching changes nothing
  EXPECT_EQ(quiet.decode(4), tapped.decode(4));
  EXPECT_TRUE(none.seen.empty());
  ASSERT_FALSE(rec.seen.empty());
  for (const std::string name : {"prefill.pass2.layer1.attn", "decode1.layer1.attn"}) {
    const TensorEvent& s = rec.seen.at(name + ".scores");
    const TensorEvent& p = rec.seen.at(name + ".probs");
    ASSERT_EQ(s.shape, p.shape) << name;
    const long rows = s.shape[0] * s.shape[1], N = s.shape[2];
    for (long r = 0; r < rows; ++r) {
      double mx = -INFINITY, z = 0;
      for (long j = 0; j < N; ++j) mx = std::max(mx, s.values[r * N + j]);
      for (long j = 0; j < N; ++j)
        z += std::isinf(s.values[r * N + j]) ? 0 : std::exp(s.values[r * N + j] - mx);
      for (long j = 0; j < N; ++j) {
        const double sv = s.values[r * N + j], pv = p.values[r * N + j];
        if (std::isinf(sv)) {
          EXPECT_EQ(pv, 0) << name << " " << r << " " << j;
        } else {
          EXPECT_NEAR(pv, std::exp(sv - mx) / z, 1e-12) << name << " " << r << " " << j;
        }
      }
    }
  }
  // LCKV's first token attends to nothing in an upward reader: scores all -inf, output 0.
  const TensorEvent& s = rec.seen.at("prefill.pass1.layer1.attn.scores");
  for (long j = 0; j < s.shape[2]; ++j) EXPECT_TRUE(std::isinf(s.values[j]));
  const TensorEvent& out = rec.seen.at("prefill.pass1.layer1.attn.out");
  for (long i = 0; i < c.num_attention_heads * c.head_dim; ++i) EXPECT_EQ(out.values[i], 0);
  tapped.unsubscribe(&rec);
  const auto count = rec.seen.size();
  rec.seen.clear();
  tapped.decode(6);
  EXPECT_TRUE(rec.seen.empty()) << count;
}
