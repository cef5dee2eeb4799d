// The engine over backend memory (issue 16): run on GuardedBackend, whose memory faults when the
// host touches it outside a backend operation, every plan family, policy, position mode, LCKV
// schedule, SqueezeAttention, K/V dtype, taps and telemetry, prefill and decode, float32 and
// float64, give CpuBackend's results bit for bit. This is what tells a device backend that the
// engine asks nothing of memory but the Backend interface.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/telemetry.hpp"
#include "reference/cpu_backend.hpp"
#include "reference/engine.hpp"
#include "tests/reference/guarded_backend.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;
using kvlab::test::GuardedBackend;

namespace {

std::vector<int> tokens(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (5 + i * 11 + i * i) % 37;
  return t;
}

// Every event, each number exact (hexadecimal floating point): two runs agree when their
// transcripts are equal.
class Transcript final : public Observer {
 public:
  std::ostringstream out;

  void on_kv_step(const KvStepEvent& e) override {
    out << "kv_step " << e.step << e.phase << " " << e.layer << " " << e.tokens_held << " "
        << e.bytes_held << " " << e.budget << " " << e.evicted << "\n";
  }
  void on_step_summary(const StepSummaryEvent& e) override {
    out << "summary " << e.step << " " << e.kv_bytes_held << " " << e.kv_bytes_allocated << " "
        << e.h2o_score_bytes << "\n";
  }
  void on_prefill_pass(const PrefillPassEvent& e) override {
    out << "pass " << e.block << " " << e.pass << " " << e.target_layer << " " << e.converged;
    for (double x : {e.max_abs_dk, e.mean_abs_dk, e.max_abs_dv, e.mean_abs_dv, e.rel_dk, e.rel_dv,
                     e.rel_mean_dk, e.rel_mean_dv, e.err_k, e.err_v}) {
      num(x);
    }
    out << "\n";
  }
  void on_squeeze(const SqueezeEvent& e) override {
    out << "squeeze";
    for (double x : e.layer_importance) num(x);
    for (int b : e.budget) out << " " << b;
    out << "\n";
  }
  void on_h2o_scores(const H2oScoresEvent& e) override {
    out << "h2o " << e.step << " " << e.bank << " " << e.kv_head;
    for (std::size_t i = 0; i < e.positions.size(); ++i) {
      out << " " << e.positions[i];
      num(e.scores[i]);
      num(e.counts[i]);
    }
    out << "\n";
  }
  void on_layer_importance(const LayerImportanceEvent& e) override {
    out << "importance";
    for (double x : e.cos_sim) num(x);
    out << "\n";
  }
  void on_attention(const AttentionEvent& e) override {
    out << "attention " << e.step << " " << e.layer << " " << e.pass << " " << e.cells;
    for (int p : e.key_pos) out << " " << p;
    for (double x : e.probs) num(x);
    out << "\n";
  }
  void on_tensor(const TensorEvent& e) override {
    out << "tensor " << e.name;
    for (auto d : e.shape) out << " " << d;
    for (auto i : e.ints) out << " " << i;
    for (double x : e.values) num(x);
    out << "\n";
  }
  void on_kept(const KeptEvent& e) override {
    out << "kept " << e.step << " " << e.bank << " " << e.kv_head;
    for (int p : e.positions) out << " " << p;
    out << "\n";
  }

 private:
  void num(double x) {
    char buf[40];
    std::snprintf(buf, sizeof buf, " %a", x);
    out << buf;
  }
};

// One configuration: the plan and the engine options.
struct Case {
  std::string plan;
  EngineOptions opt;
  std::string what;
};

// What a run leaves: logits, held K/V, the transcript of every event.
template <typename S>
struct Run {
  std::vector<std::vector<S>> logits;
  std::vector<std::vector<S>> held;
  std::string events;
  std::vector<int> passes;
};

template <typename S>
Run<S> run(const std::shared_ptr<const ModelWeights<S>>& w, const Case& c, bool guarded,
           bool exact_from_token_by_token) {
  std::unique_ptr<Backend<S>> be;
  if (guarded) be = std::make_unique<GuardedBackend<S>>(c.opt.threads);
  Engine<S> e(w, c.opt, std::move(be));
  const std::vector<int> prompt = tokens(11);
  if (exact_from_token_by_token) {
    // LCKV passes report their error against the exact K/V (uploaded by set_exact_kv).
    EngineOptions exact_opt = c.opt;
    exact_opt.schedule.mode = PrefillMode::token_by_token;
    exact_opt.policy = {};
    exact_opt.budget = {};
    exact_opt.squeeze = {};
    std::unique_ptr<Backend<S>> be2;
    if (guarded) be2 = std::make_unique<GuardedBackend<S>>(c.opt.threads);
    Engine<S> exact(w, exact_opt, std::move(be2));
    exact.prefill(prompt);
    for (int b = 0; b < exact.num_banks(); ++b) {
      auto held = exact.held_kv(b);
      e.set_exact_kv(b, held.k, held.v);
    }
  }
  Transcript t;
  e.subscribe(&t, kAllEvents);
  Run<S> r;
  r.logits.push_back(e.prefill(prompt, /*all_logits=*/true));
  for (int step = 0; step < 4; ++step) {
    const std::vector<S>& last = r.logits.back();
    int next = 0;
    for (int v = 1; v < w->config.vocab_size; ++v) {
      if (last[last.size() - w->config.vocab_size + v] >
          last[last.size() - w->config.vocab_size + next]) {
        next = v;
      }
    }
    r.logits.push_back(e.decode(next));
  }
  for (int b = 0; b < e.num_banks(); ++b) {
    auto held = e.held_kv(b);
    r.held.push_back(held.k);
    r.held.push_back(held.v);
  }
  r.events = t.out.str();
  r.passes = e.passes_run();
  return r;
}

// The first line where two transcripts differ (a readable failure instead of megabytes).
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ea = !std::getline(x, la), eb = !std::getline(y, lb);
    if (ea && eb) return "";
    if (ea != eb || la != lb) {
      return "line " + std::to_string(line) + ":\n cpu:     " + la.substr(0, 200) +
             "\n guarded: " + lb.substr(0, 200);
    }
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  auto add = [&](const std::string& plan, const std::string& what, auto set) {
    Case c;
    c.plan = plan;
    c.what = what;
    set(c.opt);
    out.push_back(c);
  };
  auto none = [](EngineOptions&) {};
  // Every plan family with the full cache (LCKV plans: the default schedule).
  for (const auto& spec : all_plan_specs()) add(spec, "full", none);
  // Policies and position modes over a shared-bank plan (CLA) and the standard one.
  for (const std::string plan : {"standard", "cla:2", "0s_0_2s_2_4_4s"}) {
    add(plan, "h2o 6", [](EngineOptions& o) {
      o.policy = PolicySpec::parse("h2o");
      o.budget = BudgetSpec::parse("6");
    });
    add(plan, "h2o:2,norm=count 5 cache", [](EngineOptions& o) {
      o.policy = PolicySpec::parse("h2o:2,norm=count");
      o.policy.positions = PositionMode::cache;
      o.budget = BudgetSpec::parse("5");
    });
    add(plan, "streaming:2 6 cache", [](EngineOptions& o) {
      o.policy = PolicySpec::parse("streaming:2");
      o.policy.positions = PositionMode::cache;
      o.budget = BudgetSpec::parse("6");
    });
    add(plan, "window:4", [](EngineOptions& o) { o.policy = PolicySpec::parse("window:4"); });
    add(plan, "squeeze h2o", [](EngineOptions& o) {
      o.policy = PolicySpec::parse("h2o");
      o.squeeze.enabled = true;
      o.squeeze.f0 = 0.5;
      o.squeeze.f3 = 0.3;
    });
  }
  // LCKV schedules, with H2O and a narrower K/V dtype on top.
  for (const std::string plan : {"lckv:2", "sandwich-middle:4"}) {
    add(plan, "passes 3", [](EngineOptions& o) {
      o.schedule.mode = PrefillMode::fixed;
      o.schedule.passes = 3;
    });
    add(plan, "converge", [](EngineOptions& o) {
      o.schedule.mode = PrefillMode::converge;
      o.schedule.eps = 1e-3;
    });
    add(plan, "token by token",
        [](EngineOptions& o) { o.schedule.mode = PrefillMode::token_by_token; });
    add(plan, "passes 4 h2o 7", [](EngineOptions& o) {
      o.schedule.mode = PrefillMode::fixed;
      o.schedule.passes = 4;
      o.policy = PolicySpec::parse("h2o");
      o.budget = BudgetSpec::parse("7");
    });
    add(plan, "squeeze streaming cache", [](EngineOptions& o) {
      o.policy = PolicySpec::parse("streaming:1");
      o.policy.positions = PositionMode::cache;
      o.squeeze.enabled = true;
      o.squeeze.f0 = 0.6;
      o.squeeze.f3 = 0.4;
    });
  }
  // Two threads, a forced masked diagonal.
  add("cla:2", "threads 2 h2o", [](EngineOptions& o) {
    o.threads = 2;
    o.policy = PolicySpec::parse("h2o");
    o.budget = BudgetSpec::parse("6");
  });
  add("lckv:2", "threads 2 passes 3 nodiag", [](EngineOptions& o) {
    o.threads = 2;
    o.force_nodiag = true;
    o.schedule.mode = PrefillMode::fixed;
    o.schedule.passes = 3;
  });
  return out;
}

template <typename S>
void check_all(const std::vector<Case>& all, std::optional<Dtype> kv_dtype) {
  const ModelConfig cfg = tiny_config();
  for (Case c : all) {
    c.opt.kv_dtype = kv_dtype;
    const KvPlan plan = KvPlan::parse(c.plan, cfg.num_hidden_layers);
    const auto w64 = init_random<double>(cfg, plan, 17);
    std::shared_ptr<const ModelWeights<S>> w;
    if constexpr (std::is_same_v<S, double>) {
      w = std::make_shared<const ModelWeights<S>>(w64);
    } else {
      w = std::make_shared<const ModelWeights<S>>(convert_weights<S>(w64));
    }
    const bool exact = plan.has_upward() && c.opt.schedule.mode != PrefillMode::token_by_token;
    const std::string what = c.plan + " " + c.what + " f" + std::to_string(8 * sizeof(S)) +
                             (kv_dtype ? std::string(" kv ") + dtype_name(*kv_dtype) : "");
    const Run<S> cpu = run<S>(w, c, false, exact);
    const Run<S> guarded = run<S>(w, c, true, exact);
    EXPECT_EQ(cpu.logits, guarded.logits) << what;
    EXPECT_EQ(cpu.held, guarded.held) << what;
    EXPECT_EQ(cpu.passes, guarded.passes) << what;
    EXPECT_GT(cpu.events.size(), 1000u) << what;  // the taps ran
    EXPECT_TRUE(cpu.events == guarded.events)
        << what << ": " << first_difference(cpu.events, guarded.events);
  }
}

}  // namespace

TEST(BackendMemory, TheGuardFaultsOnAHostRead) {
  GuardedBackend<float> be;
  BackendArray<float> a = be.alloc(8);
  std::vector<float> host = {1, 2, 3, 4, 5, 6, 7, 8}, back(8);
  be.upload(a.data(), host.data(), 8);
  be.download(back.data(), a.data(), 8);
  EXPECT_EQ(host, back);  // through the backend: fine
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        volatile float x = a.data()[3];  // the host reads backend memory: faults
        (void)x;
      },
      "the host touched backend memory");
}

TEST(BackendMemory, FreshArraysAreZero) {
  GuardedBackend<double> be;
  for (int round = 0; round < 2; ++round) {  // the second round reuses freed pages
    BackendArray<double> a = be.alloc(1000);
    std::vector<double> host(1000, 1.0);
    be.download(host.data(), a.data(), 1000);
    EXPECT_EQ(host, std::vector<double>(1000, 0.0));
    std::vector<double> ones(1000, 1.0);
    be.upload(a.data(), ones.data(), 1000);
  }
}

TEST(BackendMemory, EngineOverGuardedMemoryEqualsCpuFloat32) {
  const auto before = GuardedBackend<float>::arena().opens();
  check_all<float>(cases(), std::nullopt);
  EXPECT_GT(GuardedBackend<float>::arena().opens(), before);
}

TEST(BackendMemory, EngineOverGuardedMemoryEqualsCpuFloat64) {
  check_all<double>(cases(), std::nullopt);
}

TEST(BackendMemory, NarrowerKvDtypesOverGuardedMemoryEqualCpu) {
  // Where K/V are rounded: after RoPE (absolute), before it (cache), in LCKV's passes and the
  // token-by-token prefill.
  std::vector<Case> some;
  for (const Case& c : cases()) {
    const bool cla = c.plan == "cla:2", lckv = c.plan == "lckv:2";
    if ((cla && (c.what == "full" || c.what == "h2o:2,norm=count 5 cache" ||
                 c.what == "streaming:2 6 cache")) ||
        (lckv &&
         (c.what == "converge" || c.what == "token by token" || c.what == "passes 4 h2o 7"))) {
      some.push_back(c);
    }
  }
  ASSERT_EQ(some.size(), 6u);
  check_all<float>(some, Dtype::f16);
  check_all<double>(some, Dtype::f32);
  check_all<float>(some, Dtype::bf16);
}

TEST(BackendMemory, RandomCacheAndDecodeOverGuardedMemoryEqualCpu) {
  const ModelConfig cfg = tiny_config();
  for (const std::string spec : {"standard", "cla:2", "0s_0_2s_2_4_4s"}) {
    const KvPlan plan = KvPlan::parse(spec, cfg.num_hidden_layers);
    const auto w = std::make_shared<const ModelWeights<float>>(
        convert_weights<float>(init_random<double>(cfg, plan, 5)));
    EngineOptions o;
    o.policy = PolicySpec::parse("h2o");
    o.budget = BudgetSpec::parse("12");
    Engine<float> cpu(w, o);
    Engine<float> guarded(w, o, std::make_unique<GuardedBackend<float>>());
    cpu.fill_random_cache(20, 3);
    guarded.fill_random_cache(20, 3);
    for (int t : {4, 9, 30}) EXPECT_EQ(cpu.decode(t), guarded.decode(t)) << spec;
    for (int b = 0; b < cpu.num_banks(); ++b) {
      EXPECT_EQ(cpu.held_kv(b).k, guarded.held_kv(b).k) << spec;
      EXPECT_EQ(cpu.held_kv(b).v, guarded.held_kv(b).v) << spec;
    }
  }
}
