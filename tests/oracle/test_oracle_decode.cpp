// Decode against the independent PyTorch oracle (tests/oracle/torch_reference.py --decode-from):
// the reference engine (ref::Engine<double>, linked directly) prefills P tokens of a random
// checkpoint, then decodes the rest one token at a time under a plan, a sequence policy and a
// budget (techniques.md §2, §3, §5) or SqueezeAttention budgets (§6); the oracle does the same
// from the spec. Every logit row (the prompt's, then one per decode step) must agree to 1e-10
// relative error (max |diff| / max |value|), the cells each evicting bank's KV heads hold at the
// end must be the same positions, and Squeeze's clusters and budgets must be the spec's. All cases
// of a test go to one oracle process (torch is imported once). Never skips: a missing python or
// torch is a failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/formats/npy.hpp"
#include "reference/checkpoint.hpp"
#include "reference/engine.hpp"
#include "reference/weights.hpp"

namespace fs = std::filesystem;
using kvlab::KvPlan;
using kvlab::ModelConfig;
namespace ref = kvlab::ref;

namespace {

constexpr double kTolerance = 1e-10;  // float64
constexpr int kPrompt = 16;           // P: prefilled; the rest are decode steps
const std::vector<int> kTokens = {256, 72, 101, 108, 108, 111, 44, 32,  119, 111, 114, 108,
                                  100, 33, 10,  7,   299, 0,   3,  150, 42,  77,  201, 5};

struct Shape {
  std::string name;
  int layers, hidden, heads, kv_heads, ffn, window;
  bool tied;
};

const Shape kGqa{"gqa", 4, 64, 4, 2, 96, 4096, false};
const Shape kMha{"mha", 3, 48, 3, 3, 80, 4096, true};
const Shape kMqa{"mqa", 4, 64, 8, 1, 72, 4096, false};
const Shape kSliding{"sliding", 4, 64, 4, 2, 96, 5, false};
const Shape kDeep{"deep", 6, 48, 4, 2, 64, 4096, false};

struct Case {
  std::string name;
  Shape shape;
  std::string plan;             // a generator or a text form
  std::string policy = "full";  // ref::PolicySpec::parse
  std::string budget;           // tokens or a share ("62.5%"); empty: none
  bool cache_positions = false;
  ref::PrefillMode mode = ref::PrefillMode::automatic;
  int passes = 9;
  double f0 = 0, f3 = 0;  // SqueezeAttention when f0 > 0
  bool force_nodiag = false;

  Case(std::string n, Shape s, std::string p, std::string pol = "full", std::string b = "")
      : name(std::move(n)),
        shape(std::move(s)),
        plan(std::move(p)),
        policy(std::move(pol)),
        budget(std::move(b)) {}
  Case& cache() {
    cache_positions = true;
    return *this;
  }
  Case& prefill(ref::PrefillMode m, int n) {
    mode = m;
    passes = n;
    return *this;
  }
  Case& nodiag() {
    force_nodiag = true;
    return *this;
  }
  Case& squeeze(double uniform, double reduced) {
    f0 = uniform;
    f3 = reduced;
    return *this;
  }
};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string oracle_mode(ref::PrefillMode m) {
  switch (m) {
    case ref::PrefillMode::automatic:
      return "auto";
    case ref::PrefillMode::fixed:
      return "iterative";
    case ref::PrefillMode::token_by_token:
      return "token-by-token";
    case ref::PrefillMode::converge:
      break;
  }
  ADD_FAILURE() << "the oracle has no converge mode";
  return "auto";
}

fs::path work_dir() {
  const fs::path d =
      fs::temp_directory_path() / ("kvlab_oracle_decode_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

ModelConfig config_of(const Shape& s) {
  ModelConfig c;
  c.hidden_size = s.hidden;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.intermediate_size = s.ffn;
  c.vocab_size = 300;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = s.tied;
  c.sliding_window = s.window;
  return c;
}

// What kvlab computed for one case.
struct KvlabRun {
  std::string error;  // non-empty: kvlab threw
  // KV layer of each evicting bank -> the positions each KV head holds at the end.
  std::map<int, std::vector<std::vector<int>>> held;
  ref::SqueezeResult squeeze;
};

// Writes the checkpoint (float32, read back as double by both sides), runs kvlab into
// dir/kvlab.npy and returns the oracle's command line for the same run.
std::vector<std::string> prepare(const Case& c, const fs::path& dir, KvlabRun& run) {
  const ModelConfig cfg = config_of(c.shape);
  const KvPlan plan = KvPlan::parse(c.plan, cfg.num_hidden_layers);
  ref::save_checkpoint(dir.string(), ref::init_random<float>(cfg, plan, 11));
  const auto weights = ref::load_checkpoint<double>(dir.string());

  ref::EngineOptions o;
  o.policy = ref::PolicySpec::parse(c.policy);
  if (c.cache_positions) o.policy.positions = ref::PositionMode::cache;
  if (!c.budget.empty()) o.budget = ref::BudgetSpec::parse(c.budget);
  o.force_nodiag = c.force_nodiag;
  o.schedule.mode = c.mode;
  o.schedule.passes = c.passes;
  if (c.f0 > 0) {
    o.squeeze.enabled = true;
    o.squeeze.f0 = c.f0;
    o.squeeze.f3 = c.f3;
  }
  const long V = cfg.vocab_size;
  std::vector<double> logits;
  try {
    ref::Engine<double> engine(weights, o);
    const std::vector<int> prompt(kTokens.begin(), kTokens.begin() + kPrompt);
    logits = engine.prefill(prompt, /*all_logits=*/true);
    for (std::size_t i = kPrompt; i < kTokens.size(); ++i) {
      const std::vector<double> row = engine.decode(kTokens[i]);
      logits.insert(logits.end(), row.begin(), row.end());
    }
    for (int b = 0; b < engine.kv().num_banks(); ++b) {
      const ref::BankMeta& bank = engine.kv().bank(b);
      if (!bank.evicts()) continue;
      for (int g = 0; g < engine.kv().kv_heads(); ++g) {
        run.held[bank.kv_layer].push_back(engine.kv().positions(b, g));
      }
    }
    run.squeeze = engine.squeeze();
  } catch (const kvlab::Error& e) {
    run.error = e.what();
  }
  if (run.error.empty()) {
    kvlab::write_npy((dir / "kvlab.npy").string(), logits,
                     {static_cast<int64_t>(kTokens.size()), V});
  }

  std::string tokens;
  for (int t : kTokens) tokens += (tokens.empty() ? "" : ",") + std::to_string(t);
  std::vector<std::string> args = {"--model",       dir.string(),
                                   "--tokens",      tokens,
                                   "--precision",   "f64",
                                   "--out",         (dir / "torch.npy").string(),
                                   "--decode-from", std::to_string(kPrompt),
                                   "--policy",      c.policy,
                                   "--mode",        oracle_mode(c.mode),
                                   "--passes",      std::to_string(c.passes),
                                   "--info",        (dir / "torch_info.json").string()};
  if (!c.budget.empty()) args.insert(args.end(), {"--budget", c.budget});
  if (c.cache_positions) args.insert(args.end(), {"--positions", "cache"});
  if (c.force_nodiag) args.push_back("--force-nodiag");
  if (c.f0 > 0) args.insert(args.end(), {"--squeeze", fmt(c.f0) + "," + fmt(c.f3)});
  return args;
}

// max |a - b| over rows [first, last) / max |b| over all rows.
double rel_error(const std::vector<double>& a, const std::vector<double>& b, long V, long first,
                 long last, double scale) {
  double diff = 0;
  for (long i = first * V; i < last * V; ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
  return diff / scale;
}

// Compares one case; returns a line for the summary table.
std::string compare(const Case& c, const fs::path& dir, const KvlabRun& run) {
  SCOPED_TRACE("case " + c.name);
  if (!run.error.empty()) {
    ADD_FAILURE() << "kvlab failed: " << run.error;
    return c.name + ": kvlab failed";
  }
  if (!fs::exists(dir / "torch.npy")) {
    ADD_FAILURE() << "the oracle wrote no logits (see its messages above)";
    return c.name + ": oracle failed";
  }
  const kvlab::NpyArray mine = kvlab::read_npy((dir / "kvlab.npy").string());
  const kvlab::NpyArray theirs = kvlab::read_npy((dir / "torch.npy").string());
  EXPECT_EQ(mine.shape, theirs.shape);
  if (mine.shape != theirs.shape) return c.name + ": shapes differ";
  const long T = mine.shape[0], V = mine.shape[1];
  double scale = 0;
  for (std::size_t i = 0; i < theirs.values.size(); ++i) {
    EXPECT_TRUE(std::isfinite(mine.values[i])) << "kvlab produced a non-finite value at " << i;
    scale = std::max(scale, std::abs(theirs.values[i]));
  }
  const double prefill = rel_error(mine.values, theirs.values, V, 0, kPrompt, scale);
  const double decode = rel_error(mine.values, theirs.values, V, kPrompt, T, scale);
  EXPECT_LT(prefill, kTolerance) << "prompt rows";
  for (long t = kPrompt; t < T; ++t) {
    const double e = rel_error(mine.values, theirs.values, V, t, t + 1, scale);
    EXPECT_LT(e, kTolerance) << "decode step " << t - kPrompt + 1 << " (position " << t << ")";
    if (e >= kTolerance) break;  // later steps inherit the first disagreement
  }

  const auto info = nlohmann::json::parse(std::ifstream(dir / "torch_info.json"));
  for (const auto& [layer, heads] : run.held) {
    EXPECT_EQ(heads, info["held"][std::to_string(layer)].get<std::vector<std::vector<int>>>())
        << "positions held by the KV heads of bank " << layer << " at the end";
  }
  if (c.f0 > 0) {
    const auto importance = info["bank_importance"].get<std::vector<double>>();
    EXPECT_EQ(run.squeeze.bank_importance.size(), importance.size());
    for (std::size_t b = 0; b < std::min(importance.size(), run.squeeze.bank_importance.size());
         ++b) {
      EXPECT_NEAR(run.squeeze.bank_importance[b], importance[b], 1e-12) << "bank " << b;
    }
    EXPECT_EQ(run.squeeze.cluster, info["clusters"].get<std::vector<int>>());
    EXPECT_EQ(run.squeeze.budget, info["budgets"].get<std::vector<int>>())
        << "SqueezeAttention budgets (spec §6 step 3: largest remainders)";
  }
  char line[160];
  std::snprintf(line, sizeof line, "%-28s prefill %.2e  decode %.2e", c.name.c_str(), prefill,
                decode);
  return line;
}

// kvlab for every case, then one oracle process for all of them, then the comparisons.
void run_cases(const std::string& suite, const std::vector<Case>& cases) {
  const auto start = std::chrono::steady_clock::now();
  const std::string py = KVLAB_PYTHON;
  ASSERT_FALSE(py.empty()) << "no python3 was found at configure time";
  const fs::path base = work_dir() / suite;
  fs::remove_all(base);
  std::vector<KvlabRun> runs(cases.size());
  nlohmann::json batch = nlohmann::json::array();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    batch.push_back(prepare(cases[i], base / cases[i].name, runs[i]));
  }
  const fs::path batch_file = base / "batch.json";
  std::ofstream(batch_file) << batch.dump(1);
  const std::string cmd = py + " " KVLAB_SOURCE_DIR "/tests/oracle/torch_reference.py --batch " +
                          batch_file.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "the PyTorch oracle failed (needs python3-torch: scripts/setup.sh): " << cmd;
  std::string table;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    table += compare(cases[i], base / cases[i].name, runs[i]) + "\n";
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("max relative error per case (float64):\n%s%zu cases in %.1f s\n", table.c_str(),
              cases.size(), seconds);
  if (!::testing::Test::HasFailure()) fs::remove_all(base);
}

}  // namespace

// Every plan family, full policy: decoding continues the prompt exactly (§2), after a one-pass,
// sliding-window, iterative (LCKV, §3) or token-by-token prefill.
TEST(OracleDecode, PlanFamiliesFloat64) {
  using M = ref::PrefillMode;
  run_cases("plans", {
                         Case("standard_gqa", kGqa, "standard"),
                         Case("mha_tied", kMha, "standard"),
                         Case("mqa_cla2", kMqa, "cla:2"),
                         Case("downward_0_0_0_3", kGqa, "0_0_0_3"),
                         Case("pizza_bottom2", kGqa, "pizza-bottom:2"),
                         Case("sliding_0s_1s_1s_3", kSliding, "0s_1s_1s_3"),
                         Case("yoco", kSliding, "yoco"),
                         Case("lckv1_iterative4", kGqa, "lckv:1").prefill(M::fixed, 4),
                         Case("two_blocks_1_1_3_3", kMqa, "1_1_3_3").prefill(M::fixed, 6),
                         Case("lckv1_token_by_token", kGqa, "lckv:1").prefill(M::token_by_token, 9),
                         Case("sandwich_middle3_default", kMqa, "sandwich-middle:3"),
                         Case("nodiag_0_3_3_3", kGqa, "0_3_3_3").prefill(M::fixed, 5).nodiag(),
                     });
}

// Sequence policies with a budget of 10 after a 16-token prompt: the prompt is evicted down to the
// budget, then every decode step evicts back to it (§5).
TEST(OracleDecode, PoliciesFloat64) {
  using M = ref::PrefillMode;
  run_cases("policies",
            {
                Case("window", kGqa, "standard", "window", "10"),
                Case("window_fraction", kGqa, "standard", "window", "62.5%"),
                Case("streaming2", kGqa, "standard", "streaming:2", "10"),
                Case("h2o", kGqa, "standard", "h2o", "10"),
                Case("h2o3_shared_cla2", kGqa, "cla:2", "h2o:3", "10"),
                Case("h2o_sliding_banks", kSliding, "0s_1s_1s_3", "h2o", "10"),
                Case("streaming2_cache", kGqa, "standard", "streaming:2", "10").cache(),
                Case("streaming2_cache_downward", kGqa, "0_0_0_3", "streaming:2", "10").cache(),
                Case("window6_lckv1", kGqa, "lckv:1", "window:6").prefill(M::fixed, 4),
                Case("streaming2_cache_lckv1", kGqa, "lckv:1", "streaming:2", "10")
                    .cache()
                    .prefill(M::fixed, 4),
                Case("h2o_lckv1", kGqa, "lckv:1", "h2o", "10").prefill(M::fixed, 4),
                Case("h2o_lckv1_token_by_token", kGqa, "lckv:1", "h2o", "10")
                    .prefill(M::token_by_token, 9),
                Case("h2o2_mha_fraction", kMha, "standard", "h2o:2", "50%"),
                Case("h2o_cache", kGqa, "standard", "h2o", "10").cache(),
                Case("h2o_nodiag", kGqa, "standard", "h2o", "10").nodiag(),
                Case("streaming_default_fraction", kGqa, "standard", "streaming", "50%"),
                // bank 0 is read by a full and a sliding layer: it takes the policy; bank 3 not
                Case("window_mixed_sliding_readers", kSliding, "0_0s_2_3s", "window", "10"),
            });
}

// SqueezeAttention (§6): importances from the prompt, 3 clusters, budgets per bank that sum to
// n · floor(f0 · N), then streaming with 2 sinks; a shared bank takes its readers' minimum. Here
// every real share f · N is an integer, so any rounding rule gives the same budgets.
TEST(OracleDecode, SqueezeFloat64) {
  run_cases(
      "squeeze",
      {
          // clusters 1 3 2 3: a = 0.75, budgets 12 4 12 4
          Case("squeeze_streaming2", kGqa, "standard", "streaming:2").squeeze(0.5, 0.25),
          // banks 0 2 3 5, clusters 1 2 1 3: a = 0.75, budgets 12 12 12 4
          Case("squeeze_shared_banks", kDeep, "0_0_2_3_3_5", "streaming:2").squeeze(0.625, 0.25),
          // an LCKV block [2, 4]: importances from the last of 4 passes, or token by token;
          // banks 0 1 4 5, clusters 3 3 1 2: a = 0.75, budgets 4 4 12 12
          Case("squeeze_lckv_iterative", kDeep, "0_1_4_4_4_5", "window")
              .squeeze(0.5, 0.25)
              .prefill(ref::PrefillMode::fixed, 4),
          Case("squeeze_lckv_token_by_token", kDeep, "0_1_4_4_4_5", "h2o")
              .squeeze(0.5, 0.25)
              .prefill(ref::PrefillMode::token_by_token, 9),
      });
}

// The integer budgets of §6 step 3: the shares scaled to sum to U = n · floor(f0 · N), floored,
// the tokens left to the largest remainders. Flooring each share alone gives other budgets here.
TEST(OracleDecode, SqueezeLargestRemainderFloat64) {
  run_cases(
      "squeeze_remainders",
      {
          // shares 11.2 4.8 11.2 4.8 -> 11 5 11 5 (flooring: 11 4 11 4, 2 tokens short)
          Case("remainders_streaming2", kGqa, "standard", "streaming:2").squeeze(0.5, 0.3),
          // shares 9.21 x 3, 4.36 -> 9 9 9 5 (flooring: 10 10 10 4, 2 tokens over)
          Case("remainders_shared_banks", kDeep, "0_0_2_3_3_5", "streaming:2").squeeze(0.55, 0.3),
          // exact ties: clusters 1 3 2 3, shares 13.5 4.5 13.5 4.5 in exact arithmetic (computed
          // in floats they differ in the 15th digit) -> the lower banks first: 14 5 13 4
          Case("remainders_exact_ties", kGqa, "standard", "streaming:2").squeeze(0.6, 0.3),
      });
}
