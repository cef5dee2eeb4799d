// Same seed, same bytes: generate, eval (mqar, passkey) and squeeze --json print identical stdout
// across two runs and across --threads 1 and 2, in f64, with and without H2O eviction.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

namespace {

// A small checkpoint (4 layers, GQA 4/2, vocabulary 300, context 256), made once.
const fs::path& model() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("kvlab_determinism_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    std::ofstream(d / "cfg.json") << nlohmann::json{
        {"hidden_size", 64},
        {"num_hidden_layers", 4},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"intermediate_size", 96},
        {"vocab_size", 300},
        {"max_position_embeddings", 256},
        {"rope_theta", 10000.0},
        {"rms_norm_eps", 1e-5},
        {"tie_word_embeddings", false}}.dump();
    const RunResult r = run_kvlab("init --config " + (d / "cfg.json").string() +
                                  " --plan cla:2 --seed 4 -o " + (d / "m").string());
    EXPECT_EQ(r.status, 0) << r.output;
    return d;
  }();
  return dir;
}

// The output of `args` with --threads appended, less generate's timing summary (the stderr line
// "[kvlab] plan ... tokens/s ...", the only part that may change from run to run).
std::string stdout_of(const std::string& args, int threads) {
  const RunResult r = run_kvlab(args + " --threads " + std::to_string(threads));
  EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
  std::string kept;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("[kvlab] plan ", 0) != 0) kept += line + "\n";
  }
  EXPECT_FALSE(kept.empty()) << args;
  return kept;
}

void expect_deterministic(const std::string& args) {
  SCOPED_TRACE("kvlab " + args);
  const std::string a = stdout_of(args, 1);
  EXPECT_EQ(a, stdout_of(args, 1)) << "two runs differ";
  EXPECT_EQ(a, stdout_of(args, 2)) << "--threads 1 and --threads 2 differ";
}

std::string m() {
  return " --model " + (model() / "m").string() + " --precision f64";
}

}  // namespace

TEST(CliDeterminism, GenerateSampled) {
  expect_deterministic("generate" + m() +
                       " --prompt 'Once upon a time' --max-new 24 --temperature 0.8 --seed 3");
}

TEST(CliDeterminism, GenerateSampledUnderH2o) {
  expect_deterministic("generate" + m() +
                       " --prompt 'Once upon a time there was' --max-new 24 --temperature 0.8"
                       " --seed 3 --policy h2o --budget 50%");
}

TEST(CliDeterminism, EvalMqarAndPasskey) {
  expect_deterministic("eval" + m() + " --task mqar --seed 5 --n 2 --length 80 --json");
  expect_deterministic("eval" + m() + " --task passkey --seed 5 --n 2 --length 80 --json");
}

TEST(CliDeterminism, EvalUnderH2o) {
  expect_deterministic("eval" + m() +
                       " --task mqar --seed 5 --n 2 --length 80 --policy h2o --budget 50% --json");
  expect_deterministic(
      "eval" + m() + " --task passkey --seed 5 --n 2 --length 80 --policy h2o --budget 24 --json");
}

TEST(CliDeterminism, SqueezeJson) {
  expect_deterministic("squeeze" + m() +
                       " --prompt 'Once upon a time there was a robot.' --f0 0.5 --f3 0.2 --json");
  expect_deterministic("squeeze" + m() +
                       " --prompt 'Once upon a time there was a robot.' --policy h2o --f0 0.5"
                       " --f3 0.2 --json");
}
