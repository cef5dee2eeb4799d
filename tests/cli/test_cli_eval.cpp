// kvlab squeeze, eval and sweep end to end (issue 5): JSON fields, the CSV, and a named error
// for each class of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

namespace {

// One small checkpoint shared by the tests of this file (cla:2: 3 banks over 6 layers).
const fs::path& model() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("kvlab_cli_eval_" + std::to_string(::getpid()));
    fs::remove_all(d);
    const RunResult r = run_kvlab("init --model stories15m --plan cla:2 --seed 3 -o " + d.string());
    EXPECT_EQ(r.status, 0) << r.output;
    return d;
  }();
  return dir;
}

void expect_rejected(const std::string& args, const std::string& fragment) {
  const RunResult r = run_kvlab(args);
  EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(fragment), std::string::npos)
      << "kvlab " << args << "\n---\n"
      << r.output << "---\nexpected: " << fragment;
}

}  // namespace

TEST(CliSqueeze, JsonHasImportanceClustersAndBudgets) {
  const RunResult r =
      run_kvlab("squeeze --model " + model().string() +
                " --prompt 'Once upon a time there was a robot.' --f0 0.5 --f3 0.2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["cos_sim"].size(), 6u);
  ASSERT_EQ(j["importance"].size(), 6u);
  for (int l = 0; l < 6; ++l) {
    EXPECT_DOUBLE_EQ(j["importance"][l].get<double>(), 1.0 - j["cos_sim"][l].get<double>());
  }
  ASSERT_EQ(j["bank_cos_sim"].size(), 3u);
  for (int b = 0; b < 3; ++b) {
    EXPECT_DOUBLE_EQ(j["bank_importance"][b].get<double>(),
                     1.0 - j["bank_cos_sim"][b].get<double>());
  }
  ASSERT_EQ(j["cluster"].size(), 6u);
  ASSERT_EQ(j["budget_tokens"].size(), 6u);
  // Layers sharing a bank share its cluster and budget; the total keeps the uniform total.
  for (int l = 0; l < 6; l += 2) {
    EXPECT_EQ(j["cluster"][l], j["cluster"][l + 1]);
    EXPECT_EQ(j["budget_tokens"][l], j["budget_tokens"][l + 1]);
  }
  // 3 banks: U = 3 x floor(0.5 x N), conserved exactly.
  EXPECT_EQ(j["uniform_total_tokens"].get<int>(), 3 * (j["prompt_tokens"].get<int>() / 2));
  EXPECT_EQ(j["total_budget_tokens"].get<int>(), j["uniform_total_tokens"].get<int>());
}

TEST(CliSqueeze, RaisedBudgetsAndStreamingSinksAreSaid) {
  // streaming:4 needs 5 tokens a bank; f3 = 0.05 gives the least important cluster less, which is
  // raised and said, in the text and in the JSON.
  const std::string args = "squeeze --model " + model().string() +
                           " --prompt 'Once upon a time there was a robot.' --f0 0.5 --f3 0.05"
                           " --policy streaming:4";
  const RunResult text = run_kvlab(args);
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("note: a streaming budget includes its sink tokens"),
            std::string::npos)
      << text.output;
  EXPECT_NE(text.output.find("raised to 5: streaming:4 needs more than its 4 sinks"),
            std::string::npos)
      << text.output;
  const RunResult json = run_kvlab(args + " --json");
  ASSERT_EQ(json.status, 0) << json.output;
  const auto j = nlohmann::json::parse(json.output);
  ASSERT_FALSE(j["notes"].empty());
  for (const auto& b : j["budget_tokens"]) EXPECT_GE(b.get<int>(), 5);
}

TEST(CliGenerate, SaysWhenTheContextStopsIt) {
  const RunResult r =
      run_kvlab("generate --model " + model().string() + " --prompt hi --max-new 20 --context 8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("the context (8 tokens) is full"), std::string::npos) << r.output;
}

TEST(CliEval, MqarJsonReportsAccuracyAndKvHeld) {
  const RunResult r = run_kvlab("eval --model " + model().string() +
                                " --task mqar --policy h2o --budget 50% --n 2 --length 60 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["scored"], 16);  // 8 queries x 2 examples
  // accuracy is the fraction of scored queries answered correctly.
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(),
                   j["correct"].get<double>() / j["scored"].get<double>());
  EXPECT_NEAR(j["kv_bytes_held"].get<double>() / j["kv_bytes_full"].get<double>(), 0.5, 0.02);
}

TEST(CliSweep, WritesCsvRowsForEveryPolicyAndBudget) {
  const fs::path csv =
      model().parent_path() / ("kvlab_sweep_" + std::to_string(::getpid()) + ".csv");
  const RunResult r =
      run_kvlab("sweep --model " + model().string() +
                " --task passkey --policies window,streaming --budgets 50%,100% --n 1"
                " --length 100 --out " +
                csv.string());
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(csv);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) ++rows;
  EXPECT_EQ(rows, 5);  // header + 2 x 2
  fs::remove(csv);
}

TEST(CliEvalErrors, NamedErrors) {
  const std::string m = " --model " + model().string();
  expect_rejected("eval" + m + " --task passkey --policy streaming:8 --budget 4",
                  "--budget = 4 is invalid: must exceed the 8 sinks");
  expect_rejected("eval" + m + " --task passkey --policy lru", "--policy = lru is invalid");
  expect_rejected("eval" + m + " --task passkey --policy window --budget 1.5",
                  "--budget = 1.5 is invalid: write tokens as an integer");
  expect_rejected("eval" + m + " --task passkey --policy window --budget 0.0", "--budget = 0.0");
  expect_rejected("eval" + m + " --task passkey --policy window --budget 0%", "--budget = 0%");
  expect_rejected("eval" + m + " --task passkey --length 5000", "--length = 5000 is invalid");
  expect_rejected("eval" + m + " --task chess", "--task = chess is invalid");
  expect_rejected("eval" + m + " --task passkey --policy window --squeeze 0.9,0.05",
                  "--squeeze = 0.9");
  expect_rejected("eval" + m + " --task passkey --policy window --squeeze 0.1,0.9",
                  "--squeeze f3 = 0.900000 is invalid: must be at most f0");
  expect_rejected("eval" + m + " --task passkey --squeeze 0.4,0.1",
                  "SqueezeAttention budgets need an evicting policy");
  expect_rejected("squeeze" + m + " --prompt hi --f0 0.5", "give exactly one of --f3 and --p");
  expect_rejected("squeeze" + m + " --prompt hi --f0 1.5 --f3 0.1", "--f0 = 1.5");
}

TEST(CliGenerate, PolicyAndH2oScoresTelemetry) {
  const fs::path tele =
      model().parent_path() / ("kvlab_h2o_" + std::to_string(::getpid()) + ".jsonl");
  const RunResult r = run_kvlab("generate --model " + model().string() +
                                " --prompt 'Once upon a time' --max-new 3 --policy h2o --budget 50%"
                                " --telemetry " +
                                tele.string() + " --h2o-scores");
  ASSERT_EQ(r.status, 0) << r.output;
  // 3 banks x 6 KV heads x 8 cells x 16 bytes, said apart from the K/V (§7).
  EXPECT_NE(r.output.find("[kvlab] H2O scores 2.25 KiB beside the K/V"), std::string::npos)
      << r.output;
  std::ifstream in(tele);
  int scores = 0;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "h2o_scores") {
      ++scores;
      EXPECT_EQ(j["positions"].size(), 8u);  // floor(0.5 x 17 prompt tokens)
    }
    if (j["event"] == "step") {
      // Scores and counts (2 float64) per held cell per KV head, 3 banks x 6 heads x 8 cells,
      // reported apart from the K/V bytes (§7).
      EXPECT_EQ(j["h2o_score_bytes"], 3 * 6 * 8 * 16) << line;
    }
  }
  EXPECT_EQ(scores, 3 * 3 * 6);  // 3 steps x 3 banks x 6 KV heads
  fs::remove(tele);
  expect_rejected("generate --model " + model().string() + " --prompt hi --h2o-scores",
                  "--h2o-scores = true is invalid: needs --telemetry");
  expect_rejected("generate --model " + model().string() + " --prompt hi --positions rope",
                  "--positions = rope");
}
