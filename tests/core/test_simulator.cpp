// The analytic simulator (docs/simulator.md): figures checked against hand computations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/simulator.hpp"

using namespace kvlab;

namespace {

constexpr std::int64_t GiB = 1024LL * 1024 * 1024;

Simulation sim(const std::string& model, const std::string& spec, const std::string& gpu,
               int prompt, int gen, std::optional<std::int64_t> batch = std::nullopt,
               Dtype dtype = Dtype::f16, bool ideal = true) {
  const ModelConfig& c = find_model_preset(model).config;
  SimOptions o;
  o.ideal = ideal;  // the pure model these hand computations follow
  o.prompt = prompt;
  o.gen = gen;
  o.batch = batch;
  o.kv_dtype = dtype;
  o.weight_dtype = dtype;
  return simulate(c, KvPlan::parse(spec, c.num_hidden_layers), spec, parse_gpu(gpu), o);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(GpuPresets, DatasheetFigures) {
  ASSERT_EQ(gpu_presets().size(), 7u);
  const GpuSpec a = parse_gpu("a100-80gb");
  EXPECT_EQ(a.memory_gib, 80);
  EXPECT_EQ(a.bandwidth_gb_s, 2039);
  EXPECT_EQ(a.tflops, 312);
  EXPECT_EQ(a.memory_bytes(), 80 * GiB);
  EXPECT_EQ(parse_gpu("a100-40gb").bandwidth_gb_s, 1555);
  EXPECT_EQ(parse_gpu("h100-80gb-sxm").bandwidth_gb_s, 3350);
  EXPECT_EQ(parse_gpu("h100-80gb-sxm").tflops, 989);
  EXPECT_EQ(parse_gpu("h200").memory_gib, 141);
  EXPECT_EQ(parse_gpu("h200").bandwidth_gb_s, 4800);
  EXPECT_EQ(parse_gpu("l40s").tflops, 362.05);
  EXPECT_EQ(parse_gpu("rtx-3090").bandwidth_gb_s, 936);
  EXPECT_EQ(parse_gpu("rtx-4090").tflops, 165.2);
  // Spelling is forgiving: case, spaces, '-' and '_' are ignored; a few aliases.
  EXPECT_EQ(parse_gpu("A100 80GB").name, "a100-80gb");
  EXPECT_EQ(parse_gpu("H100").name, "h100-80gb-sxm");
  EXPECT_EQ(parse_gpu("RTX_4090").name, "rtx-4090");
}

TEST(GpuPresets, Custom) {
  const GpuSpec g = parse_gpu("custom(80,2039,312)");
  EXPECT_EQ(g.name, "custom");
  EXPECT_EQ(g.memory_bytes(), 80 * GiB);         // GiB
  EXPECT_EQ(g.bandwidth_bytes_per_s(), 2039e9);  // GB/s
  EXPECT_EQ(g.flops_per_s(), 312e12);            // TFLOPS
  const GpuSpec h = parse_gpu(" custom( 24 , 936.5, 71 ) ");
  EXPECT_EQ(h.bandwidth_gb_s, 936.5);
}

TEST(GpuPresets, BadValuesAreNamed) {
  EXPECT_NE(error_of([] {
              parse_gpu("tpu-v5");
            }).find("--gpu = tpu-v5 is invalid: unknown GPU; known presets: a100-40gb"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_gpu("custom(80,2039)");
            }).find("--gpu = custom(80,2039) is invalid: has 2 value(s), needs 3"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_gpu("custom(80,-5,312)");
            }).find("--gpu = custom(80,-5,312) is invalid: bandwidth = -5 must be in (0, "),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse_gpu("custom(80,fast,312)"); }).find("bandwidth 'fast' is not a number"),
      std::string::npos);
  EXPECT_NE(error_of([] { parse_gpu("custom(0,1,1)"); }).find("memory = 0 must be in"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_gpu("custom(1,1,1e9)"); }).find("TFLOPS = 1e9 must be in"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_gpu("custom 80,1,1"); }).find("custom(MEM,BANDWIDTH,TFLOPS)"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_gpu("custom(80,1,1"); }).find("custom(MEM,BANDWIDTH,TFLOPS)"),
            std::string::npos);
}

TEST(Simulator, Llama2_7bWeightsAndKvBytes) {
  const Simulation s = sim("llama-2-7b", "cla:2", "a100-80gb", 2048, 256);
  // V·C embedding + classifier, 32 layers of 4·C² attention + 3·C·F MLP + 2·C norms, final norm.
  const std::int64_t params =
      2LL * 32000 * 4096 + 32LL * (4LL * 4096 * 4096 + 3LL * 4096 * 11008 + 2 * 4096) + 4096;
  EXPECT_EQ(params, 6738415616LL);
  EXPECT_EQ(s.standard.weight_params, params);
  EXPECT_EQ(s.standard.weight_bytes, 13476831232LL);  // ≈ 13.48 GB in f16
  // cla:2 keeps W_K, W_V in 16 of 32 layers.
  EXPECT_EQ(s.plans[0].weight_params, params - 16LL * 2 * 4096 * 4096);
  EXPECT_EQ(s.plans[0].num_kv_layers, 16);
  // KV: 2 · 32 layers · 32 heads · 128 · 2 bytes per token; 2304 tokens per sequence.
  EXPECT_EQ(s.standard.kv_bytes_per_token, 524288);
  EXPECT_EQ(s.plans[0].kv_bytes_per_token, 262144);
  EXPECT_EQ(s.standard.kv_bytes_per_sequence, 524288LL * 2304);
  EXPECT_EQ(s.plans[0].kv_bytes_per_sequence, 262144LL * 2304);
}

TEST(Simulator, BatchFormula) {
  const Simulation s = sim("llama-2-7b", "cla:2", "a100-80gb", 2048, 256);
  const PlanSimulation& q = s.standard;
  EXPECT_EQ(q.memory_bytes, 80 * GiB);
  EXPECT_EQ(q.reserve_bytes, 8 * GiB);  // 10 %
  EXPECT_EQ(q.kv_budget_bytes, 80 * GiB - 8 * GiB - 13476831232LL);
  // (85899345920 - 8589934592 - 13476831232) / 1207959552 = 52.84
  EXPECT_EQ(q.max_batch, 52);
  EXPECT_EQ(q.batch, 52);
  EXPECT_TRUE(q.fits);
  EXPECT_EQ(q.memory_used_bytes, 13476831232LL + 52 * 1207959552LL + 8 * GiB);
  EXPECT_LE(q.memory_used_bytes, q.memory_bytes);
  EXPECT_GT(q.memory_used_bytes + q.kv_bytes_per_sequence, q.memory_bytes);  // 53 would not fit
  // cla:2: smaller weights, half the K/V: (80 - 8 GiB - 12403089408) / 603979776 = 107.46
  EXPECT_EQ(s.plans[0].max_batch, 107);
  EXPECT_EQ(max_batch_that_fits(100, 10, 50, 20), 2);
  EXPECT_EQ(max_batch_that_fits(100, 10, 95, 20), 0);

  // A requested batch runs both plans at it; the one that does not fit says so.
  const Simulation t = sim("llama-2-7b", "cla:2", "a100-80gb", 2048, 256, 80);
  EXPECT_EQ(t.plans[0].batch, 80);
  EXPECT_TRUE(t.plans[0].fits);
  EXPECT_EQ(t.standard.batch, 80);
  EXPECT_FALSE(t.standard.fits);
  ASSERT_EQ(t.notes.size(), 1u);
  EXPECT_NE(t.notes[0].find("standard: batch 80 does not fit"), std::string::npos) << t.notes[0];
  EXPECT_NE(t.notes[0].find("the largest batch that fits is 52"), std::string::npos);
}

TEST(Simulator, WeightsThatDoNotFit) {
  const Simulation s = sim("llama-2-70b", "standard", "rtx-3090", 512, 16);
  EXPECT_LT(s.plans[0].kv_budget_bytes, 0);
  EXPECT_EQ(s.plans[0].max_batch, 0);
  EXPECT_FALSE(s.plans[0].fits);
  EXPECT_EQ(s.plans[0].batch, 1);  // the times are still shown, for one sequence
  ASSERT_FALSE(s.notes.empty());
  EXPECT_NE(s.notes[0].find("standard: does not fit: the weights"), std::string::npos)
      << s.notes[0];
}

TEST(Simulator, RooflineDecodeStep) {
  const GpuSpec g = parse_gpu("a100-80gb");
  EXPECT_DOUBLE_EQ(roofline_time_s(2039e9, 1.0, g), 1.0);     // memory bound
  EXPECT_DOUBLE_EQ(roofline_time_s(1.0, 624e12, g), 2.0);     // compute bound
  EXPECT_DOUBLE_EQ(roofline_time_s(2039e9, 312e12, g), 1.0);  // balanced

  // One sequence of Llama-2-7B: the first decode step is at context 2049.
  const Simulation s = sim("llama-2-7b", "standard", "a100-80gb", 2048, 256, 1);
  const DecodeFigures& d = s.plans[0].decode;
  // All weights but the untied input embedding are read every step.
  EXPECT_EQ(d.weight_bytes_read_per_step, (6738415616LL - 32000LL * 4096) * 2);
  EXPECT_EQ(d.kv_bytes_read_per_step_first, 524288LL * 2049);
  EXPECT_EQ(d.kv_bytes_read_per_step_last, 524288LL * 2304);
  // FLOPs: 2 · (32 · (4C² + 3CF) + V·C) + 32 layers · 4 · H · D · t.
  const double matmul = 32.0 * (4.0 * 4096 * 4096 + 3.0 * 4096 * 11008) + 32000.0 * 4096;
  const double flops_first = 2 * matmul + 32 * 4.0 * 32 * 128 * 2049;
  EXPECT_DOUBLE_EQ(d.flops_per_token_first, flops_first);
  const double bytes_first =
      static_cast<double>(d.weight_bytes_read_per_step + d.kv_bytes_read_per_step_first);
  const double expected_first = std::max(bytes_first / 2039e9, flops_first / 312e12);
  EXPECT_DOUBLE_EQ(d.step_time_first_s, expected_first);
  EXPECT_TRUE(d.memory_bound);  // batch 1 decode is memory bound
  EXPECT_NEAR(d.step_time_first_s, bytes_first / 2039e9, 1e-15);
  // The mean step lies between the first and the last; tokens/s follow from the total.
  EXPECT_GT(d.step_time_mean_s, d.step_time_first_s);
  EXPECT_LT(d.step_time_mean_s, d.step_time_last_s);
  EXPECT_DOUBLE_EQ(d.time_s, d.step_time_mean_s * 256);
  EXPECT_DOUBLE_EQ(d.tokens_per_s, 256 / d.time_s);
  EXPECT_DOUBLE_EQ(d.time_s, std::max(d.memory_time_s, d.compute_time_s));  // one regime here

  // A big batch of short sequences on a small model is compute bound.
  const Simulation c = sim("stories15m", "standard", "rtx-3090", 16, 16, 100000);
  EXPECT_FALSE(c.plans[0].decode.memory_bound);
}

TEST(Simulator, ClaDoesNotReduceKvReadPerDecodeStep) {
  // techniques.md §7: sharing shrinks the cache, not the reads; every reader reads its bank.
  const Simulation s = sim("llama-2-7b", "cla:2", "a100-80gb", 2048, 256, 8);
  EXPECT_EQ(s.plans[0].kv_bytes_per_token * 2, s.standard.kv_bytes_per_token);
  EXPECT_EQ(s.plans[0].decode.kv_bytes_read_per_step_last,
            s.standard.decode.kv_bytes_read_per_step_last);
  EXPECT_EQ(s.plans[0].decode.kv_bytes_read_per_step_first,
            s.standard.decode.kv_bytes_read_per_step_first);
  // Only the weights read differ (no W_K, W_V in 16 layers).
  EXPECT_EQ(
      s.standard.decode.weight_bytes_read_per_step - s.plans[0].decode.weight_bytes_read_per_step,
      16LL * 2 * 4096 * 4096 * 2);
  const Simulation l = sim("tinyllama-1.1b", "lckv:2", "a100-80gb", 1024, 64, 4);
  EXPECT_EQ(l.plans[0].decode.kv_bytes_read_per_step_last,
            l.standard.decode.kv_bytes_read_per_step_last);
}

TEST(Simulator, DecodeBytesMatchAccountingWithSlidingLayers) {
  ModelConfig c = find_model_preset("stories15m").config;  // 6 layers
  c.sliding_window = 100;
  const KvPlan yoco = KvPlan::parse("yoco", 6);  // 0s 1s 2s 3 3 3
  SimOptions o;
  o.prompt = 500;
  o.gen = 1;
  o.batch = 3;
  o.ideal = true;
  const Simulation s = simulate(c, yoco, "yoco", parse_gpu("h200"), o);
  const auto kv = kv_bytes_read_per_step(yoco, c, 501, Dtype::f16);
  EXPECT_EQ(s.plans[0].decode.kv_bytes_read_per_step_first, kv);
  EXPECT_DOUBLE_EQ(s.plans[0].decode.bytes_per_step_mean,
                   static_cast<double>(s.plans[0].decode.weight_bytes_read_per_step + 3 * kv));
  EXPECT_DOUBLE_EQ(s.plans[0].decode.flops_per_step_mean, 3 * decode_flops_per_token(c, yoco, 501));
  // Sliding layers see at most the window: 3 · 100 + 3 · 501 keys.
  const double matmul = 2.0 * (32000.0 * 288 + 3 * layer_matmul_params(c, yoco, 0) +
                               3 * layer_matmul_params(c, yoco, 4)) +
                        2.0 * 2 * 288 * 288;  // layer 3 is the KV layer: W_K, W_V
  EXPECT_DOUBLE_EQ(decode_flops_per_token(c, yoco, 501),
                   matmul + attention_flops(c, 3 * 100 + 3 * 501));
  EXPECT_EQ(s.plans[0].kv_bytes_per_sequence, kv_sequence_bytes(yoco, c, 501, Dtype::f16));
}

TEST(Simulator, LckvPrefillCostsThePredictedLayerPasses) {
  // TinyLlama lckv:2: layers 1..20 form the cyclic block, run m + b = 9 times:
  // 1 + 20·9 + 1 = 182 layer passes against 22.
  const Simulation s = sim("tinyllama-1.1b", "lckv:2", "h100-80gb-sxm", 2048, 16, 1);
  EXPECT_TRUE(s.plans[0].prefill.iterative);
  EXPECT_FALSE(s.plans[0].prefill.token_by_token);
  EXPECT_EQ(s.plans[0].prefill.passes, 9);
  EXPECT_EQ(s.plans[0].prefill.layer_passes, 182);
  EXPECT_EQ(s.standard.prefill.layer_passes, 22);
  EXPECT_FALSE(s.standard.prefill.iterative);
  const double predicted = 182.0 / 22.0;
  // Layers differ slightly (readers have no W_K, W_V; upward layers see one key less), so the
  // FLOPs and time ratios match the layer-pass ratio to within a few percent.
  const double flops_ratio = s.plans[0].prefill.flops / s.standard.prefill.flops;
  const double time_ratio = s.plans[0].prefill.time_s / s.standard.prefill.time_s;
  EXPECT_NEAR(flops_ratio, predicted, 0.05 * predicted);
  EXPECT_NEAR(time_ratio, predicted, 0.05 * predicted);
  EXPECT_LT(flops_ratio, predicted);  // the readers' missing W_K, W_V make it a bit cheaper

  // Standard prefill FLOPs by hand: Σ_l 2·N·P_l + 4·H·D·N(N+1)/2, plus the last-token classifier.
  const ModelConfig& c = find_model_preset("tinyllama-1.1b").config;
  const double n = 2048;
  const double p_layer = 2.0 * 2048 * 2048 + 3.0 * 2048 * 5632 + 2.0 * 2048 * 256;
  const double expected =
      22 * (2 * n * p_layer + 4.0 * 32 * 64 * n * (n + 1) / 2) + 2.0 * 32000 * 2048;
  EXPECT_DOUBLE_EQ(s.standard.prefill.flops, expected);
  EXPECT_EQ(c.hidden_size, 2048);
}

TEST(Simulator, ShortPromptsOfUpwardPlansAreTokenByToken) {
  // A 5-token prompt (<= m + b = 9) runs the block as 5 sequential decode-like steps, each reading
  // the block's weights again: memory bound, so about 5x the standard cost for the block.
  const Simulation s = sim("tinyllama-1.1b", "lckv:2", "a100-80gb", 5, 8, 1);
  EXPECT_TRUE(s.plans[0].prefill.token_by_token);
  EXPECT_EQ(s.plans[0].prefill.passes, 5);
  EXPECT_EQ(s.plans[0].prefill.layer_passes, 22);  // each token crosses the block once
  EXPECT_GT(s.plans[0].prefill.time_s, 3.5 * s.standard.prefill.time_s);
  EXPECT_LT(s.plans[0].prefill.time_s, 5.0 * s.standard.prefill.time_s);
  bool noted = false;
  for (const auto& n : s.notes) noted |= n.find("token by token") != std::string::npos;
  EXPECT_TRUE(noted);
  // Same FLOPs as one parallel pass, within the one-key-less difference of upward layers.
  EXPECT_NEAR(s.plans[0].prefill.flops_per_sequence, s.standard.prefill.flops_per_sequence,
              0.05 * s.standard.prefill.flops_per_sequence);
}

TEST(Simulator, WeightDtypeIsSeparate) {
  const ModelConfig& c = find_model_preset("llama-2-7b").config;
  SimOptions o;
  o.prompt = 100;
  o.gen = 10;
  o.kv_dtype = Dtype::fp8;
  o.weight_dtype = Dtype::bf16;
  const Simulation s = simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("h100"), o);
  EXPECT_EQ(s.plans[0].weight_bytes, 6738415616LL * 2);
  EXPECT_EQ(s.plans[0].kv_bytes_per_token, 262144);
}

TEST(Simulator, BadOptionsAreNamed) {
  const ModelConfig& c = find_model_preset("stories15m").config;
  const KvPlan plan = KvPlan::parse("standard", c.num_hidden_layers);
  const GpuSpec g = parse_gpu("l40s");
  auto err = [&](SimOptions o) { return error_of([&] { simulate(c, plan, "standard", g, o); }); };
  SimOptions ok;
  ok.prompt = 10;
  ok.gen = 10;
  SimOptions o = ok;
  o.prompt = -3;
  EXPECT_NE(err(o).find("--prompt = -3 is invalid: must be an integer in [1, 10000000]"),
            std::string::npos);
  o = ok;
  o.gen = 0;
  EXPECT_NE(err(o).find("--gen = 0 is invalid"), std::string::npos);
  o = ok;
  o.batch = 0;
  EXPECT_NE(err(o).find("--batch = 0 is invalid"), std::string::npos);
  o = ok;
  o.m = -1;
  EXPECT_NE(err(o).find("--m = -1 is invalid"), std::string::npos);
  o = ok;
  o.m = 0;
  o.b = 0;
  EXPECT_NE(err(o).find("--m + --b = 0 is invalid"), std::string::npos);
  o = ok;
  o.reserve_fraction = 0.95;
  EXPECT_NE(err(o).find("--reserve = 0.95 is invalid"), std::string::npos);
  EXPECT_NE(error_of([&] {
              simulate(c, KvPlan::parse("standard", 4), "standard", g, ok);
            }).find("--plan = standard is invalid: has 4 layers; the model has 6"),
            std::string::npos);
}

// ---- issue 17: several plans, --kv-heads, --window, policies with a budget.

TEST(Simulator, SeveralPlansInOrderBesideStandard) {
  const ModelConfig& c = find_model_preset("tinyllama-1.1b").config;
  SimOptions o;
  o.prompt = 512;
  o.gen = 64;
  const Simulation s =
      simulate(c, {{KvPlan::parse("cla:2", 22), "cla:2"}, {KvPlan::parse("lckv:2", 22), "lckv:2"}},
               parse_gpu("a100-80gb"), o);
  ASSERT_EQ(s.plans.size(), 2u);
  EXPECT_EQ(s.plans[0].spec, "cla:2");
  EXPECT_EQ(s.plans[1].spec, "lckv:2");
  EXPECT_EQ(s.standard.spec, "standard");
  // Each plan is simulated as on its own.
  const Simulation one =
      simulate(c, KvPlan::parse("lckv:2", 22), "lckv:2", parse_gpu("a100-80gb"), o);
  EXPECT_EQ(one.plans[0].max_batch, s.plans[1].max_batch);
  EXPECT_DOUBLE_EQ(one.plans[0].total_time_s, s.plans[1].total_time_s);
  EXPECT_EQ(error_of([&] { simulate(c, {}, parse_gpu("a100-80gb"), o); }).find("--plan"), 0u);
}

TEST(Simulator, KvHeadsAndWindowOverrideTheModel) {
  const ModelConfig& c = find_model_preset("llama-2-7b").config;
  SimOptions o;
  o.prompt = 2048;
  o.gen = 256;
  o.ideal = true;
  o.kv_heads = 8;
  o.window = 512;
  const Simulation s = simulate(c, KvPlan::parse("yoco", 32), "yoco", parse_gpu("h100"), o);
  EXPECT_EQ(s.config.num_key_value_heads, 8);
  EXPECT_EQ(s.config.sliding_window, 512);
  EXPECT_EQ(s.standard.kv_bytes_per_token, 2LL * 32 * 8 * 128 * 2);
  EXPECT_EQ(s.plans[0].window, 512);
  EXPECT_EQ(s.plans[0].kv_bytes_per_sequence,
            kv_sequence_bytes(KvPlan::parse("yoco", 32), s.config, 2304, Dtype::f16));
  o.kv_heads = 3;
  EXPECT_NE(error_of([&] {
              simulate(c, KvPlan::parse("yoco", 32), "yoco", parse_gpu("h100"), o);
            }).find("--kv-heads = 3 is invalid: must divide the model's num_attention_heads = 32"),
            std::string::npos);
  o.kv_heads.reset();
  o.window = 0;
  EXPECT_NE(error_of([&] {
              simulate(c, KvPlan::parse("yoco", 32), "yoco", parse_gpu("h100"), o);
            }).find("--window = 0 is invalid"),
            std::string::npos);
}

TEST(Simulator, PolicyBudgetCapsWhatBanksHoldAndRead) {
  // h2o with a budget of 256 tokens, prompt 1024, 3072 decode steps (techniques.md §5): the
  // prompt is held whole until the prefill ends, then a bank keeps 256 between steps and reads
  // 256 + the new token.
  const ModelConfig& c = find_model_preset("llama-2-7b").config;
  SimOptions o;
  o.prompt = 1024;
  o.gen = 3072;
  o.batch = 4;
  o.ideal = true;
  o.policy.name = "h2o";
  o.policy.budget_text = "25%";
  o.policy.budget = 256;
  o.policy.score_arrays = 1;
  const Simulation s =
      simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("a100-80gb"), o);
  const PlanSimulation& p = s.plans[0];
  const std::int64_t bank = 2LL * 32 * 128 * 2;  // one token in one bank
  EXPECT_EQ(p.kv_bytes_per_sequence, 32 * 1024 * bank);
  EXPECT_EQ(p.policy_bytes_per_sequence, 32LL * 1024 * 32 * 4);  // a float per cell and KV head
  EXPECT_EQ(p.sequence_bytes, p.kv_bytes_per_sequence + p.policy_bytes_per_sequence);
  EXPECT_EQ(p.decode.kv_bytes_read_per_step_first, 32 * 257 * bank);
  EXPECT_EQ(p.decode.kv_bytes_read_per_step_last, 32 * 257 * bank);
  const double matmul = 32.0 * (4.0 * 4096 * 4096 + 3.0 * 4096 * 11008) + 32000.0 * 4096;
  EXPECT_DOUBLE_EQ(p.decode.flops_per_token_last, 2 * matmul + 4.0 * 32 * 128 * (32 * 257));
  // A budget larger than the sequence changes nothing (and says so).
  o.policy.budget = 5000;
  const Simulation big =
      simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("a100-80gb"), o);
  EXPECT_EQ(big.plans[0].decode.kv_bytes_read_per_step_last, 4096 * 32 * bank);
  bool noted = false;
  for (const auto& n : big.notes) noted |= n.find("this budget never evicts") != std::string::npos;
  EXPECT_TRUE(noted);
}

// ---- issue 16: the activation model and the efficiency model.

TEST(ActivationModel, EachTermOnAHandCheckedCase) {
  const ModelConfig& c = find_model_preset("llama-2-7b").config;  // C 4096, H 32, D 128, F 11008
  // Working set: 2048 tokens · 2 B · (2C + max(2·H·D + 2·H_kv·D, 3F)) = 4096 · (8192 + 33024),
  // plus the flash log-sum-exp (H · tokens · 4) or the eager scores (H · tokens · keys · (2a+4)).
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c, 2048, 2048, 2, AttentionImpl::flash), 169082880.0);
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c, 2048, 2048, 2, AttentionImpl::eager), 1242562560.0);
  // Logits of every position in f32 (the 16-bit product and its upcast live together) plus the
  // final hidden states: 2048 · 32000 · (4 + 2) + 2048 · 4096 · 2.
  EXPECT_DOUBLE_EQ(logits_activation_bytes(c, 2048, 2048, 2, Dtype::f32), 409993216.0);
  EXPECT_DOUBLE_EQ(logits_activation_bytes(c, 2048, 2048, 2, Dtype::f16), 147849216.0);
  EXPECT_DOUBLE_EQ(logits_activation_bytes(c, 1, 1, 2, Dtype::f32), 32000.0 * 6 + 4096 * 2);
}

TEST(ActivationModel, BatchFormulaWithActivations) {
  // Llama-2-7B, 2048 + 256, default activation model (flash, last-position f32 logits, one
  // prefill chunk, preallocated cache). Per sequence:
  //   prefill peak = 2048 · 524288 (K/V of the prompt) + 169082880 (a layer's working set)
  //   decode peak  = 2304 · 524288 + 200192 (the last step's logits)
  // and a sequence costs the larger: 1242824704 B. (80 − 8 GiB − 13476831232) / that = 51.36.
  const Simulation s = sim("llama-2-7b", "standard", "a100-80gb", 2048, 256, std::nullopt,
                           Dtype::f16, /*ideal=*/false);
  const PlanSimulation& q = s.standard;
  EXPECT_EQ(q.activation_bytes_per_sequence, 169082880);
  EXPECT_EQ(q.sequence_bytes, 1242824704);
  EXPECT_EQ(q.max_batch, 51);
  EXPECT_EQ(q.memory_used_bytes, 13476831232LL + 51 * 1242824704LL + 8 * GiB);
  // The ideal model of before: K/V only.
  EXPECT_EQ(sim("llama-2-7b", "standard", "a100-80gb", 2048, 256).standard.max_batch, 52);

  // HF's tuple cache grows by concatenation: the last step holds 2303 + 2304 tokens.
  const ModelConfig& c = find_model_preset("llama-2-7b").config;
  SimOptions o;
  o.prompt = 2048;
  o.gen = 256;
  o.activations.cache_growth = CacheGrowth::concat;
  const Simulation k =
      simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("a100-80gb"), o);
  EXPECT_EQ(k.standard.sequence_bytes, 4607LL * 524288 + 200192);
  // A framework overhead is a fixed term.
  o.activations.overhead_gib = 2;
  const Simulation v =
      simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("a100-80gb"), o);
  EXPECT_EQ(v.standard.overhead_bytes, 2 * GiB);
  EXPECT_EQ(v.standard.max_batch,
            (80 * GiB - 8 * GiB - 2 * GiB - 13476831232LL) / (4607LL * 524288 + 200192));
  // Chunked prefill: the working set of 256 tokens instead of 2048.
  o = SimOptions{};
  o.prompt = 2048;
  o.gen = 256;
  o.activations.prefill_chunk = 256;
  const Simulation ch =
      simulate(c, KvPlan::parse("standard", 32), "standard", parse_gpu("a100-80gb"), o);
  EXPECT_EQ(ch.standard.activation_bytes_per_sequence,
            std::llround(layer_activation_bytes(c, 256, 2048, 2, AttentionImpl::flash)));
  EXPECT_EQ(ch.standard.prefill.chunks, 8);
  EXPECT_NEAR(ch.standard.prefill.flops_per_sequence, s.standard.prefill.flops_per_sequence,
              1e-12 * s.standard.prefill.flops_per_sequence);
}

TEST(Efficiency, FractionsAreMonotoneInSizeAndWithinZeroOne) {
  const EfficiencyModel e;
  EXPECT_GT(e.compute_max, 0);
  EXPECT_LE(e.compute_max, 1);
  EXPECT_GT(e.memory_max, 0);
  EXPECT_LE(e.memory_max, 1);
  for (const char* name : {"a100-80gb", "h100", "rtx-3090", "custom(1,1,1)"}) {
    const GpuSpec g = parse_gpu(name);
    double prev_c = 0, prev_b = 0;
    for (double s = 1; s < 1e20; s *= 1.7) {
      const double c = compute_efficiency(s, g, e), b = bandwidth_efficiency(s, g, e);
      // Strictly rising until float64 rounds the fraction to its ceiling, never falling.
      EXPECT_GE(c, prev_c) << name << " " << s;
      EXPECT_GE(b, prev_b) << name << " " << s;
      if (c < e.compute_max * (1 - 1e-9)) {
        EXPECT_GT(c, prev_c) << name << " " << s;
      }
      if (b < e.memory_max * (1 - 1e-9)) {
        EXPECT_GT(b, prev_b) << name << " " << s;
      }
      EXPECT_LE(c, e.compute_max);
      EXPECT_LE(b, e.memory_max);
      prev_c = c;
      prev_b = b;
    }
    EXPECT_NEAR(compute_efficiency(1e21, g, e), e.compute_max, 1e-3) << name;
  }
  // Hand check on the A100: a 4096³ GEMM (2 · 4096³ FLOPs) against the half-way size
  // latency · max · peak = 9.5 µs · 0.70 · 312e12 = 2.0748e9 FLOPs.
  const GpuSpec a = parse_gpu("a100-80gb");
  EXPECT_NEAR(compute_efficiency(2.0 * 4096 * 4096 * 4096, a, e), 0.6895898435540874, 1e-15);
  // 1 GB moved: 1e9 / (2039e9 · 0.84) + 7 µs.
  EXPECT_NEAR(op_time_s(1e9, 0, a, e), 0.0005908529624699316, 1e-18);
  // An operation takes its roofline time at the achievable fraction: bytes/(BW·e), FLOPs/(PEAK·e).
  const double f = 1e12, bytes = 1e8;
  EXPECT_NEAR(op_time_s(bytes, f, a, e),
              std::max(bytes / (a.bandwidth_bytes_per_s() * bandwidth_efficiency(bytes, a, e)),
                       f / (a.flops_per_s() * compute_efficiency(f, a, e))),
              1e-15);
}

TEST(Efficiency, IdealIsTheOldRooflineExactly) {
  // --ideal: one roofline per decode step and per layer pass, as before the efficiency model.
  const ModelConfig& c = find_model_preset("stories15m").config;
  const GpuSpec g = parse_gpu("l40s");
  const int N = 100, G = 20, B = 3;
  SimOptions o;
  o.prompt = N;
  o.gen = G;
  o.batch = B;
  o.ideal = true;
  const KvPlan plan = KvPlan::parse("standard", c.num_hidden_layers);
  const Simulation s = simulate(c, plan, "standard", g, o);
  const double bw = g.bandwidth_bytes_per_s(), peak = g.flops_per_s();
  const double P = static_cast<double>(layer_matmul_params(c, plan, 0));
  const double unit =
      static_cast<double>(kv_bank_bytes(1, c.num_key_value_heads, c.head_dim, Dtype::f16));
  const double L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size;
  double prefill = 0;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const double flops = B * (2.0 * N * P + attention_flops(c, N * (N + 1) / 2.0));
    const double bytes = (P + 2 * C) * 2 + B * N * unit * 2;
    prefill += std::max(bytes / bw, flops / peak);
  }
  prefill += std::max((V * C + C) * 2 / bw, B * 2.0 * V * C / peak);
  EXPECT_DOUBLE_EQ(s.standard.prefill.time_s, prefill);
  const double wread = static_cast<double>(s.standard.decode.weight_bytes_read_per_step);
  double decode = 0;
  for (int j = 0; j < G; ++j) {
    const double t = N + j + 1;
    const double bytes = wread + B * L * t * unit;
    const double flops = B * decode_flops_per_token(c, plan, N + j + 1);
    decode += std::max(bytes / bw, flops / peak);
  }
  EXPECT_DOUBLE_EQ(s.standard.decode.time_s, decode);
  // The efficiency model only adds time: every operation at a fraction <= 1 of the peaks.
  o.ideal = false;
  const Simulation e = simulate(c, plan, "standard", g, o);
  EXPECT_GT(e.standard.prefill.time_s, s.standard.prefill.time_s);
  EXPECT_GT(e.standard.decode.time_s, s.standard.decode.time_s);
  EXPECT_DOUBLE_EQ(e.standard.prefill.flops, s.standard.prefill.flops);
}

TEST(Efficiency, PublishedLlama2PrefillOnA100) {
  // docs/simulator.md, "Simulator vs published": a 2048-token Llama-2-7B prefill at batch 1 on an
  // A100. The pure roofline gives 88.7 ms; TensorRT-LLM v0.8.0 measured 120.5 ms (first-token
  // latency, FP16); the efficiency model must land within 15 % of the measurement.
  const Simulation i = sim("llama-2-7b", "standard", "a100-80gb", 2048, 1, 1);
  EXPECT_NEAR(i.standard.prefill.time_s, 0.0887, 0.0005);
  const Simulation e = sim("llama-2-7b", "standard", "a100-80gb", 2048, 1, 1, Dtype::f16, false);
  EXPECT_NEAR(e.standard.prefill.time_s, 0.1205, 0.15 * 0.1205);
}
