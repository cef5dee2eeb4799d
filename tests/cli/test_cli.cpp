// The `kvlab` binary end to end: outputs users rely on, and a named error per class of bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli/run_kvlab.hpp"

namespace {

void expect_rejected(const std::string& args, const std::string& fragment) {
  const RunResult r = run_kvlab(args);
  EXPECT_NE(r.status, 0) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(fragment), std::string::npos)
      << "kvlab " << args << "\n---\n" << r.output << "---\nexpected: " << fragment;
}

nlohmann::json plan_json(const std::string& args) {
  const RunResult r = run_kvlab("plan " + args + " --json");
  EXPECT_EQ(r.status, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

}  // namespace

TEST(CliPlan, ClaChecksFromTheSpec) {
  EXPECT_EQ(plan_json("standard --model cla-1b")["bytes_per_token"], 10240);
  EXPECT_EQ(plan_json("cla:2 --model cla-1b")["bytes_per_token"], 5120);
  EXPECT_EQ(plan_json("cla:3 --layers 20 --kv-heads 1 --head-dim 128")["bytes_per_token"], 3584);
  EXPECT_EQ(plan_json("cla:4 --model cla-1b --dtype bf16")["bytes_per_token"], 2560);
}

TEST(CliPlan, LckvOnTinyLlama) {
  const auto j = plan_json("lckv:2 --model tinyllama-1.1b");
  std::string expected = "0";
  for (int i = 0; i < 20; ++i) expected += "_20";
  expected += "_21";
  EXPECT_EQ(j["map"], expected);
  EXPECT_EQ(j["bytes_per_token"], 3072);
  EXPECT_EQ(j["bytes_per_token_standard"], 22528);
  EXPECT_EQ(j["kv_layers"], nlohmann::json({0, 20, 21}));
  EXPECT_EQ(j["cyclic_blocks"], nlohmann::json::parse("[[1, 20]]"));
  EXPECT_EQ(j["pass_schedule"]["passes"], 9);
}

TEST(CliPlan, HumanReportHasTableAndDrawing) {
  const RunResult r = run_kvlab("plan sandwich-middle:4 --layers 8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("map           0_1_4_4_4_4_4_7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cyclic blocks [2, 4]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" layer  reads  KV layer  upward  sliding  block"), std::string::npos);
  EXPECT_NE(r.output.find("     2 ....^..."), std::string::npos) << r.output;  // layer 2 reads 4
  EXPECT_NE(r.output.find("     4 ....#..."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("     6 ....v..."), std::string::npos) << r.output;
}

TEST(CliPlan, ConfigFileAndDirectory) {
  const RunResult r = run_kvlab("plan cla:2 --config " KVLAB_SOURCE_DIR
                                "/tests/data/tiny_config.json --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["map"], "0_0_2_2");
}

TEST(CliErrors, UnknownGenerator) {
  expect_rejected("plan clx:2 --layers 4", "plan = clx:2 is invalid: unknown generator");
}
TEST(CliErrors, TargetNotKvLayer) {
  expect_rejected("plan 0_0_1_3 --layers 4", "layer 1 is not a KV layer");
}
TEST(CliErrors, IndexOutOfRange) {
  expect_rejected("plan 0_1_9_3 --layers 4", "kv(2) = 9 is invalid: must be a layer index in [0, 3]");
}
TEST(CliErrors, HeadsThatDoNotDivide) {
  expect_rejected("plan standard --model tinyllama-1.1b --kv-heads 5",
                  "--kv-heads = 5 is invalid: must divide the model's num_attention_heads = 32");
}
TEST(CliErrors, NegativeOrAbsurdSize) {
  expect_rejected("plan standard --layers -4", "--layers = -4");
  expect_rejected("plan standard --layers 100000", "--layers = 100000");
  expect_rejected("plan standard --layers 4 --head-dim 7", "head_dim = 7");
  expect_rejected("plan standard --layers 4 --prompt 0", "--prompt = 0");
}
TEST(CliErrors, MalformedConfig) {
  expect_rejected("plan standard --config " KVLAB_SOURCE_DIR "/tests/data/bad_config.json",
                  "num_key_value_heads = 3 is invalid");
  expect_rejected("plan standard --config /nonexistent.json", "--config = /nonexistent.json is invalid: cannot open");
}
TEST(CliErrors, UnknownModelAndDtype) {
  expect_rejected("plan standard --model gpt-9", "--model = gpt-9 is invalid: unknown preset");
  expect_rejected("plan standard --layers 4 --dtype f64", "--dtype = f64 is invalid");
  expect_rejected("plan standard", "give exactly one of --model");
}
