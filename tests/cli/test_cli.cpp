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
  // --ideal: the pure model (weights + K/V + 10 % reserve; roofline times).
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2 --ideal");
  EXPECT_EQ(j["gpu"]["name"], "a100-80gb");
  EXPECT_EQ(j["gpu"]["memory_bytes"], 85899345920LL);
  EXPECT_EQ(j["reserve_fraction"], 0.1);
  EXPECT_EQ(j["batch_requested"], nullptr);
  EXPECT_EQ(j["kv_dtype"], "f16");
  EXPECT_EQ(j["weight_dtype"], "f16");
  EXPECT_EQ(j["ideal"], true);
  EXPECT_EQ(j["activations"], nullptr);
  EXPECT_EQ(j["policy"]["name"], "full");
  EXPECT_EQ(j["kv_heads"], 32);
  EXPECT_EQ(j["window"], 4096);
  ASSERT_EQ(j["plans"].size(), 1u);
  const auto& p = j["plans"][0];
  const auto& s = j["standard"];
  EXPECT_EQ(p["spec"], "cla:2");
  EXPECT_EQ(s["spec"], "standard");
  EXPECT_EQ(s["weight_bytes"], 13476831232LL);
  EXPECT_EQ(p["kv_bytes_per_token"], 262144);
  EXPECT_EQ(s["kv_bytes_per_token"], 524288);
  EXPECT_EQ(s["kv_bytes_per_sequence"], 524288LL * 2304);
  EXPECT_EQ(s["sequence_bytes"], 524288LL * 2304);
  EXPECT_EQ(s["reserve_bytes"], 8589934592LL);
  EXPECT_EQ(s["max_batch"], 52);
  EXPECT_EQ(p["max_batch"], 107);
  EXPECT_EQ(p["batch"], 107);
  EXPECT_EQ(p["fits"], true);
  for (const char* k :
       {"weight_bytes_read_per_step", "kv_bytes_read_per_step_last", "flops_per_token_last",
        "step_time_mean_s", "tokens_per_s", "tokens_per_s_per_sequence", "bound"}) {
    EXPECT_TRUE(p["decode"].contains(k)) << k;
  }
  for (const char* k : {"layer_passes", "passes", "flops", "time_s", "time_per_sequence_s",
                        "token_by_token", "chunks"}) {
    EXPECT_TRUE(p["prefill"].contains(k)) << k;
  }
  const auto& r = p["ratio_to_standard"];
  EXPECT_EQ(r["per_sequence"]["kv_bytes_per_token"], 0.5);
  EXPECT_EQ(r["per_sequence"]["decode_kv_bytes_read_per_step"], 1.0);  // reads per reader
  EXPECT_NEAR(r["batch"]["max_batch"].get<double>(), 107.0 / 52, 1e-12);
  EXPECT_EQ(j["notes"], nlohmann::json::array());
}

TEST(CliSimulate, LckvPrefillPasses) {
  const auto j = simulate_json(
      "--model tinyllama-1.1b --plan lckv:2 --gpu h100 --prompt 1024 --gen 16 --batch 1");
  EXPECT_EQ(j["plans"][0]["prefill"]["passes"], 9);
  EXPECT_EQ(j["plans"][0]["prefill"]["layer_passes"], 182.0);
  EXPECT_EQ(j["standard"]["prefill"]["layer_passes"], 22.0);
  EXPECT_NEAR(
      j["plans"][0]["ratio_to_standard"]["per_sequence"]["prefill_layer_passes"].get<double>(),
      182.0 / 22, 1e-12);
  const auto t = simulate_json(
      "--model tinyllama-1.1b --plan lckv:2 --gpu h100 --prompt 5 --gen 16 --m 3 --b 2");
  EXPECT_EQ(t["plans"][0]["prefill"]["token_by_token"], true);
  EXPECT_EQ(t["m"], 3);
  EXPECT_EQ(t["plans"][0]["prefill"]["passes"], 5);
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
  EXPECT_EQ(j["plans"][0]["map"], "0_0_2_2");
}

TEST(CliSimulate, ActivationModelByDefault) {
  // Without --ideal the activation and efficiency models are on: the same workload fits fewer
  // sequences (prefill activations) and takes longer (achievable fractions of the peaks).
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2");
  const auto i = simulate_json(std::string(kLlama) + " --plan cla:2 --ideal");
  EXPECT_EQ(j["ideal"], false);
  EXPECT_EQ(j["activations"]["attention"], "flash");
  EXPECT_EQ(j["activations"]["logits"], "last");
  EXPECT_EQ(j["activations"]["logits_dtype"], "f32");
  EXPECT_EQ(j["activations"]["cache_growth"], "preallocated");
  EXPECT_EQ(j["efficiency"]["compute_max"], 0.70);
  const auto& s = j["standard"];
  EXPECT_GT(s["activation_bytes_per_sequence"].get<double>(), 0);
  EXPECT_LT(s["max_batch"].get<int>(), i["standard"]["max_batch"].get<int>());
  EXPECT_GT(
      s["prefill"]["time_s"].get<double>() / s["batch"].get<double>(),
      i["standard"]["prefill"]["time_s"].get<double>() / i["standard"]["batch"].get<double>());
  // Eager attention and all-position f32 logits (HF's defaults before 4.45) cost memory.
  const auto e = simulate_json(
      std::string(kLlama) + " --plan cla:2 --attention eager --logits all --cache-growth concat");
  // The eager scores, H · N · N · (2a + 4) = 1 GiB, outweigh the working set (161 MiB) 7 to 1.
  EXPECT_GT(e["standard"]["activation_bytes_per_sequence"].get<double>(),
            7 * s["activation_bytes_per_sequence"].get<double>());
  EXPECT_LT(e["standard"]["max_batch"].get<int>(), s["max_batch"].get<int>());
  // Chunked prefill shrinks them again.
  const auto c = simulate_json(std::string(kLlama) +
                               " --plan cla:2 --attention eager --logits all --prefill-chunk 256");
  EXPECT_LT(c["standard"]["activation_bytes_per_sequence"].get<double>(),
            e["standard"]["activation_bytes_per_sequence"].get<double>() / 4);
  EXPECT_EQ(c["standard"]["prefill"]["chunks"], 8);
}

TEST(CliSimulate, SeveralPlansSideBySide) {
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2 --plan lckv:2 --plan yoco");
  ASSERT_EQ(j["plans"].size(), 3u);
  EXPECT_EQ(j["plans"][0]["spec"], "cla:2");
  EXPECT_EQ(j["plans"][1]["spec"], "lckv:2");
  EXPECT_EQ(j["plans"][2]["spec"], "yoco");
  for (const auto& p : j["plans"]) {
    EXPECT_TRUE(p["ratio_to_standard"]["per_sequence"].contains("prefill_time_per_sequence"));
    EXPECT_TRUE(p["ratio_to_standard"]["batch"].contains("prefill_time"));
  }
  const RunResult r = run_kvlab("simulate " + std::string(kLlama) + " --plan cla:2 --plan lckv:2");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"plans cla:2, lckv:2 beside standard", "standard             cla:2",
                        "lckv:2", "per sequence", "whole batch", "ratio to standard, per sequence",
                        "ratio to standard, whole batch (each at its own batch)"}) {
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
}

TEST(CliSimulate, PerSequenceRatiosComparePlansAtDifferentBatches) {
  // Issue 17: lckv:2 runs a much larger batch than standard; the whole-batch prefill time ratio
  // mixes that in, the per-sequence one is the m + b passes' cost alone.
  const auto j = simulate_json(
      "--model tinyllama-1.1b --gpu a100-80gb --prompt 2048 --gen 256 --plan lckv:2 --ideal");
  const auto& p = j["plans"][0];
  const auto& s = j["standard"];
  ASSERT_GT(p["batch"].get<double>(), 5 * s["batch"].get<double>());
  const auto& r = p["ratio_to_standard"];
  const double per_seq = r["per_sequence"]["prefill_time_per_sequence"].get<double>();
  const double batch = r["batch"]["prefill_time"].get<double>();
  EXPECT_NEAR(per_seq, 182.0 / 22, 0.1 * 182.0 / 22);  // the layer passes
  EXPECT_NEAR(batch / per_seq, p["batch"].get<double>() / s["batch"].get<double>(), 1e-9);
  EXPECT_NEAR(per_seq,
              p["prefill"]["time_per_sequence_s"].get<double>() /
                  s["prefill"]["time_per_sequence_s"].get<double>(),
              1e-12);
}

TEST(CliSimulate, KvHeadsAndWindow) {
  const auto j = simulate_json(std::string(kLlama) + " --plan yoco --kv-heads 8 --window 1024");
  EXPECT_EQ(j["kv_heads"], 8);
  EXPECT_EQ(j["model"]["num_key_value_heads"], 8);
  EXPECT_EQ(j["window"], 1024);
  EXPECT_EQ(j["standard"]["kv_bytes_per_token"], 131072);  // 2 · 32 · 8 · 128 · 2
  const auto& y = j["plans"][0];
  EXPECT_EQ(y["window"], 1024);
  EXPECT_EQ(y["num_kv_layers"], 17);
  EXPECT_EQ(y["sliding_kv_layers"], 16);  // yoco: the lower half's banks slide
  // 16 sliding banks hold 1024 tokens, the one global bank 2304: per bank 2 · 8 · 128 · 2 B.
  EXPECT_EQ(y["kv_bytes_per_sequence"], (16LL * 1024 + 2304) * 4096);
  const auto w = simulate_json(std::string(kLlama) + " --plan yoco --window 4096");
  EXPECT_EQ(w["plans"][0]["kv_bytes_per_sequence"], 17LL * 2304 * 16384);  // window > context
  const RunResult r = run_kvlab("simulate " + std::string(kLlama) + " --plan yoco --window 1024");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"sliding layers attend to the last W = 1024 tokens (--window)",
                        "sliding banks (hold at most W = 1024)"}) {
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
}

TEST(CliSimulate, PolicyBudgetSimulatesEviction) {
  const std::string base =
      "--model llama-2-7b --gpu a100-80gb --prompt 1024 --gen 3072 --plan cla:2";
  const auto f = simulate_json(base);
  const auto h = simulate_json(base + " --policy h2o --budget 25%");
  EXPECT_EQ(h["policy"]["name"], "h2o");
  EXPECT_EQ(h["policy"]["budget"], 256);
  EXPECT_EQ(h["policy"]["budget_given"], "25%");
  EXPECT_EQ(h["policy"]["score_arrays"], 1);
  const auto& s = h["standard"];
  // Banks hold the prompt (1024) at the end of prefill, then at most 256 + the new token.
  EXPECT_EQ(s["kv_bytes_per_sequence"], 32LL * 1024 * 16384);
  EXPECT_EQ(s["decode"]["kv_bytes_read_per_step_last"], 32LL * 257 * 16384);
  EXPECT_EQ(s["policy_bytes_per_sequence"], 32LL * 1024 * 32 * 4);  // one float per cell, head
  EXPECT_GT(s["max_batch"].get<int>(), 2 * f["standard"]["max_batch"].get<int>());
  EXPECT_LT(s["decode"]["step_time_mean_s"].get<double>(),
            f["standard"]["decode"]["step_time_mean_s"].get<double>());
  const auto w = simulate_json(base + " --policy window:64");
  EXPECT_EQ(w["policy"]["budget"], 64);
  const auto t = simulate_json(base + " --policy streaming --budget 100");
  EXPECT_EQ(t["policy"]["name"], "streaming:4");
  EXPECT_EQ(t["policy"]["score_arrays"], 0);
  const RunResult r = run_kvlab("simulate " + base + " --policy h2o --budget 256");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("policy    h2o, budget 256 = 256 tokens per bank"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("H2O score arrays per sequence"), std::string::npos) << r.output;
}

TEST(CliSimulate, PublishedSetupsOfTheDocs) {
  // docs/simulator.md, "Simulator vs published": the LCKV paper's A100 row (Table 1: Llama 7B,
  // 2048 + 2048, largest batches 15 / 128 / 42) with HF's settings, and the CLA paper's bytes.
  const auto j = simulate_json(
      "--model llama-2-7b --plan lckv:2 --plan lckv:10 --gpu a100-80gb --dtype bf16 --prompt 2048 "
      "--gen 2048 --attention flash --logits all --cache-growth concat");
  EXPECT_EQ(j["standard"]["max_batch"], 14);
  EXPECT_EQ(j["plans"][0]["max_batch"], 128);
  EXPECT_EQ(j["plans"][1]["max_batch"], 44);
  const auto i = simulate_json(
      "--model llama-2-7b --plan lckv:2 --gpu a100-80gb --dtype bf16 --prompt 2048 --gen 2048 "
      "--ideal");
  EXPECT_EQ(i["standard"]["max_batch"], 29);  // K/V only: twice the paper's
  const auto c = simulate_json(
      "--model cla-1b --plan cla:2 --plan cla:3 --plan cla:4 --gpu a100-80gb --prompt 512 "
      "--gen 16");
  EXPECT_EQ(c["standard"]["kv_bytes_per_token"], 10240);
  EXPECT_EQ(c["plans"][0]["kv_bytes_per_token"], 5120);
  EXPECT_EQ(c["plans"][1]["kv_bytes_per_token"], 3584);
  EXPECT_EQ(c["plans"][2]["kv_bytes_per_token"], 2560);
}

TEST(CliSimulate, HumanReportSideBySide) {
  const RunResult r = run_kvlab("simulate " + std::string(kLlama) + " --plan cla:2 --ideal");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s :
       {"reserve 10% (8.00 GiB)", "standard             cla:2", "largest batch that fits",
        "KV read per decode step (last)", "time per generated token (a step)",
        "prefill layer passes", "fits 2.058 x the batch", "--ideal: the pure roofline"}) {
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
}

TEST(CliSimulate, BatchThatDoesNotFitIsStated) {
  const RunResult r =
      run_kvlab("simulate " + std::string(kLlama) + " --plan cla:2 --batch 500 --ideal");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cla:2: batch 500 does not fit: it needs"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the largest batch that fits is 107"), std::string::npos) << r.output;
  const auto j = simulate_json(std::string(kLlama) + " --plan cla:2 --batch 80");
  EXPECT_EQ(j["plans"][0]["fits"], true);
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
  expect_rejected(base + "--gpu h200 --kv-heads 5",
                  "--kv-heads = 5 is invalid: must divide the model's num_attention_heads = 32");
  expect_rejected(base + "--gpu h200 --window 0", "--window = 0 is invalid");
  expect_rejected(base + "--gpu h200 --budget 64",
                  "--budget = 64 is invalid: policy full keeps every token");
  expect_rejected(base + "--gpu h200 --policy h2o", "--budget = (none) is invalid: h2o");
  expect_rejected(base + "--gpu h200 --policy h2o --budget 0.25", "for this fraction write 25%");
  expect_rejected(base + "--gpu h200 --policy streaming:8 --budget 8", "--budget = 8 tokens");
  expect_rejected(base + "--gpu h200 --policy window:64 --budget 32",
                  "window:64 already sets the budget");
  expect_rejected(base + "--gpu h200 --policy lru --budget 32", "--policy = lru is invalid");
  expect_rejected(base + "--gpu h200 --attention sdpa",
                  "--attention = sdpa is invalid: must be one of flash, eager");
  expect_rejected(base + "--gpu h200 --logits some", "--logits = some is invalid");
  expect_rejected(base + "--gpu h200 --logits-dtype int8", "--logits-dtype = int8 is invalid");
  expect_rejected(base + "--gpu h200 --cache-growth paged", "--cache-growth = paged is invalid");
  expect_rejected(base + "--gpu h200 --prefill-chunk -4", "--prefill-chunk = -4 is invalid");
  expect_rejected(
      "simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt 1000000 --gen 1 "
      "--prefill-chunk 1",
      "--prefill-chunk = 1 is invalid: gives 1000000 prefill steps");
  expect_rejected(base + "--gpu h200 --overhead 200", "--overhead = 200 is invalid");
  expect_rejected(base + "--gpu h200 --ideal --attention eager",
                  "--attention = eager is invalid: --ideal drops the activation");
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
