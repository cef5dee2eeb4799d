// The reference engine against the independent PyTorch implementation (tests/oracle/
// torch_reference.py, Debian's python3-torch): kvlab init writes a checkpoint, kvlab forward and
// the oracle both write the prefill logits, and they must agree to 1e-10 (float64) and 1e-4
// (float32) relative error. This test never skips: a missing python or torch is a failure.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/formats/npy.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

namespace {

struct Shape {
  std::string name;
  int layers, hidden, heads, kv_heads, ffn, window;
  bool tied;
};

fs::path work_dir() {
  const fs::path d = fs::temp_directory_path() / ("kvlab_oracle_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

fs::path write_config(const Shape& s) {
  const fs::path p = work_dir() / (s.name + ".json");
  std::ofstream(p) << "{\"hidden_size\": " << s.hidden << ", \"num_hidden_layers\": " << s.layers
                   << ", \"num_attention_heads\": " << s.heads
                   << ", \"num_key_value_heads\": " << s.kv_heads
                   << ", \"intermediate_size\": " << s.ffn
                   << ", \"vocab_size\": 300, \"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-5,"
                   << " \"max_position_embeddings\": 128, \"sliding_window\": " << s.window
                   << ", \"tie_word_embeddings\": " << (s.tied ? "true" : "false") << "}";
  return p;
}

double max_rel_error(const kvlab::NpyArray& a, const kvlab::NpyArray& b) {
  EXPECT_EQ(a.shape, b.shape);
  double scale = 0, diff = 0;
  for (size_t i = 0; i < std::min(a.values.size(), b.values.size()); ++i) {
    EXPECT_TRUE(std::isfinite(a.values[i])) << "kvlab produced a non-finite value at " << i;
    scale = std::max(scale, std::abs(b.values[i]));
    diff = std::max(diff, std::abs(a.values[i] - b.values[i]));
  }
  return diff / scale;
}

// init + forward (kvlab) + oracle; returns the relative error for the precision.
// `kvlab_extra` / `oracle_extra`: schedule flags for each side (upward plans).
double compare(const Shape& s, const std::string& plan, const std::string& precision,
               const std::string& run_plan = "", const std::string& kvlab_extra = "",
               const std::string& oracle_extra = "") {
  const std::string py = KVLAB_PYTHON;
  EXPECT_FALSE(py.empty()) << "no python3 was found at configure time";
  const fs::path dir = work_dir() / (s.name + "_" + plan);
  const std::string tokens = "256,72,101,108,108,111,44,32,119,111,114,108,100,33,10,7,299,0,3";
  RunResult r = run_kvlab("init --config " + write_config(s).string() + " --plan " + plan +
                          " --seed 5 -o " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  const fs::path mine = dir / ("kvlab_" + precision + ".npy");
  const fs::path theirs = dir / ("torch_" + precision + ".npy");
  const std::string plan_flag = run_plan.empty() ? "" : " --plan " + run_plan;
  r = run_kvlab("forward --model " + dir.string() + " --tokens " + tokens + " --precision " +
                precision + plan_flag + " " + kvlab_extra + " --out " + mine.string());
  EXPECT_EQ(r.status, 0) << r.output;
  std::string oracle_plan;
  if (!run_plan.empty()) {
    // The oracle takes text forms only: ask kvlab for the expansion.
    RunResult p =
        run_kvlab("plan " + run_plan + " --layers " + std::to_string(s.layers) + " --json");
    oracle_plan = " --plan " + nlohmann::json::parse(p.output)["map"].get<std::string>();
  }
  const std::string cmd = py + " " KVLAB_SOURCE_DIR "/tests/oracle/torch_reference.py --model " +
                          dir.string() + " --tokens " + tokens + " --precision " + precision +
                          oracle_plan + " " + oracle_extra + " --out " + theirs.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "the PyTorch oracle failed: " << cmd;
  if (rc != 0 || r.status != 0) return 1e30;
  return max_rel_error(kvlab::read_npy(mine.string()), kvlab::read_npy(theirs.string()));
}

}  // namespace

const Shape kGqa{"gqa", 4, 64, 4, 2, 96, 4096, false};
const Shape kMha{"mha", 3, 48, 3, 3, 80, 4096, true};
const Shape kMqa{"mqa", 4, 64, 8, 1, 72, 4096, false};
const Shape kSliding{"sliding", 4, 64, 4, 2, 96, 5, false};

TEST(Oracle, StandardGqaFloat64) {
  EXPECT_LT(compare(kGqa, "standard", "f64"), 1e-10);
}
TEST(Oracle, StandardGqaFloat32) {
  EXPECT_LT(compare(kGqa, "standard", "f32"), 1e-4);
}
TEST(Oracle, MhaTiedFloat64) {
  EXPECT_LT(compare(kMha, "standard", "f64"), 1e-10);
}
TEST(Oracle, MqaCla2Float64) {
  EXPECT_LT(compare(kMqa, "cla:2", "f64"), 1e-10);
}
TEST(Oracle, MqaCla3Float32) {
  EXPECT_LT(compare(kMqa, "cla:3", "f32"), 1e-4);
}
TEST(Oracle, DownwardMapFloat64) {
  EXPECT_LT(compare(kGqa, "0_0_0_3", "f64"), 1e-10);
}
TEST(Oracle, PizzaBottomFloat64) {
  EXPECT_LT(compare(kGqa, "pizza-bottom:2", "f64"), 1e-10);
}
TEST(Oracle, SlidingLayersFloat64) {
  // Window 5 over 19 tokens: sliding banks, a shared sliding bank, a full bank on top.
  EXPECT_LT(compare(kSliding, "0s_1s_1s_3", "f64"), 1e-10);
  EXPECT_LT(compare(kSliding, "yoco", "f64"), 1e-10);
}
TEST(Oracle, PostHocPlanOnStandardCheckpoint) {
  // A standard checkpoint run with cla:2 uses the target layers' K/V.
  EXPECT_LT(compare(kGqa, "standard", "f64", "cla:2"), 1e-10);
}

// Upward plans (issue 4): iterative passes and token by token, 19 tokens.
TEST(OracleUpward, Lckv2IterativeFewPassesFloat64) {
  EXPECT_LT(compare(kGqa, "lckv:1", "f64", "", "--passes 4", "--mode iterative --passes 4"), 1e-10);
}
TEST(OracleUpward, SandwichMiddleDefaultScheduleFloat64) {
  // 19 tokens > 9: the default schedule is 9 iterative passes on both sides.
  EXPECT_LT(compare(kMqa, "sandwich-middle:3", "f64"), 1e-10);
}
TEST(OracleUpward, TokenByTokenFloat64) {
  EXPECT_LT(compare(kGqa, "lasagna-top:2", "f64", "", "--token-by-token", "--mode token-by-token"),
            1e-10);
}
TEST(OracleUpward, TwoBlocksFloat32) {
  EXPECT_LT(compare(kMqa, "1_1_3_3", "f32", "", "--passes 6", "--mode iterative --passes 6"), 1e-4);
}
TEST(OracleUpward, ForceNoDiagFloat64) {
  EXPECT_LT(compare(kGqa, "0_3_3_3", "f64", "", "--passes 5 --force-nodiag",
                    "--mode iterative --passes 5 --force-nodiag"),
            1e-10);
}
