// kvlab simulate: memory fit, decode and prefill times of a model + KV plan on one GPU, from a
// roofline, side by side with the `standard` plan. The model is in docs/simulator.md.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/simulator.hpp"

namespace kvlab::cli {
namespace {

struct SimulateOptions {
  std::string model;
  std::string plan;
  std::string gpu;
  int prompt = 0;
  int gen = 0;
  std::int64_t batch = 0;
  CLI::Option* batch_option = nullptr;  // set when --batch was given
  std::string dtype = "f16";
  std::string weight_dtype;  // empty: same as --dtype
  int m = 7;
  int b = 2;
  double reserve = 0.10;
  bool json = false;
};

// a / b, or null when b is 0.
nlohmann::json ratio(double a, double b) {
  if (b == 0 || !std::isfinite(a / b)) return nullptr;
  return a / b;
}

std::string ratio_text(double a, double b) {
  if (b == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", a / b);
  return buf;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// 1234.5 -> "1.23 k" style with a unit: "6.74 G" + "params".
std::string si(double v, const std::string& unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int p = 0;
  while (std::fabs(v) >= 1000.0 && p < 6) {
    v /= 1000.0;
    ++p;
  }
  return fmt(p == 0 ? "%.0f" : "%.2f", v) + " " + prefixes[p] + unit;
}

std::string seconds(double s) {
  if (s >= 1.0) return fmt("%.3f s", s);
  if (s >= 1e-3) return fmt("%.3f ms", s * 1e3);
  return fmt("%.2f us", s * 1e6);
}

nlohmann::json decode_json(const DecodeFigures& d) {
  return {{"weight_bytes_read_per_step", d.weight_bytes_read_per_step},
          {"kv_bytes_read_per_step_first", d.kv_bytes_read_per_step_first},
          {"kv_bytes_read_per_step_last", d.kv_bytes_read_per_step_last},
          {"flops_per_token_first", d.flops_per_token_first},
          {"flops_per_token_last", d.flops_per_token_last},
          {"bytes_per_step_mean", d.bytes_per_step_mean},
          {"flops_per_step_mean", d.flops_per_step_mean},
          {"memory_time_s", d.memory_time_s},
          {"compute_time_s", d.compute_time_s},
          {"time_s", d.time_s},
          {"step_time_mean_s", d.step_time_mean_s},
          {"step_time_first_s", d.step_time_first_s},
          {"step_time_last_s", d.step_time_last_s},
          {"tokens_per_s", d.tokens_per_s},
          {"tokens_per_s_per_sequence", d.tokens_per_s_per_sequence},
          {"bound", d.memory_bound ? "memory" : "compute"}};
}

nlohmann::json prefill_json(const PrefillFigures& p) {
  return {{"iterative", p.iterative},
          {"token_by_token", p.token_by_token},
          {"passes", p.passes},
          {"layer_passes", p.layer_passes},
          {"flops", p.flops},
          {"bytes", p.bytes},
          {"flops_per_sequence", p.flops_per_sequence},
          {"time_s", p.time_s},
          {"tokens_per_s", p.tokens_per_s}};
}

nlohmann::json plan_json(const PlanSimulation& p) {
  return {{"spec", p.spec},
          {"map", p.map},
          {"num_kv_layers", p.num_kv_layers},
          {"weight_params", p.weight_params},
          {"weight_bytes", p.weight_bytes},
          {"kv_bytes_per_token", p.kv_bytes_per_token},
          {"kv_bytes_per_sequence", p.kv_bytes_per_sequence},
          {"memory_bytes", p.memory_bytes},
          {"reserve_bytes", p.reserve_bytes},
          {"kv_budget_bytes", p.kv_budget_bytes},
          {"max_batch", p.max_batch},
          {"batch", p.batch},
          {"fits", p.fits},
          {"memory_used_bytes", p.memory_used_bytes},
          {"decode", decode_json(p.decode)},
          {"prefill", prefill_json(p.prefill)},
          {"total_time_s", p.total_time_s},
          {"end_to_end_tokens_per_s", p.end_to_end_tokens_per_s}};
}

void print_json(const SimulateOptions& o, const ModelConfig& c, const Simulation& s) {
  const PlanSimulation &p = s.plan, &q = s.standard;
  nlohmann::json j;
  j["model"] = {{"name", o.model},
                {"num_hidden_layers", c.num_hidden_layers},
                {"hidden_size", c.hidden_size},
                {"num_attention_heads", c.num_attention_heads},
                {"num_key_value_heads", c.num_key_value_heads},
                {"head_dim", c.head_dim},
                {"intermediate_size", c.intermediate_size},
                {"vocab_size", c.vocab_size},
                {"tie_word_embeddings", c.tie_word_embeddings},
                {"sliding_window", c.sliding_window}};
  j["gpu"] = {{"name", s.gpu.name},
              {"description", s.gpu.description},
              {"source", s.gpu.source},
              {"memory_gib", s.gpu.memory_gib},
              {"memory_bytes", s.gpu.memory_bytes()},
              {"bandwidth_gb_s", s.gpu.bandwidth_gb_s},
              {"tflops", s.gpu.tflops}};
  j["prompt"] = s.options.prompt;
  j["gen"] = s.options.gen;
  j["batch_requested"] = s.options.batch ? nlohmann::json(*s.options.batch) : nullptr;
  j["kv_dtype"] = dtype_name(s.options.kv_dtype);
  j["weight_dtype"] = dtype_name(s.options.weight_dtype);
  j["m"] = s.options.m;
  j["b"] = s.options.b;
  j["reserve_fraction"] = s.options.reserve_fraction;
  j["plan"] = plan_json(p);
  j["standard"] = plan_json(q);
  auto d = [](std::int64_t v) { return static_cast<double>(v); };
  j["ratio_to_standard"] = {
      {"weight_bytes", ratio(d(p.weight_bytes), d(q.weight_bytes))},
      {"kv_bytes_per_token", ratio(d(p.kv_bytes_per_token), d(q.kv_bytes_per_token))},
      {"kv_bytes_per_sequence", ratio(d(p.kv_bytes_per_sequence), d(q.kv_bytes_per_sequence))},
      {"max_batch", ratio(d(p.max_batch), d(q.max_batch))},
      {"decode_kv_bytes_read_per_step",
       ratio(d(p.decode.kv_bytes_read_per_step_last), d(q.decode.kv_bytes_read_per_step_last))},
      {"decode_step_time", ratio(p.decode.step_time_mean_s, q.decode.step_time_mean_s)},
      {"decode_tokens_per_s", ratio(p.decode.tokens_per_s, q.decode.tokens_per_s)},
      {"prefill_layer_passes", ratio(p.prefill.layer_passes, q.prefill.layer_passes)},
      {"prefill_flops_per_sequence",
       ratio(p.prefill.flops_per_sequence, q.prefill.flops_per_sequence)},
      {"prefill_time", ratio(p.prefill.time_s, q.prefill.time_s)},
      {"end_to_end_tokens_per_s", ratio(p.end_to_end_tokens_per_s, q.end_to_end_tokens_per_s)}};
  j["notes"] = s.notes;
  std::cout << j.dump(2) << "\n";
}

// "  label ........  plan column  standard column  ratio"
void row(const std::string& label, const std::string& a, const std::string& b,
         const std::string& r = "") {
  std::printf("  %-36s %18s %18s %9s\n", label.c_str(), a.c_str(), b.c_str(), r.c_str());
}

std::string short_map(const std::string& map) {
  return map.size() <= 72 ? map
                          : map.substr(0, 60) + "... (" + std::to_string(map.size()) +
                                " chars; --json has it all)";
}

std::string passes_text(const PrefillFigures& f) {
  if (!f.iterative) return "1 (no cycle)";
  if (f.token_by_token) return std::to_string(f.passes) + " tok-by-tok";
  return std::to_string(f.passes);
}

void print_report(const SimulateOptions& o, const ModelConfig& c, const Simulation& s) {
  const PlanSimulation &p = s.plan, &q = s.standard;
  const SimOptions& so = s.options;
  const auto b = [](std::int64_t v) { return human_bytes(static_cast<double>(v)); };
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  const std::int64_t total = static_cast<std::int64_t>(so.prompt) + so.gen;

  std::printf("kvlab simulate: %s with plan %s on %s\n", o.model.c_str(), p.spec.c_str(),
              s.gpu.description.c_str());
  std::printf("  model     %d layers, C = %d, H = %d, H_kv = %d, D = %d, F = %d, V = %d%s\n",
              c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
              c.head_dim, c.intermediate_size, c.vocab_size,
              c.tie_word_embeddings ? ", tied embedding" : "");
  std::printf("  GPU       %g GiB, %g GB/s, %g TFLOPS dense 16-bit  (%s)\n", s.gpu.memory_gib,
              s.gpu.bandwidth_gb_s, s.gpu.tflops, s.gpu.source.c_str());
  std::printf("  workload  prompt %d + gen %d tokens; KV %s, weights %s; batch %s\n", so.prompt,
              so.gen, dtype_name(so.kv_dtype).c_str(), dtype_name(so.weight_dtype).c_str(),
              so.batch ? std::to_string(*so.batch).c_str() : "= the largest that fits");
  std::printf("  reserve   %.0f%% of memory = %s kept for activations, workspace, fragmentation\n",
              so.reserve_fraction * 100, b(p.reserve_bytes).c_str());
  std::printf("            a batch fits when weights + batch x KV per sequence + reserve <= %s\n",
              b(p.memory_bytes).c_str());
  std::printf("  map       %s: %s\n", p.spec.c_str(), short_map(p.map).c_str());
  std::printf("            standard: %s\n", short_map(q.map).c_str());
  for (const auto& n : s.notes) std::printf("  note      %s\n", n.c_str());
  std::printf("\n");

  std::printf("  %-36s %18s %18s %9s\n", "", p.spec.c_str(), "standard", "ratio");
  std::printf("  memory\n");
  row("KV layers", std::to_string(p.num_kv_layers) + " of " + std::to_string(c.num_hidden_layers),
      std::to_string(q.num_kv_layers) + " of " + std::to_string(c.num_hidden_layers),
      ratio_text(p.num_kv_layers, q.num_kv_layers));
  row("weight parameters", si(d(p.weight_params), ""), si(d(q.weight_params), ""),
      ratio_text(d(p.weight_params), d(q.weight_params)));
  row("weight bytes", b(p.weight_bytes), b(q.weight_bytes),
      ratio_text(d(p.weight_bytes), d(q.weight_bytes)));
  row("KV bytes per token", group_digits(p.kv_bytes_per_token) + " B",
      group_digits(q.kv_bytes_per_token) + " B",
      ratio_text(d(p.kv_bytes_per_token), d(q.kv_bytes_per_token)));
  row("KV bytes per sequence (" + std::to_string(total) + " tok)", b(p.kv_bytes_per_sequence),
      b(q.kv_bytes_per_sequence),
      ratio_text(d(p.kv_bytes_per_sequence), d(q.kv_bytes_per_sequence)));
  row("KV budget (mem-reserve-weights)", p.kv_budget_bytes > 0 ? b(p.kv_budget_bytes) : "none",
      q.kv_budget_bytes > 0 ? b(q.kv_budget_bytes) : "none");
  row("largest batch that fits", group_digits(p.max_batch), group_digits(q.max_batch),
      ratio_text(d(p.max_batch), d(q.max_batch)));
  row("batch simulated", group_digits(p.batch) + (p.fits ? "" : " (NO FIT)"),
      group_digits(q.batch) + (q.fits ? "" : " (NO FIT)"));
  row("memory used (with reserve)", b(p.memory_used_bytes), b(q.memory_used_bytes));

  std::printf("  decode: %d steps, context %lld .. %lld tokens\n", so.gen,
              static_cast<long long>(so.prompt) + 1, static_cast<long long>(total));
  row("weights read per step", b(p.decode.weight_bytes_read_per_step),
      b(q.decode.weight_bytes_read_per_step));
  row("KV read per step per seq (last)", b(p.decode.kv_bytes_read_per_step_last),
      b(q.decode.kv_bytes_read_per_step_last),
      ratio_text(d(p.decode.kv_bytes_read_per_step_last), d(q.decode.kv_bytes_read_per_step_last)));
  row("FLOPs per token (last)", si(p.decode.flops_per_token_last, "FLOP"),
      si(q.decode.flops_per_token_last, "FLOP"));
  row("step time (mean)", seconds(p.decode.step_time_mean_s), seconds(q.decode.step_time_mean_s),
      ratio_text(p.decode.step_time_mean_s, q.decode.step_time_mean_s));
  row("bound by", p.decode.memory_bound ? "memory" : "compute",
      q.decode.memory_bound ? "memory" : "compute");
  row("tokens/s (whole batch)", fmt("%.1f", p.decode.tokens_per_s),
      fmt("%.1f", q.decode.tokens_per_s), ratio_text(p.decode.tokens_per_s, q.decode.tokens_per_s));
  row("tokens/s per sequence", fmt("%.1f", p.decode.tokens_per_s_per_sequence),
      fmt("%.1f", q.decode.tokens_per_s_per_sequence));

  std::printf("  prefill: %d prompt tokens x batch (m = %d, b = %d)\n", so.prompt, so.m, so.b);
  row("passes over cyclic blocks", passes_text(p.prefill), passes_text(q.prefill));
  row("layer passes", fmt("%.0f", p.prefill.layer_passes), fmt("%.0f", q.prefill.layer_passes),
      ratio_text(p.prefill.layer_passes, q.prefill.layer_passes));
  row("FLOPs per sequence", si(p.prefill.flops_per_sequence, "FLOP"),
      si(q.prefill.flops_per_sequence, "FLOP"),
      ratio_text(p.prefill.flops_per_sequence, q.prefill.flops_per_sequence));
  row("time (whole batch)", seconds(p.prefill.time_s), seconds(q.prefill.time_s),
      ratio_text(p.prefill.time_s, q.prefill.time_s));

  std::printf("  end to end\n");
  row("prefill + decode time", seconds(p.total_time_s), seconds(q.total_time_s));
  row("generated tokens/s", fmt("%.1f", p.end_to_end_tokens_per_s),
      fmt("%.1f", q.end_to_end_tokens_per_s),
      ratio_text(p.end_to_end_tokens_per_s, q.end_to_end_tokens_per_s));

  if (p.map != q.map) {
    std::printf("\n%s keeps %s x standard's K/V per token", p.spec.c_str(),
                ratio_text(d(p.kv_bytes_per_token), d(q.kv_bytes_per_token)).c_str());
    if (!so.batch && p.fits && q.fits) {
      std::printf(" and fits %s x the batch", ratio_text(d(p.max_batch), d(q.max_batch)).c_str());
    }
    std::printf(
        ",\nbut reads %s x the K/V per decode step per sequence (every reader reads its "
        "bank).\n",
        ratio_text(d(p.decode.kv_bytes_read_per_step_last), d(q.decode.kv_bytes_read_per_step_last))
            .c_str());
    if (p.prefill.iterative) {
      const std::string how =
          p.prefill.token_by_token
              ? "token by token: " + std::to_string(so.prompt) +
                    " sequential steps over each cyclic block"
              : std::to_string(p.prefill.passes) + " passes over each cyclic block, m + b";
      std::printf("Its prefill runs %s x the layer passes of standard (%s).\n",
                  ratio_text(p.prefill.layer_passes, q.prefill.layer_passes).c_str(), how.c_str());
    }
  }
}

void run_simulate(const SimulateOptions& o) {
  const ModelConfig c = resolve_model_config(o.model);
  const GpuSpec gpu = parse_gpu(o.gpu);
  SimOptions so;
  so.prompt = o.prompt;
  so.gen = o.gen;
  if (o.batch_option != nullptr && o.batch_option->count() > 0) so.batch = o.batch;
  so.kv_dtype = parse_dtype(o.dtype);
  if (o.weight_dtype.empty()) {
    so.weight_dtype = so.kv_dtype;
  } else {
    try {
      so.weight_dtype = parse_dtype(o.weight_dtype);
    } catch (const Error&) {
      fail("--weight-dtype", o.weight_dtype, "must be one of f32, f16, bf16, fp8, int8");
    }
  }
  so.m = o.m;
  so.b = o.b;
  so.reserve_fraction = o.reserve;
  const KvPlan plan = KvPlan::parse(o.plan, c.num_hidden_layers);
  const Simulation s = simulate(c, plan, o.plan, gpu, so);
  if (o.json) {
    print_json(o, c, s);
  } else {
    print_report(o, c, s);
  }
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto o = std::make_shared<SimulateOptions>();
  auto* cmd = app.add_subcommand(
      "simulate", "Memory fit, decode and prefill time of a plan on a GPU (roofline), vs standard");
  cmd->add_option("--model", o->model,
                  "Model shape: a preset (e.g. llama-2-7b), a built-in trained model, a kvlab or "
                  "Hugging Face directory, a config.json or a llama2.c .bin")
      ->required();
  cmd->add_option("--plan", o->plan,
                  "KV plan: standard, cla:K, mlkv:M, lckv:W, {pizza|sandwich|lasagna}-"
                  "{bottom|top|middle}:N, yoco, or a text form")
      ->required();
  cmd->add_option("--gpu", o->gpu,
                  "a100-40gb, a100-80gb, h100-80gb-sxm, h200, l40s, rtx-3090, rtx-4090, or "
                  "custom(MEM_GiB,BANDWIDTH_GB/s,TFLOPS) e.g. custom(80,2039,312)")
      ->required();
  cmd->add_option("--prompt", o->prompt, "Prompt tokens N")->required();
  cmd->add_option("--gen", o->gen, "Generated tokens G (decode steps)")->required();
  o->batch_option =
      cmd->add_option("--batch", o->batch, "Sequences in flight (default: the largest that fits)");
  cmd->add_option("--dtype", o->dtype, "KV cache dtype: f32, f16, bf16, fp8, int8")
      ->capture_default_str();
  cmd->add_option("--weight-dtype", o->weight_dtype, "Weights dtype (default: same as --dtype)");
  cmd->add_option("--m", o->m, "LCKV prefill passes m (first passes)")->capture_default_str();
  cmd->add_option("--b", o->b, "LCKV prefill passes b (last passes)")->capture_default_str();
  cmd->add_option("--reserve", o->reserve,
                  "Fraction of GPU memory kept back for activations, workspace, fragmentation")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON object instead of the report");
  cmd->callback([o] { run_simulate(*o); });
}

}  // namespace kvlab::cli
