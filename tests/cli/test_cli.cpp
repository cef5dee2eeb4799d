// The `kvlab` binary end to end: outputs users rely on, and a named error per class of bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli/run_kvlab.hpp"

namespace {

void expect_rejected(const std::string& args, const std::string& fragment) {
  const RunResult r = run_kvlab(args);
  EXPECT_NE(r.status, 0) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(fragment), std::string::npos)
      << "kvlab " << args << "\n---\n"
      << r.output << "---\nexpected: " << fragment;
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
  const RunResult r =
      run_kvlab("plan cla:2 --config " KVLAB_SOURCE_DIR "/tests/data/tiny_config.json --json");
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
  expect_rejected("plan 0_1_9_3 --layers 4",
                  "kv(2) = 9 is invalid: must be a layer index in [0, 3]");
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
  expect_rejected("plan standard --config /nonexistent.json",
                  "--config = /nonexistent.json is invalid: cannot open");
}
TEST(CliErrors, UnknownModelAndDtype) {
  expect_rejected("plan standard --model gpt-9", "--model = gpt-9 is invalid: unknown preset");
  expect_rejected("plan standard --layers 4 --dtype f64", "--dtype = f64 is invalid");
  expect_rejected("plan standard", "give exactly one of --model");
}

namespace {

nlohmann::json simulate_json(const std::string& args) {
  const RunResult r = run_kvlab("simulate " + args + " --json");
  EXPECT_EQ(r.status, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

const char* kLlama = "--model llama-2-7b --gpu a100-80gb --prompt 2048 --gen 256";

}  // namespace

TEST(CliSimulate, JsonFields) {
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2");
  EXPECT_EQ(j["gpu"]["name"], "a100-80gb");
  EXPECT_EQ(j["gpu"]["memory_bytes"], 85899345920LL);
  EXPECT_EQ(j["reserve_fraction"], 0.1);
  EXPECT_EQ(j["batch_requested"], nullptr);
  EXPECT_EQ(j["kv_dtype"], "f16");
  EXPECT_EQ(j["weight_dtype"], "f16");
  const auto& p = j["plan"];
  const auto& s = j["standard"];
  EXPECT_EQ(p["spec"], "cla:2");
  EXPECT_EQ(s["spec"], "standard");
  EXPECT_EQ(s["weight_bytes"], 13476831232LL);
  EXPECT_EQ(p["kv_bytes_per_token"], 262144);
  EXPECT_EQ(s["kv_bytes_per_token"], 524288);
  EXPECT_EQ(s["kv_bytes_per_sequence"], 524288LL * 2304);
  EXPECT_EQ(s["reserve_bytes"], 8589934592LL);
  EXPECT_EQ(s["max_batch"], 52);
  EXPECT_EQ(p["max_batch"], 107);
  EXPECT_EQ(p["batch"], 107);
  EXPECT_EQ(p["fits"], true);
  for (const char* k : {"weight_bytes_read_per_step", "kv_bytes_read_per_step_last",
                        "flops_per_token_last", "step_time_mean_s", "tokens_per_s", "bound"}) {
    EXPECT_TRUE(p["decode"].contains(k)) << k;
  }
  for (const char* k : {"layer_passes", "passes", "flops", "time_s", "token_by_token"}) {
    EXPECT_TRUE(p["prefill"].contains(k)) << k;
  }
  EXPECT_EQ(j["ratio_to_standard"]["kv_bytes_per_token"], 0.5);
  EXPECT_EQ(j["ratio_to_standard"]["decode_kv_bytes_read_per_step"], 1.0);  // reads per reader
  EXPECT_EQ(j["notes"], nlohmann::json::array());
}

TEST(CliSimulate, LckvPrefillPasses) {
  const auto j = simulate_json(
      "--model tinyllama-1.1b --plan lckv:2 --gpu h100 --prompt 1024 --gen 16 --batch 1");
  EXPECT_EQ(j["plan"]["prefill"]["passes"], 9);
  EXPECT_EQ(j["plan"]["prefill"]["layer_passes"], 182.0);
  EXPECT_EQ(j["standard"]["prefill"]["layer_passes"], 22.0);
  EXPECT_NEAR(j["ratio_to_standard"]["prefill_layer_passes"].get<double>(), 182.0 / 22, 1e-12);
  const auto t = simulate_json(
      "--model tinyllama-1.1b --plan lckv:2 --gpu h100 --prompt 5 --gen 16 --m 3 --b 2");
  EXPECT_EQ(t["plan"]["prefill"]["token_by_token"], true);
  EXPECT_EQ(t["m"], 3);
  EXPECT_EQ(t["plan"]["prefill"]["passes"], 5);
}

TEST(CliSimulate, CustomGpuConfigFileAndWeightDtype) {
  const auto j = simulate_json("--model " KVLAB_SOURCE_DIR
                               "/tests/data/tiny_config.json --plan cla:2 "
                               "--gpu 'custom(1,100,10)' --prompt 8 --gen 8 --dtype fp8 "
                               "--weight-dtype bf16");
  EXPECT_EQ(j["gpu"]["name"], "custom");
  EXPECT_EQ(j["gpu"]["memory_bytes"], 1073741824LL);
  EXPECT_EQ(j["kv_dtype"], "fp8");
  EXPECT_EQ(j["weight_dtype"], "bf16");
  EXPECT_EQ(j["plan"]["map"], "0_0_2_2");
}

TEST(CliSimulate, HumanReportSideBySide) {
  const RunResult r = run_kvlab("simulate " + std::string(kLlama) + " --plan cla:2");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"reserve   10% of memory = 8.00 GiB", "cla:2           standard     ratio",
                        "largest batch that fits", "KV read per step per seq (last)",
                        "step time (mean)", "layer passes", "fits 2.058 x the batch"}) {
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
}

TEST(CliSimulate, BatchThatDoesNotFitIsStated) {
  const RunResult r = run_kvlab("simulate " + std::string(kLlama) + " --plan cla:2 --batch 500");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cla:2: batch 500 does not fit: it needs"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the largest batch that fits is 107"), std::string::npos) << r.output;
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2 --batch 80");
  EXPECT_EQ(j["plan"]["fits"], true);
  EXPECT_EQ(j["standard"]["fits"], false);
  EXPECT_EQ(j["batch_requested"], 80);
}

TEST(CliErrors, SimulateBadInput) {
  const std::string base = "simulate --model llama-2-7b --plan cla:2 --prompt 128 --gen 16 ";
  expect_rejected(base + "--gpu tpu-v5", "--gpu = tpu-v5 is invalid: unknown GPU; known presets:");
  expect_rejected(base + "--gpu 'custom(80,2039)'",
                  "--gpu = custom(80,2039) is invalid: has 2 value(s), needs 3");
  expect_rejected(base + "--gpu 'custom(80,x,312)'",
                  "--gpu = custom(80,x,312) is invalid: bandwidth 'x' is not a number");
  expect_rejected(base + "--gpu 'custom(-1,2039,312)'", "memory = -1 must be in (0, ");
  expect_rejected("simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt -5 --gen 4",
                  "--prompt = -5 is invalid: must be an integer in [1, 10000000]");
  expect_rejected("simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt 5 --gen 0",
                  "--gen = 0 is invalid");
  expect_rejected(base + "--gpu h200 --batch 0", "--batch = 0 is invalid");
  expect_rejected(base + "--gpu h200 --batch 99999999999", "--batch");
  expect_rejected(base + "--gpu h200 --dtype f64", "--dtype = f64 is invalid");
  expect_rejected(base + "--gpu h200 --weight-dtype f64", "--weight-dtype = f64 is invalid");
  expect_rejected(base + "--gpu h200 --reserve 2", "--reserve = 2 is invalid");
  expect_rejected("simulate --model gpt-9 --plan cla:2 --gpu h200 --prompt 5 --gen 4",
                  "--model = gpt-9 is invalid: unknown preset");
  expect_rejected("simulate --model llama-2-7b --plan clx:2 --gpu h200 --prompt 5 --gen 4",
                  "plan = clx:2 is invalid: unknown generator");
  expect_rejected("simulate --model llama-2-7b --plan cla:2 --prompt 5 --gen 4", "--gpu");
}

TEST(CliDemo, RunsTheWholeTourOffline) {
  const RunResult r = run_kvlab("demo");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* marker :
       {"=== 1. ", "10,240 B", "5,120 B", "cyclic blocks [1, 20]", "largest batch",
        "passes run per block: 12", "logits vs token-by-token encoding", "plan 0_0_2_2_4_4",
        "tiny-lckv2", "plan 0_4_4_4_4_5", "task passkey", "policy streaming", "clusters",
        "That was the tour."}) {
    EXPECT_NE(r.output.find(marker), std::string::npos) << "missing: " << marker;
  }
  EXPECT_EQ(r.output.find("kvlab: error"), std::string::npos) << r.output;
}
