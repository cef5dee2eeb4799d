// `kvlab grad` (issue 12) against an independent float64 PyTorch autograd oracle
// (tests/oracle/torch_grad.py, written from techniques.md §1-§4). For each case `kvlab init`
// writes a tiny random checkpoint, `kvlab grad` and the oracle both write the gradient of the mean
// next-token loss (+ λ·KV loss) for every parameter, and they must agree:
//   per tensor   max|kvlab - oracle| / max(max|oracle|, 1e-300) < 1e-9
//   loss         |kvlab - oracle| / |oracle| < 1e-12 (and kv_loss likewise when λ > 0)
// Failures name the tensor, the worst element's index and both values. Every parameter of the
// checkpoint must have a gradient under its Hugging Face name. The oracle itself is checked too:
// its final-pass logits against `kvlab forward` (an inference prefill with the same number of
// passes), and torch.autograd.gradcheck (`--selfcheck`). The library the CLI calls
// (ref::train::GradModel) is also run directly on a batch of sequences, which the CLI does not
// take: the loss and gradients must be the mean of the oracle's per sequence. All cases of a test
// go to one oracle process (torch is imported once). Never skips: a missing python or torch is a
// failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats/npy.hpp"
#include "core/formats/safetensors.hpp"
#include "reference/checkpoint.hpp"
#include "reference/train/grad.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

namespace {

constexpr double kGradTolerance = 1e-9;   // per tensor, relative to the tensor's largest value
constexpr double kLossTolerance = 1e-12;  // relative
constexpr double kLogitTolerance = 1e-10;

// C = 48, H = 4 (D = 12), F = 64, V = 263 (the byte tokenizer needs at least 258).
struct Shape {
  std::string name;
  int layers, kv_heads, window;
  bool tied;
  bool interleaved;  // the checkpoint declares "rope_pairing": "interleaved" (llama2.c order)
};

struct Case {
  std::string name;
  Shape shape;
  std::string plan;          // given to `kvlab init --plan`
  int tokens;                // sequence length n (n - 1 predictions)
  std::string train_passes;  // "m,b" or "" (the defaults, 7,2)
  double kv_loss;
  bool force_nodiag;
  std::string run_plan;  // `--plan` of grad (a post-hoc plan), or ""

  Case(std::string n, Shape s, std::string p, int t, std::string passes, double kv = 0,
       bool nodiag = false, std::string post_hoc = "")
      : name(std::move(n)),
        shape(std::move(s)),
        plan(std::move(p)),
        tokens(t),
        train_passes(std::move(passes)),
        kv_loss(kv),
        force_nodiag(nodiag),
        run_plan(std::move(post_hoc)) {}
};

fs::path work_dir() {
  const fs::path d =
      fs::temp_directory_path() / ("kvlab_oracle_grad_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::string token_list(int n, int salt) {
  // Deterministic ids spread over [0, 263), BOS (256) first.
  std::string s = "256";
  for (int i = 1; i < n; ++i) s += "," + std::to_string((37 * i * i + 11 * i + 5 * salt) % 263);
  return s;
}

fs::path make_model(const Case& c) {
  const Shape& s = c.shape;
  const fs::path dir = work_dir() / c.name;
  fs::remove_all(dir);
  const fs::path cfg = work_dir() / (c.name + ".json");
  std::ofstream(cfg) << "{\"hidden_size\": 48, \"num_hidden_layers\": " << s.layers
                     << ", \"num_attention_heads\": 4, \"num_key_value_heads\": " << s.kv_heads
                     << ", \"intermediate_size\": 64, \"vocab_size\": 263, \"rope_theta\": 10000.0,"
                     << " \"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 160,"
                     << " \"sliding_window\": " << s.window
                     << ", \"tie_word_embeddings\": " << (s.tied ? "true" : "false") << "}";
  const RunResult r = run_kvlab("init --config " + cfg.string() + " --plan " + c.plan + " --seed " +
                                std::to_string(c.tokens) + " -o " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  if (s.interleaved) {
    // The same random rows read as llama2.c-paired W_Q, W_K: kvlab permutes them on load, and
    // its gradients must come back in the checkpoint's own row order.
    nlohmann::json j;
    std::ifstream(dir / "config.json") >> j;
    j["kvlab"]["rope_pairing"] = "interleaved";
    std::ofstream(dir / "config.json") << j.dump(2);
  }
  return dir;
}

std::string text_form(const std::string& plan, int layers) {
  const RunResult p = run_kvlab("plan " + plan + " --layers " + std::to_string(layers) + " --json");
  EXPECT_EQ(p.status, 0) << p.output;
  return nlohmann::json::parse(p.output)["map"].get<std::string>();
}

// Runs the oracle once over every argument list; false (with a failure) when it fails.
bool run_oracle(const std::vector<std::vector<std::string>>& runs, const std::string& tag) {
  const std::string py = KVLAB_PYTHON;
  EXPECT_FALSE(py.empty()) << "no python3 was found at configure time";
  const fs::path batch = work_dir() / (tag + "_runs.json");
  std::ofstream(batch) << nlohmann::json(runs).dump();
  const std::string cmd = py + " " KVLAB_SOURCE_DIR "/tests/oracle/torch_grad.py --batch " +
                          batch.string() + " > " + (work_dir() / (tag + ".log")).string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(work_dir() / (tag + ".log"));
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_EQ(rc, 0) << "the PyTorch gradient oracle failed: " << cmd << "\n" << text.str();
  return rc == 0;
}

double meta_double(const kvlab::SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata().find(key);
  EXPECT_NE(it, f.metadata().end()) << f.path() << " has no metadata " << key;
  return it == f.metadata().end() ? NAN : std::stod(it->second);
}

struct Worst {
  std::string tensor;
  double rel = 0;
};

// Compares kvlab's gradients with the oracle's; returns the worst tensor.
Worst compare_grads(const Case& c, const fs::path& dir, const fs::path& mine,
                    const fs::path& theirs) {
  Worst worst;
  const auto a = kvlab::open_safetensors(mine.string());
  const auto b = kvlab::open_safetensors(theirs.string());
  const auto ckpt = kvlab::open_safetensors((dir / "model.safetensors").string());
  // Every parameter of the checkpoint has a gradient, under its name, and nothing else.
  std::set<std::string> names_a, names_ckpt;
  for (const auto& n : a.names()) names_a.insert(n);
  for (const auto& n : ckpt.names()) names_ckpt.insert(n);
  if (c.run_plan.empty()) {
    EXPECT_EQ(names_a, names_ckpt)
        << c.name << ": kvlab grad's tensors differ from the checkpoint's";
  }
  for (const auto& n : b.names()) {
    if (!a.has(n)) {
      // Only a post-hoc plan may leave a checkpoint tensor out: one that plan does not use.
      EXPECT_FALSE(c.run_plan.empty()) << c.name << ": kvlab grad has no gradient for " << n;
      for (double v : b.read_f64(n)) EXPECT_EQ(v, 0.0) << c.name << ": " << n << " is used";
      continue;
    }
    EXPECT_EQ(a.dtype(n), kvlab::TensorDtype::F64) << c.name << ": " << n;
    EXPECT_EQ(a.shape(n), b.shape(n)) << c.name << ": " << n;
    const auto x = a.read_f64(n), y = b.read_f64(n);
    if (x.size() != y.size()) continue;
    double scale = 0, diff = 0;
    size_t at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_TRUE(std::isfinite(x[i])) << c.name << ": " << n << "[" << i << "] = " << x[i];
      scale = std::max(scale, std::abs(y[i]));
      const double d = std::abs(x[i] - y[i]);
      if (d > diff || std::isnan(d)) diff = d, at = i;
    }
    const double rel = diff / std::max(scale, 1e-300);
    EXPECT_LT(rel, kGradTolerance)
        << c.name << ": " << n << " worst element " << at << ": kvlab " << x[at] << ", torch "
        << y[at] << " (max |torch| " << scale << ")";
    if (!(rel <= worst.rel)) worst = {n, rel};
  }
  for (const auto& n : a.names()) {
    EXPECT_TRUE(b.has(n)) << c.name << ": kvlab grad writes " << n << ", no parameter";
  }
  for (const char* key : {"loss", "kv_loss", "plan", "passes"}) {
    EXPECT_EQ(a.metadata().count(key), 1u) << c.name << ": kvlab grad's metadata has no " << key;
  }
  const double la = meta_double(a, "loss"), lb = meta_double(b, "loss");
  EXPECT_LT(std::abs(la - lb) / std::abs(lb), kLossTolerance)
      << c.name << ": loss kvlab " << la << ", torch " << lb;
  if (c.kv_loss > 0) {
    const double ka = meta_double(a, "kv_loss"), kb = meta_double(b, "kv_loss");
    EXPECT_GT(kb, 0) << c.name << ": the case's KV loss is zero, so it checks nothing";
    EXPECT_LT(std::abs(ka - kb) / std::abs(kb), kLossTolerance)
        << c.name << ": kv_loss kvlab " << ka << ", torch " << kb;
  }
  return worst;
}

// Every case: init, kvlab grad, then one oracle process for all; compare.
void check_cases(const std::vector<Case>& cases, const std::string& tag) {
  std::vector<std::vector<std::string>> runs;
  std::vector<fs::path> dirs;
  bool kvlab_ok = true;
  for (const Case& c : cases) {
    const fs::path dir = make_model(c);
    dirs.push_back(dir);
    const std::string tokens = token_list(c.tokens, static_cast<int>(dirs.size()));
    std::string flags = " --tokens " + tokens;
    std::vector<std::string> oracle = {"--model", dir.string(), "--tokens", tokens};
    if (!c.train_passes.empty()) {
      flags += " --train-passes " + c.train_passes;
      oracle.insert(oracle.end(), {"--train-passes", c.train_passes});
    }
    if (c.kv_loss > 0) {
      std::ostringstream l;
      l.precision(17);
      l << c.kv_loss;
      flags += " --kv-loss " + l.str();
      oracle.insert(oracle.end(), {"--kv-loss", l.str()});
    }
    if (c.force_nodiag) {
      flags += " --force-nodiag";
      oracle.push_back("--force-nodiag");
    }
    if (!c.run_plan.empty()) {
      flags += " --plan " + c.run_plan;
      oracle.insert(oracle.end(), {"--plan", text_form(c.run_plan, c.shape.layers)});
    }
    const RunResult r = run_kvlab("grad --model " + dir.string() + flags + " --out " +
                                  (dir / "kvlab_grads.safetensors").string());
    EXPECT_EQ(r.status, 0) << c.name << ": kvlab grad" << flags << "\n" << r.output;
    kvlab_ok &= r.status == 0;
    if (c.shape.interleaved) {
      // kvlab computes in Hugging Face's half pairing and writes its gradients in that layout
      // (the layout of the same model converted to hf): the oracle computes in the file's pairing
      // and permutes its W_Q, W_K gradient rows the same way.
      oracle.insert(oracle.end(), {"--grad-rows", "half"});
    }
    oracle.insert(oracle.end(), {"--out", (dir / "torch_grads.safetensors").string()});
    runs.push_back(oracle);
  }
  if (!run_oracle(runs, tag) || !kvlab_ok) return;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Worst w = compare_grads(cases[i], dirs[i], dirs[i] / "kvlab_grads.safetensors",
                                  dirs[i] / "torch_grads.safetensors");
    std::printf("%-22s worst tensor %-44s rel %.3g\n", cases[i].name.c_str(), w.tensor.c_str(),
                w.rel);
  }
}

const Shape kMha{"mha", 4, 4, 4096, false, false};
const Shape kGqaTied{"gqa", 4, 2, 4096, true, false};
const Shape kMqa{"mqa", 5, 1, 4096, false, false};
const Shape kCla{"cla", 5, 2, 4096, false, false};
const Shape kSliding{"sliding", 5, 2, 4, false, false};
const Shape kDeep{"deep", 6, 2, 4096, false, false};
const Shape kDeepMqaWindow{"deep_mqa", 6, 1, 3, false, false};
const Shape kInterleaved{"interleaved", 5, 2, 4096, false, true};

}  // namespace

TEST(OracleGrad, DenseAndSharedPlans) {
  check_cases({{"standard", kMha, "standard", 13, ""},
               {"gqa_tied", kGqaTied, "standard", 17, ""},
               {"mqa", kMqa, "standard", 11, ""},
               {"cla2", kCla, "cla:2", 15, ""},
               // window 4 < 19 tokens: sliding banks, a shared sliding bank, a full one on top
               {"sliding", kSliding, "0s_1s_1s_3_3s", 19, ""},
               // 140 predictions: more than one of GradModel's 128-row tiles
               {"long_gqa", kGqaTied, "cla:2", 141, ""},
               // every first token attends to nothing
               {"standard_nodiag", kGqaTied, "standard", 12, "", 0, true}},
              "dense");
}

TEST(OracleGrad, LckvTrainingPasses) {
  check_cases({{"lckv2_0_1", kCla, "lckv:2", 13, "0,1"},
               {"lckv2_3_2", kCla, "lckv:2", 17, "3,2"},
               {"sandwich_3_2", kDeep, "sandwich-middle:3", 15, "3,2"},
               {"lckv_default", kMqa, "lckv:2", 19, ""},
               // the KV loss on few passes (it is still large there)
               {"kvloss_1_2", kDeep, "sandwich-top:3", 13, "1,2", 2.5},
               {"kvloss_0_1", kCla, "lckv:2", 11, "0,1", 0.75},
               // a block that grows ([1, 3] to [1, 5]): layer 4 reads target 3 inside the
               // block, this pass's K/V
               {"growing_block_2_2", kDeep, "0_3_5_3_3_5", 16, "2,2", 1.0},
               // two cyclic blocks, sliding readers, the diagonal masked everywhere
               {"two_blocks_nodiag", kDeepMqaWindow, "1s_1_3_3_5_5", 15, "2,2", 0.5, true}},
              "lckv");
}

TEST(OracleGrad, InterleavedRopeCheckpoint) {
  // The oracle rotates pairs (2i, 2i+1) of the file's rows directly; kvlab permutes W_Q, W_K on
  // load and its gradients come back in the Hugging Face (half) row order.
  check_cases({{"interleaved_cla2", kInterleaved, "cla:2", 15, ""},
               {"interleaved_lckv", kInterleaved, "lckv:2", 13, "3,2"}},
              "interleaved");
}

TEST(OracleGrad, PostHocPlanOnStandardCheckpoint) {
  // --plan cla:2 on a standard checkpoint: readers use their targets' W_K, W_V; the unused
  // W_K, W_V of the readers get no (or a zero) gradient.
  check_cases({{"posthoc_cla2", kMha, "standard", 13, "", 0, false, "cla:2"}}, "posthoc");
}

// The oracle's own forward (the final pass of its training schedule, m + b passes) equals
// kvlab's inference prefill with the same number of passes, and its loss is the NLL of those
// logits: the oracle computes the model kvlab runs, before any gradient is compared.
TEST(OracleGrad, OracleForwardEqualsKvlabForward) {
  const std::vector<std::pair<Case, int>> cases = {
      {{"fwd_gqa", kGqaTied, "standard", 13, "0,1"}, 1},
      {{"fwd_sliding", kSliding, "0s_1s_1s_3_3s", 19, "0,1"}, 1},
      {{"fwd_lckv_5", kCla, "lckv:2", 17, "4,1"}, 5},
      {{"fwd_sandwich_t", kDeep, "sandwich-middle:3", 11, "7,3"}, 10},
      {{"fwd_interleaved", kInterleaved, "lckv:2", 15, "2,1"}, 3}};
  std::vector<std::vector<std::string>> runs;
  std::vector<fs::path> dirs;
  std::vector<std::string> token_lists;
  for (const auto& [c, passes] : cases) {
    const fs::path dir = make_model(c);
    dirs.push_back(dir);
    const std::string tokens = token_list(c.tokens, static_cast<int>(dirs.size()));
    token_lists.push_back(tokens);
    const std::string inputs = tokens.substr(0, tokens.rfind(','));
    const RunResult r = run_kvlab("forward --model " + dir.string() + " --tokens " + inputs +
                                  " --precision f64 --passes " + std::to_string(passes) +
                                  " --out " + (dir / "kvlab_logits.npy").string());
    EXPECT_EQ(r.status, 0) << r.output;
    runs.push_back({"--model", dir.string(), "--tokens", tokens, "--train-passes", c.train_passes,
                    "--out", (dir / "torch_grads.safetensors").string(), "--logits-out",
                    (dir / "torch_logits.npy").string()});
  }
  if (!run_oracle(runs, "forward")) return;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto a = kvlab::read_npy((dirs[i] / "kvlab_logits.npy").string());
    const auto b = kvlab::read_npy((dirs[i] / "torch_logits.npy").string());
    ASSERT_EQ(a.shape, b.shape) << cases[i].first.name;
    double scale = 0, diff = 0;
    for (size_t j = 0; j < a.values.size(); ++j) {
      scale = std::max(scale, std::abs(b.values[j]));
      diff = std::max(diff, std::abs(a.values[j] - b.values[j]));
    }
    EXPECT_LT(diff / scale, kLogitTolerance) << cases[i].first.name;
    // NLL of kvlab's logits against the oracle's loss.
    std::vector<int> ids;
    std::stringstream ss(token_lists[i]);
    for (std::string t; std::getline(ss, t, ',');) ids.push_back(std::stoi(t));
    const size_t V = static_cast<size_t>(a.shape[1]);
    double nll = 0;
    for (size_t r = 0; r + 1 < ids.size(); ++r) {
      const double* row = a.values.data() + r * V;
      const double top = *std::max_element(row, row + V);
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += std::exp(row[v] - top);
      nll += top + std::log(sum) - row[ids[r + 1]];
    }
    nll /= static_cast<double>(ids.size() - 1);
    const auto g = kvlab::open_safetensors((dirs[i] / "torch_grads.safetensors").string());
    const double loss = meta_double(g, "loss");
    EXPECT_LT(std::abs(nll - loss) / loss, kLossTolerance)
        << cases[i].first.name << ": NLL of kvlab forward " << nll << ", oracle loss " << loss;
  }
}

// torch.autograd.gradcheck of the oracle on tiny models (every plan kind; with m > 0 against the
// b-pass loss whose start K/V are held fixed) and the §3 exactness facts of its forward.
TEST(OracleGrad, OracleSelfCheck) {
  const std::string cmd = std::string(KVLAB_PYTHON) +
                          " " KVLAB_SOURCE_DIR "/tests/oracle/torch_grad.py --selfcheck 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// GradModel (linked directly) on a batch of B sequences with 2 threads: the loss, the KV loss and
// every gradient are the mean of the oracle's for each sequence (equal lengths), to 1e-9.
TEST(OracleGrad, GradModelBatchIsTheMeanOfTheSequences) {
  // 3 rows of 50 predictions: 150 activation rows, so GradModel's 128-row tiles end partially.
  const Case c{"batch", kDeep, "sandwich-top:3", 51, "1,2", 1.5};
  const fs::path dir = make_model(c);
  const int B = 3, n = c.tokens;
  std::vector<int> batch;
  std::vector<std::vector<std::string>> runs;
  for (int r = 0; r < B; ++r) {
    const std::string tokens = token_list(n, 7 * r + 1);
    std::stringstream ss(tokens);
    for (std::string t; std::getline(ss, t, ',');) batch.push_back(std::stoi(t));
    runs.push_back({"--model", dir.string(), "--tokens", tokens, "--train-passes", "1,2",
                    "--kv-loss", "1.5", "--out",
                    (dir / ("torch_" + std::to_string(r) + ".safetensors")).string()});
  }
  const auto w = kvlab::ref::load_checkpoint<double>(dir.string());
  kvlab::ref::train::TrainPasses passes;
  passes.m = 1;
  passes.b = 2;
  passes.kv_loss_weight = 1.5;
  kvlab::ref::train::GradModel<double> model(w.config, w.plan, passes, 2);
  auto grads = kvlab::ref::train::zeros_like(w);
  const auto report = model.loss_and_grad(w, batch.data(), B, n - 1, grads);
  if (!run_oracle(runs, "batch")) return;
  std::vector<kvlab::SafetensorsFile> oracle;
  double loss = 0, kv_loss = 0;
  for (int r = 0; r < B; ++r) {
    oracle.push_back(
        kvlab::open_safetensors((dir / ("torch_" + std::to_string(r) + ".safetensors")).string()));
    loss += meta_double(oracle.back(), "loss") / B;
    kv_loss += meta_double(oracle.back(), "kv_loss") / B;
  }
  EXPECT_LT(std::abs(report.loss - loss) / loss, kLossTolerance) << report.loss << " " << loss;
  EXPECT_GT(kv_loss, 0);
  EXPECT_LT(std::abs(report.kv_loss - kv_loss) / kv_loss, kLossTolerance)
      << report.kv_loss << " " << kv_loss;
  int compared = 0;
  for (const auto& p : kvlab::ref::train::parameters(grads)) {
    ASSERT_TRUE(oracle[0].has(p.name)) << p.name;
    std::vector<double> mean(p.data->size(), 0.0);
    for (const auto& f : oracle) {
      const auto g = f.read_f64(p.name);
      ASSERT_EQ(g.size(), mean.size()) << p.name;
      for (size_t i = 0; i < g.size(); ++i) mean[i] += g[i] / B;
    }
    double scale = 0, diff = 0;
    for (size_t i = 0; i < mean.size(); ++i) {
      scale = std::max(scale, std::abs(mean[i]));
      diff = std::max(diff, std::abs((*p.data)[i] - mean[i]));
    }
    EXPECT_LT(diff / std::max(scale, 1e-300), kGradTolerance) << p.name;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(oracle[0].names().size()));
}
