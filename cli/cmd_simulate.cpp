// kvlab simulate: memory fit, decode and prefill times of a model under one or more KV plans on
// one GPU, side by side with the `standard` plan: a roofline corrected by an efficiency model, and
// memory from weights, K/V and an activation model (--ideal: the pure roofline). The model is in
// docs/simulator.md.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/simulator.hpp"
#include "session/sim_policy.hpp"

namespace kvlab::cli {
namespace {

struct SimulateOptions {
  std::string model;
  std::vector<std::string> plans;
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
  int kv_heads = 0;
  CLI::Option* kv_heads_option = nullptr;
  int window = 0;
  CLI::Option* window_option = nullptr;
  std::string policy = "full";
  std::string budget;
  std::string attention = "flash";
  std::string logits = "last";
  std::string logits_dtype = "f32";
  int prefill_chunk = 0;
  std::string cache_growth = "preallocated";
  double overhead = 0;
  std::vector<CLI::Option*> activation_options;  // ignored by --ideal, so refused with it
  bool ideal = false;
  bool json = false;
};

// a / b, or null when b is 0.
nlohmann::json ratio(double a, double b) {
  if (b == 0 || !std::isfinite(a / b)) return nullptr;
  return a / b;
}

std::string ratio_text(double a, double b) {
  if (b == 0 || !std::isfinite(a / b)) return "-";
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

double d(std::int64_t v) {
  return static_cast<double>(v);
}

nlohmann::json decode_json(const DecodeFigures& f) {
  return {{"weight_bytes_read_per_step", f.weight_bytes_read_per_step},
          {"kv_bytes_read_per_step_first", f.kv_bytes_read_per_step_first},
          {"kv_bytes_read_per_step_last", f.kv_bytes_read_per_step_last},
          {"flops_per_token_first", f.flops_per_token_first},
          {"flops_per_token_last", f.flops_per_token_last},
          {"bytes_per_step_mean", f.bytes_per_step_mean},
          {"flops_per_step_mean", f.flops_per_step_mean},
          {"memory_time_s", f.memory_time_s},
          {"compute_time_s", f.compute_time_s},
          {"time_s", f.time_s},
          {"step_time_mean_s", f.step_time_mean_s},
          {"step_time_first_s", f.step_time_first_s},
          {"step_time_last_s", f.step_time_last_s},
          {"tokens_per_s", f.tokens_per_s},
          {"tokens_per_s_per_sequence", f.tokens_per_s_per_sequence},
          {"bound", f.memory_bound ? "memory" : "compute"}};
}

nlohmann::json prefill_json(const PrefillFigures& p) {
  return {{"iterative", p.iterative},
          {"token_by_token", p.token_by_token},
          {"passes", p.passes},
          {"layer_passes", p.layer_passes},
          {"chunks", p.chunks},
          {"flops", p.flops},
          {"bytes", p.bytes},
          {"flops_per_sequence", p.flops_per_sequence},
          {"time_s", p.time_s},
          {"time_per_sequence_s", p.time_per_sequence_s},
          {"tokens_per_s", p.tokens_per_s}};
}

nlohmann::json plan_json(const PlanSimulation& p) {
  return {{"spec", p.spec},
          {"map", p.map},
          {"num_kv_layers", p.num_kv_layers},
          {"sliding_kv_layers", p.sliding_kv_layers},
          {"window", p.window},
          {"weight_params", p.weight_params},
          {"weight_bytes", p.weight_bytes},
          {"kv_bytes_per_token", p.kv_bytes_per_token},
          {"kv_bytes_per_sequence", p.kv_bytes_per_sequence},
          {"policy_bytes_per_sequence", p.policy_bytes_per_sequence},
          {"activation_bytes_per_sequence", p.activation_bytes_per_sequence},
          {"sequence_bytes", p.sequence_bytes},
          {"memory_bytes", p.memory_bytes},
          {"reserve_bytes", p.reserve_bytes},
          {"overhead_bytes", p.overhead_bytes},
          {"kv_budget_bytes", p.kv_budget_bytes},
          {"max_batch", p.max_batch},
          {"batch", p.batch},
          {"fits", p.fits},
          {"memory_used_bytes", p.memory_used_bytes},
          {"decode", decode_json(p.decode)},
          {"prefill", prefill_json(p.prefill)},
          {"total_time_s", p.total_time_s},
          {"end_to_end_tokens_per_s", p.end_to_end_tokens_per_s},
          {"end_to_end_tokens_per_s_per_sequence", p.end_to_end_tokens_per_s_per_sequence}};
}

// Per-sequence ratios (the default reading) and batch-level ones, apart.
nlohmann::json ratios_json(const PlanSimulation& p, const PlanSimulation& q) {
  return {
      {"per_sequence",
       {{"weight_bytes", ratio(d(p.weight_bytes), d(q.weight_bytes))},
        {"kv_bytes_per_token", ratio(d(p.kv_bytes_per_token), d(q.kv_bytes_per_token))},
        {"kv_bytes_per_sequence", ratio(d(p.kv_bytes_per_sequence), d(q.kv_bytes_per_sequence))},
        {"sequence_bytes", ratio(d(p.sequence_bytes), d(q.sequence_bytes))},
        {"decode_kv_bytes_read_per_step",
         ratio(d(p.decode.kv_bytes_read_per_step_last), d(q.decode.kv_bytes_read_per_step_last))},
        {"decode_step_time", ratio(p.decode.step_time_mean_s, q.decode.step_time_mean_s)},
        {"decode_tokens_per_s_per_sequence",
         ratio(p.decode.tokens_per_s_per_sequence, q.decode.tokens_per_s_per_sequence)},
        {"prefill_layer_passes", ratio(p.prefill.layer_passes, q.prefill.layer_passes)},
        {"prefill_flops_per_sequence",
         ratio(p.prefill.flops_per_sequence, q.prefill.flops_per_sequence)},
        {"prefill_time_per_sequence",
         ratio(p.prefill.time_per_sequence_s, q.prefill.time_per_sequence_s)},
        {"end_to_end_tokens_per_s_per_sequence",
         ratio(p.end_to_end_tokens_per_s_per_sequence, q.end_to_end_tokens_per_s_per_sequence)}}},
      {"batch",
       {{"max_batch", ratio(d(p.max_batch), d(q.max_batch))},
        {"decode_tokens_per_s", ratio(p.decode.tokens_per_s, q.decode.tokens_per_s)},
        {"prefill_time", ratio(p.prefill.time_s, q.prefill.time_s)},
        {"end_to_end_tokens_per_s", ratio(p.end_to_end_tokens_per_s, q.end_to_end_tokens_per_s)}}}};
}

void print_json(const SimulateOptions& o, const Simulation& s) {
  const ModelConfig& c = s.config;
  const SimOptions& so = s.options;
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
  j["prompt"] = so.prompt;
  j["gen"] = so.gen;
  j["batch_requested"] = so.batch ? nlohmann::json(*so.batch) : nullptr;
  j["kv_dtype"] = dtype_name(so.kv_dtype);
  j["weight_dtype"] = dtype_name(so.weight_dtype);
  j["m"] = so.m;
  j["b"] = so.b;
  j["reserve_fraction"] = so.reserve_fraction;
  j["kv_heads"] = c.num_key_value_heads;
  j["window"] = c.sliding_window;
  j["policy"] = {
      {"name", so.policy.name},
      {"budget", so.policy.budget > 0 ? nlohmann::json(so.policy.budget) : nullptr},
      {"budget_given", so.policy.budget_text.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json(so.policy.budget_text)},
      {"score_arrays", so.policy.score_arrays}};
  j["ideal"] = so.ideal;
  if (so.ideal) {
    j["activations"] = nullptr;
    j["efficiency"] = nullptr;
  } else {
    const ActivationModel& a = so.activations;
    j["activations"] = {{"attention", to_string(a.attention)},
                        {"logits", to_string(a.logits)},
                        {"logits_dtype", dtype_name(a.logits_dtype)},
                        {"prefill_chunk", a.prefill_chunk > 0 ? nlohmann::json(a.prefill_chunk)
                                                              : nlohmann::json(nullptr)},
                        {"cache_growth", to_string(a.cache_growth)},
                        {"overhead_gib", a.overhead_gib}};
    const EfficiencyModel& e = so.efficiency;
    j["efficiency"] = {{"compute_max", e.compute_max},
                       {"compute_latency_s", e.compute_latency_s},
                       {"memory_max", e.memory_max},
                       {"memory_latency_s", e.memory_latency_s}};
  }
  nlohmann::json plans = nlohmann::json::array();
  for (const PlanSimulation& p : s.plans) {
    nlohmann::json pj = plan_json(p);
    pj["ratio_to_standard"] = ratios_json(p, s.standard);
    plans.push_back(pj);
  }
  j["plans"] = plans;
  j["standard"] = plan_json(s.standard);
  j["notes"] = s.notes;
  std::cout << j.dump(2) << "\n";
}

// One table row: a label, then one cell per column.
void row(const std::string& label, const std::vector<std::string>& cells) {
  std::printf("  %-40s", label.c_str());
  for (const auto& c : cells) std::printf(" %17s", c.c_str());
  std::printf("\n");
}

// A row with one cell per column, from a function of the plan.
template <typename F>
std::vector<std::string> cells(const std::vector<const PlanSimulation*>& cols, F f) {
  std::vector<std::string> out;
  for (const PlanSimulation* p : cols) out.push_back(f(*p));
  return out;
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

void print_report(const SimulateOptions& o, const Simulation& s) {
  const ModelConfig& c = s.config;
  const PlanSimulation& q = s.standard;
  const SimOptions& so = s.options;
  const auto b = [](std::int64_t v) { return human_bytes(static_cast<double>(v)); };
  const std::int64_t total = static_cast<std::int64_t>(so.prompt) + so.gen;
  std::vector<const PlanSimulation*> cols{&q};
  std::string names;
  for (const PlanSimulation& p : s.plans) {
    cols.push_back(&p);
    names += (names.empty() ? "" : ", ") + p.spec;
  }
  bool sliding = false;
  for (const PlanSimulation* p : cols) sliding |= p->sliding_kv_layers > 0;

  bool only_standard = true;
  for (const PlanSimulation& p : s.plans) only_standard &= p.map == q.map;
  std::printf("kvlab simulate: %s, %s %s%s, on %s\n", o.model.c_str(),
              s.plans.size() > 1 ? "plans" : "plan", names.c_str(),
              only_standard ? "" : " beside standard", s.gpu.description.c_str());
  std::printf("  model     %d layers, C = %d, H = %d, H_kv = %d%s, D = %d, F = %d, V = %d%s\n",
              c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
              so.kv_heads ? " (--kv-heads)" : "", c.head_dim, c.intermediate_size, c.vocab_size,
              c.tie_word_embeddings ? ", tied embedding" : "");
  std::printf("  GPU       %g GiB, %g GB/s, %g TFLOPS dense 16-bit  (%s)\n", s.gpu.memory_gib,
              s.gpu.bandwidth_gb_s, s.gpu.tflops, s.gpu.source.c_str());
  std::printf(
      "  workload  prompt %d + gen %d tokens; KV %s, weights %s; batch %s\n", so.prompt, so.gen,
      dtype_name(so.kv_dtype).c_str(), dtype_name(so.weight_dtype).c_str(),
      so.batch ? std::to_string(*so.batch).c_str() : "= the largest that fits, for each plan");
  if (so.policy.budget > 0) {
    std::printf("  policy    %s, budget %s = %d tokens per bank between decode steps\n",
                so.policy.name.c_str(), so.policy.budget_text.c_str(), so.policy.budget);
  } else {
    std::printf("  policy    full: banks keep every token\n");
  }
  if (sliding) {
    std::printf("  window    sliding layers attend to the last W = %d tokens%s\n", c.sliding_window,
                so.window ? " (--window)" : " (the model's; --window)");
  }
  if (so.ideal) {
    std::printf("  memory    --ideal: weights + batch x K/V + reserve %.0f%% (%s) <= %s\n",
                so.reserve_fraction * 100, b(q.reserve_bytes).c_str(), b(q.memory_bytes).c_str());
    std::printf("  time      --ideal: the pure roofline, max(bytes / BW, FLOPs / peak)\n");
  } else {
    const ActivationModel& a = so.activations;
    std::printf("  memory    weights + batch x per-sequence peak + reserve %.0f%% (%s)%s <= %s\n",
                so.reserve_fraction * 100, b(q.reserve_bytes).c_str(),
                a.overhead_gib > 0 ? (" + overhead " + b(q.overhead_bytes)).c_str() : "",
                b(q.memory_bytes).c_str());
    std::printf("            activations: %s attention, logits of %s in %s, prefill %s, %s cache\n",
                to_string(a.attention).c_str(),
                a.logits == LogitsScope::last ? "the last position" : "every position",
                dtype_name(a.logits_dtype).c_str(),
                a.prefill_chunk > 0 ? ("in chunks of " + std::to_string(a.prefill_chunk)).c_str()
                                    : "in one chunk",
                to_string(a.cache_growth).c_str());
    std::printf(
        "  time      roofline per operation at achievable fractions of the peaks (compute %.2f, "
        "bandwidth %.2f, latency %.1f / %.1f us; --ideal: the pure roofline)\n",
        so.efficiency.compute_max, so.efficiency.memory_max, so.efficiency.compute_latency_s * 1e6,
        so.efficiency.memory_latency_s * 1e6);
  }
  for (const PlanSimulation& p : s.plans) {
    std::printf("  map       %s: %s\n", p.spec.c_str(), short_map(p.map).c_str());
  }
  std::printf("            standard: %s\n", short_map(q.map).c_str());
  for (const auto& n : s.notes) std::printf("  note      %s\n", n.c_str());
  std::printf("\n");

  row("", cells(cols, [](const PlanSimulation& p) { return p.spec; }));
  std::printf("  per sequence\n");
  row("KV layers", cells(cols, [&](const PlanSimulation& p) {
        return std::to_string(p.num_kv_layers) + " of " + std::to_string(c.num_hidden_layers);
      }));
  row("KV bytes per token", cells(cols, [](const PlanSimulation& p) {
        return group_digits(p.kv_bytes_per_token) + " B";
      }));
  if (sliding) {
    row("  sliding banks (hold at most W = " + std::to_string(c.sliding_window) + ")",
        cells(cols, [](const PlanSimulation& p) {
          return std::to_string(p.sliding_kv_layers) + " of " + std::to_string(p.num_kv_layers);
        }));
  }
  row("KV bytes per sequence (" + std::to_string(total) + " tok, peak)",
      cells(cols, [&](const PlanSimulation& p) { return b(p.kv_bytes_per_sequence); }));
  if (so.policy.score_arrays > 0) {
    row("H2O score arrays per sequence",
        cells(cols, [&](const PlanSimulation& p) { return b(p.policy_bytes_per_sequence); }));
  }
  if (!so.ideal) {
    row("activations per sequence (prefill peak)",
        cells(cols, [&](const PlanSimulation& p) { return b(p.activation_bytes_per_sequence); }));
  }
  row("memory per sequence (one more costs)",
      cells(cols, [&](const PlanSimulation& p) { return b(p.sequence_bytes); }));
  row("KV read per decode step (last)", cells(cols, [&](const PlanSimulation& p) {
        return b(p.decode.kv_bytes_read_per_step_last);
      }));
  row("FLOPs per token (last)", cells(cols, [](const PlanSimulation& p) {
        return si(p.decode.flops_per_token_last, "FLOP");
      }));
  row("time per generated token (a step)",
      cells(cols, [](const PlanSimulation& p) { return seconds(p.decode.step_time_mean_s); }));
  row("decode tokens/s", cells(cols, [](const PlanSimulation& p) {
        return fmt("%.1f", p.decode.tokens_per_s_per_sequence);
      }));
  row("prefill passes over cyclic blocks",
      cells(cols, [](const PlanSimulation& p) { return passes_text(p.prefill); }));
  row("prefill layer passes",
      cells(cols, [](const PlanSimulation& p) { return fmt("%.0f", p.prefill.layer_passes); }));
  row("prefill FLOPs", cells(cols, [](const PlanSimulation& p) {
        return si(p.prefill.flops_per_sequence, "FLOP");
      }));
  row("prefill time (batch time / batch)",
      cells(cols, [](const PlanSimulation& p) { return seconds(p.prefill.time_per_sequence_s); }));
  row("generated tokens/s, prefill included", cells(cols, [](const PlanSimulation& p) {
        return fmt("%.1f", p.end_to_end_tokens_per_s_per_sequence);
      }));

  std::printf("  whole batch\n");
  row("weight bytes", cells(cols, [&](const PlanSimulation& p) { return b(p.weight_bytes); }));
  row("largest batch that fits",
      cells(cols, [](const PlanSimulation& p) { return group_digits(p.max_batch); }));
  row("batch simulated", cells(cols, [](const PlanSimulation& p) {
        return group_digits(p.batch) + (p.fits ? "" : " (NO FIT)");
      }));
  row("memory used", cells(cols, [&](const PlanSimulation& p) { return b(p.memory_used_bytes); }));
  row("decode tokens/s (whole batch)",
      cells(cols, [](const PlanSimulation& p) { return fmt("%.1f", p.decode.tokens_per_s); }));
  row("bound by", cells(cols, [](const PlanSimulation& p) {
        return std::string(p.decode.memory_bound ? "memory" : "compute");
      }));
  row("prefill time (whole batch)",
      cells(cols, [](const PlanSimulation& p) { return seconds(p.prefill.time_s); }));
  row("prefill + decode time (whole batch)",
      cells(cols, [](const PlanSimulation& p) { return seconds(p.total_time_s); }));
  row("generated tokens/s (whole batch)",
      cells(cols, [](const PlanSimulation& p) { return fmt("%.1f", p.end_to_end_tokens_per_s); }));

  auto rcells = [&](auto f) {
    std::vector<std::string> out{"1"};
    for (const PlanSimulation& p : s.plans) out.push_back(f(p));
    return out;
  };
  std::printf("  ratio to standard, per sequence\n");
  row("KV bytes per token", rcells([&](const PlanSimulation& p) {
        return ratio_text(d(p.kv_bytes_per_token), d(q.kv_bytes_per_token));
      }));
  row("memory per sequence", rcells([&](const PlanSimulation& p) {
        return ratio_text(d(p.sequence_bytes), d(q.sequence_bytes));
      }));
  row("KV read per decode step", rcells([&](const PlanSimulation& p) {
        return ratio_text(d(p.decode.kv_bytes_read_per_step_last),
                          d(q.decode.kv_bytes_read_per_step_last));
      }));
  row("time per generated token", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.decode.step_time_mean_s, q.decode.step_time_mean_s);
      }));
  row("prefill time", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.prefill.time_per_sequence_s, q.prefill.time_per_sequence_s);
      }));
  row("generated tokens/s, prefill included", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.end_to_end_tokens_per_s_per_sequence,
                          q.end_to_end_tokens_per_s_per_sequence);
      }));
  std::printf("  ratio to standard, whole batch (each at its own batch)\n");
  row("largest batch",
      rcells([&](const PlanSimulation& p) { return ratio_text(d(p.max_batch), d(q.max_batch)); }));
  row("decode tokens/s", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.decode.tokens_per_s, q.decode.tokens_per_s);
      }));
  row("prefill time", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.prefill.time_s, q.prefill.time_s);
      }));
  row("generated tokens/s", rcells([&](const PlanSimulation& p) {
        return ratio_text(p.end_to_end_tokens_per_s, q.end_to_end_tokens_per_s);
      }));

  for (const PlanSimulation& p : s.plans) {
    if (p.map == q.map) continue;
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
      std::printf(
          "Its prefill runs %s x the layer passes of standard (%s): %s x the prefill time "
          "per sequence.\n",
          ratio_text(p.prefill.layer_passes, q.prefill.layer_passes).c_str(), how.c_str(),
          ratio_text(p.prefill.time_per_sequence_s, q.prefill.time_per_sequence_s).c_str());
    }
  }
}

void run_simulate(const SimulateOptions& o) {
  if (o.ideal) {
    for (const CLI::Option* opt : o.activation_options) {
      if (opt->count() > 0) {
        fail(opt->get_name(), opt->as<std::string>(),
             "--ideal drops the activation and efficiency models, so this flag would be "
             "ignored: drop it or --ideal");
      }
    }
  }
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
  if (o.kv_heads_option->count() > 0) so.kv_heads = o.kv_heads;
  if (o.window_option->count() > 0) so.window = o.window;
  if (o.prompt >= 1) so.policy = sim_policy(o.policy, o.budget, o.prompt);
  so.ideal = o.ideal;
  ActivationModel& a = so.activations;
  a.attention = parse_attention(o.attention);
  a.logits = parse_logits(o.logits);
  a.logits_dtype = parse_logits_dtype(o.logits_dtype);
  a.prefill_chunk = o.prefill_chunk;
  a.cache_growth = parse_cache_growth(o.cache_growth);
  a.overhead_gib = o.overhead;
  std::vector<std::pair<KvPlan, std::string>> plans;
  for (const std::string& spec : o.plans) {
    plans.emplace_back(KvPlan::parse(spec, c.num_hidden_layers), spec);
  }
  const Simulation s = simulate(c, plans, gpu, so);
  if (o.json) {
    print_json(o, s);
  } else {
    print_report(o, s);
  }
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto o = std::make_shared<SimulateOptions>();
  auto* cmd = app.add_subcommand(
      "simulate",
      "Memory fit, decode and prefill time of plans on a GPU, side by side with standard");
  cmd->add_option("--model", o->model,
                  "Model shape: a preset (e.g. llama-2-7b), a built-in trained model, a kvlab or "
                  "Hugging Face directory, a config.json or a llama2.c .bin")
      ->required();
  cmd->add_option("--plan", o->plans,
                  "KV plan, repeatable (--plan cla:2 --plan lckv:2): standard, cla:K, mlkv:M, "
                  "lckv:W, {pizza|sandwich|lasagna}-{bottom|top|middle}:N, yoco, or a text form")
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
                  "Fraction of GPU memory kept back for fragmentation, the CUDA context and what "
                  "the activation model does not name")
      ->capture_default_str();
  o->kv_heads_option = cmd->add_option("--kv-heads", o->kv_heads,
                                       "KV heads H_kv instead of the model's (must divide H)");
  o->window_option = cmd->add_option("--window", o->window,
                                     "Window W of sliding layers (yoco's) instead of the model's");
  cmd->add_option("--policy", o->policy,
                  "What each KV bank keeps: full, window[:W], streaming[:S], h2o[:R][,norm=count]")
      ->capture_default_str();
  cmd->add_option("--budget", o->budget,
                  "Tokens each bank keeps: 64 (tokens) or 25% (of the prompt: floor(0.25 · "
                  "prompt tokens)); needs an evicting policy");
  o->activation_options = {
      cmd->add_option("--attention", o->attention,
                      "Activation model: flash (scores never stored) or eager (scores "
                      "materialised)")
          ->capture_default_str(),
      cmd->add_option(
             "--logits", o->logits,
             "Prefill logits of the last position or of all positions (older HF Transformers)")
          ->capture_default_str(),
      cmd->add_option("--logits-dtype", o->logits_dtype,
                      "Logits dtype: f32 (upcast from 16-bit), f16, bf16")
          ->capture_default_str(),
      cmd->add_option("--prefill-chunk", o->prefill_chunk,
                      "Prefill this many tokens of every sequence per step (default: the whole "
                      "prompt)"),
      cmd->add_option("--cache-growth", o->cache_growth,
                      "preallocated, or concat (each decode step copies the cache, as HF's tuple "
                      "caches do: two copies live at once)")
          ->capture_default_str(),
      cmd->add_option("--overhead", o->overhead,
                      "Fixed framework memory in GiB (CUDA context, library workspaces)")
          ->capture_default_str(),
  };
  cmd->add_flag("--ideal", o->ideal,
                "The pure model: roofline times, memory = weights + K/V + reserve (no activation "
                "or efficiency model)");
  cmd->add_flag("--json", o->json, "Print a JSON object instead of the report");
  cmd->callback([o] { run_simulate(*o); });
}

}  // namespace kvlab::cli
