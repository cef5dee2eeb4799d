// Real checkpoints against their peers (issue 6):
//  - a tiny random Llama saved by Hugging Face transformers (tests/oracle/hf_llama.py: float32,
//    GQA, tied and untied heads, single-file and sharded, F16 and BF16) gives the logits
//    LlamaForCausalLM gives, within 1e-4 relative error in float32;
//  - with its tokenizer.json (sentencepiece-style and byte-level), kvlab --prompt TEXT gives the
//    logits of BOS + the tokenizers package's ids of TEXT;
//  - a llama2.c .bin written by an independent numpy script (tests/oracle/make_llama2c.py) from a
//    kvlab checkpoint gives the logits of that checkpoint, within 1e-5.
// Never skipped: a missing .venv, transformers or torch is a failure (scripts/setup.sh installs
// them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/formats/npy.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kTokens = "1,72,101,108,108,111,44,32,119,111,114,108,100,33,10,7,299,0,3";

fs::path work_dir() {
  const fs::path d =
      fs::temp_directory_path() / ("kvlab_ckpt_oracle_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// The work directory goes when every test of the process passed (kept for inspection otherwise).
class RemoveWorkDir : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(work_dir());
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveWorkDir =
    ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

std::string venv_python() {
  const std::string py = KVLAB_VENV_PYTHON;
  EXPECT_TRUE(fs::exists(py)) << py << " is missing: run scripts/setup.sh (it creates .venv with "
                              << "transformers)";
  return py;
}

double max_rel_error(const kvlab::NpyArray& a, const kvlab::NpyArray& b) {
  EXPECT_EQ(a.shape, b.shape);
  double scale = 0, diff = 0;
  for (size_t i = 0; i < std::min(a.values.size(), b.values.size()); ++i) {
    EXPECT_TRUE(std::isfinite(a.values[i])) << "kvlab produced a non-finite value at " << i;
    scale = std::max(scale, std::abs(b.values[i]));
    diff = std::max(diff, std::abs(a.values[i] - b.values[i]));
  }
  return a.shape == b.shape ? diff / scale : 1e30;
}

// transformers saves a model; kvlab runs the directory; returns the relative error.
double compare_hf(const std::string& name, const std::string& flags) {
  const fs::path dir = work_dir() / name;
  fs::remove_all(dir);
  const fs::path theirs = work_dir() / (name + "_hf.npy");
  const fs::path mine = work_dir() / (name + "_kvlab.npy");
  const std::string cmd = venv_python() + " " KVLAB_SOURCE_DIR "/tests/oracle/hf_llama.py --out " +
                          dir.string() + " --tokens " + kTokens + " --logits " + theirs.string() +
                          " " + flags + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "transformers failed: " << cmd;
  if (rc != 0) return 1e30;
  const RunResult r = run_kvlab("forward --model " + dir.string() + " --tokens " + kTokens +
                                " --out " + mine.string());
  EXPECT_EQ(r.status, 0) << r.output;
  if (r.status != 0) return 1e30;
  return max_rel_error(kvlab::read_npy(mine.string()), kvlab::read_npy(theirs.string()));
}

}  // namespace

TEST(HfOracle, GqaUntiedSingleFile) {
  EXPECT_LT(compare_hf("gqa_untied", ""), 1e-4);
  EXPECT_TRUE(fs::exists(work_dir() / "gqa_untied" / "model.safetensors"));
}

TEST(HfOracle, GqaTiedSingleFile) {
  EXPECT_LT(compare_hf("gqa_tied", "--tied"), 1e-4);
}

TEST(HfOracle, GqaUntiedSharded) {
  EXPECT_LT(compare_hf("gqa_untied_sharded", "--shard 40KB"), 1e-4);
  EXPECT_TRUE(fs::exists(work_dir() / "gqa_untied_sharded" / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(work_dir() / "gqa_untied_sharded" / "model.safetensors"));
}

TEST(HfOracle, MqaTiedSharded) {
  EXPECT_LT(compare_hf("mqa_tied_sharded", "--tied --heads 8 --kv-heads 1 --shard 30KB"), 1e-4);
  EXPECT_TRUE(fs::exists(work_dir() / "mqa_tied_sharded" / "model.safetensors.index.json"));
}

TEST(HfOracle, MhaThetaFloat16) {
  // Weights stored as F16 (kvlab widens them exactly); transformers runs the same values in f32.
  EXPECT_LT(compare_hf("mha_f16", "--heads 4 --kv-heads 4 --theta 500000 --dtype float16"), 1e-4);
}

TEST(HfOracle, GqaBfloat16Sharded) {
  EXPECT_LT(compare_hf("gqa_bf16", "--dtype bfloat16 --shard 20KB"), 1e-4);
}

TEST(HfOracle, PostHocPlanRuns) {
  // A pretrained (here: random) Hugging Face model under a sharing plan after the fact.
  ASSERT_LT(compare_hf("posthoc", ""), 1e-4);
  const RunResult r =
      run_kvlab("forward --model " + (work_dir() / "posthoc").string() + " --tokens " + kTokens +
                " --plan cla:3 --out " + (work_dir() / "posthoc_cla.npy").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("plan"), std::string::npos) << r.output;
}

// A Hugging Face directory with its tokenizer.json (trained by the `tokenizers` package in
// tests/oracle/make_tokenizers.py): kvlab run with --prompt TEXT gives transformers' logits of BOS
// + the package's ids of TEXT.
void compare_hf_prompt(const std::string& tokenizer) {
  const fs::path toks = work_dir() / "tokenizers";
  fs::create_directories(toks);
  if (!fs::exists(toks / "sentencepiece.json")) {
    const std::string make = venv_python() +
                             " " KVLAB_SOURCE_DIR "/tests/oracle/make_tokenizers.py " +
                             toks.string() + " 2>&1";
    ASSERT_EQ(std::system(make.c_str()), 0) << make;
  }
  const std::string text = "Once upon a time, Lily said: \"héllo 42!\"  ok";
  const fs::path dir = work_dir() / ("prompt_" + tokenizer);
  fs::remove_all(dir);
  const fs::path theirs = work_dir() / ("prompt_" + tokenizer + "_hf.npy");
  const fs::path mine = work_dir() / ("prompt_" + tokenizer + "_kvlab.npy");
  const std::string cmd = venv_python() + " " KVLAB_SOURCE_DIR "/tests/oracle/hf_llama.py --out " +
                          dir.string() + " --tokens 0 --tokenizer " +
                          (toks / (tokenizer + ".json")).string() + " --text " + shell_quote(text) +
                          " --logits " + theirs.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const RunResult r = run_kvlab("forward --model " + dir.string() + " --prompt " +
                                shell_quote(text) + " --out " + mine.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_LT(max_rel_error(kvlab::read_npy(mine.string()), kvlab::read_npy(theirs.string())), 1e-4);
}

TEST(HfOracle, PromptThroughSentencePieceTokenizerJson) {
  compare_hf_prompt("sentencepiece");
}

TEST(HfOracle, PromptThroughByteLevelTokenizerJson) {
  compare_hf_prompt("bytelevel_gpt2");
}

// llama2.c: the same weights in both formats give the same logits.
void compare_llama2c(const std::string& name, bool tied) {
  const fs::path dir = work_dir() / name;
  fs::remove_all(dir);
  const fs::path cfg = work_dir() / (name + ".json");
  std::ofstream(cfg) << "{\"hidden_size\": 64, \"num_hidden_layers\": 3, \"num_attention_heads\": "
                        "4, \"num_key_value_heads\": 2, \"intermediate_size\": 96, "
                        "\"vocab_size\": 300, \"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-5, "
                        "\"max_position_embeddings\": 64, \"tie_word_embeddings\": "
                     << (tied ? "true" : "false") << "}";
  RunResult r = run_kvlab("init --config " + cfg.string() + " --seed 3 -o " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path bin = work_dir() / (name + ".bin");
  const std::string cmd = venv_python() +
                          " " KVLAB_SOURCE_DIR "/tests/oracle/make_llama2c.py --model " +
                          dir.string() + " --out " + bin.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const fs::path a = work_dir() / (name + "_kvlab.npy"), b = work_dir() / (name + "_l2c.npy");
  r = run_kvlab("forward --model " + dir.string() + " --tokens " + kTokens + " --out " +
                a.string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_kvlab("forward --model " + bin.string() + " --tokens " + kTokens + " --out " +
                b.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_LT(max_rel_error(kvlab::read_npy(b.string()), kvlab::read_npy(a.string())), 1e-5);
}

TEST(Llama2cOracle, UntiedGqaMatchesKvlabFormat) {
  compare_llama2c("l2c_untied", false);
}

TEST(Llama2cOracle, TiedGqaMatchesKvlabFormat) {
  compare_llama2c("l2c_tied", true);
}
