#include "core/simulator.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/error.hpp"

namespace kvlab {
namespace {

constexpr std::int64_t kNoCap = std::numeric_limits<std::int64_t>::max();

// Figures from the vendors' public datasheets and whitepapers; dense (no sparsity) 16-bit tensor
// peak with FP32 accumulation (the rate bf16 training and inference kernels use).
//   A100:     NVIDIA A100 Tensor Core GPU datasheet (2021): 40GB HBM2 1,555 GB/s; 80GB HBM2e
//             2,039 GB/s (SXM); BF16/FP16 tensor 312 TFLOPS (624 with sparsity).
//   H100 SXM: NVIDIA H100 Tensor Core GPU datasheet: 80GB HBM3, 3.35 TB/s; BF16/FP16 tensor
//             1,979 TFLOPS with sparsity = 989 dense.
//   H200 SXM: NVIDIA H200 Tensor Core GPU datasheet: 141GB HBM3e, 4.8 TB/s; BF16/FP16 tensor
//             1,979 TFLOPS with sparsity = 989 dense.
//   L40S:     NVIDIA L40S datasheet: 48GB GDDR6, 864 GB/s; BF16/FP16 tensor 362.05 TFLOPS
//             (733 with sparsity).
//   RTX 3090: NVIDIA Ampere GA102 GPU architecture whitepaper: 24GB GDDR6X, 936 GB/s; FP16/BF16
//             tensor with FP32 accumulate 71 TFLOPS (142 with FP16 accumulate; x2 with sparsity).
//   RTX 4090: NVIDIA Ada Lovelace GPU architecture whitepaper: 24GB GDDR6X, 1,008 GB/s; FP16/BF16
//             tensor with FP32 accumulate 165.2 TFLOPS (330.3 with FP16 accumulate; x2 sparsity).
struct GpuPresetEntry {
  GpuSpec spec;
  std::vector<std::string> aliases;
};

const std::vector<GpuPresetEntry>& preset_table() {
  static const std::vector<GpuPresetEntry> table = {
      {{"a100-40gb", "NVIDIA A100 40GB SXM",
        "NVIDIA A100 datasheet: 40GB HBM2, 1,555 GB/s, BF16 312 TFLOPS dense", 40, 1555, 312},
       {"a100-40gb-sxm"}},
      {{"a100-80gb", "NVIDIA A100 80GB SXM",
        "NVIDIA A100 datasheet: 80GB HBM2e, 2,039 GB/s (SXM), BF16 312 TFLOPS dense", 80, 2039,
        312},
       {"a100-80gb-sxm", "a100"}},
      {{"h100-80gb-sxm", "NVIDIA H100 80GB SXM",
        "NVIDIA H100 datasheet: 80GB HBM3, 3.35 TB/s, BF16 989 TFLOPS dense (1,979 sparse)", 80,
        3350, 989},
       {"h100", "h100-sxm", "h100-80gb"}},
      {{"h200", "NVIDIA H200 SXM 141GB",
        "NVIDIA H200 datasheet: 141GB HBM3e, 4.8 TB/s, BF16 989 TFLOPS dense (1,979 sparse)", 141,
        4800, 989},
       {"h200-sxm", "h200-141gb"}},
      {{"l40s", "NVIDIA L40S 48GB",
        "NVIDIA L40S datasheet: 48GB GDDR6, 864 GB/s, BF16 362.05 TFLOPS dense (733 sparse)", 48,
        864, 362.05},
       {}},
      {{"rtx-3090", "NVIDIA GeForce RTX 3090 24GB",
        "NVIDIA GA102 whitepaper: 24GB GDDR6X, 936 GB/s, FP16/BF16 tensor (FP32 accumulate) 71 "
        "TFLOPS dense",
        24, 936, 71},
       {"3090", "geforce-rtx-3090"}},
      {{"rtx-4090", "NVIDIA GeForce RTX 4090 24GB",
        "NVIDIA Ada whitepaper: 24GB GDDR6X, 1,008 GB/s, FP16/BF16 tensor (FP32 accumulate) 165.2 "
        "TFLOPS dense",
        24, 1008, 165.2},
       {"4090", "geforce-rtx-4090"}},
  };
  return table;
}

// Lower case, letters and digits only: "A100 80GB" -> "a10080gb".
std::string normalize(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c)) out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

const char* kCustomHelp =
    "custom(MEM,BANDWIDTH,TFLOPS) takes three positive numbers: memory in GiB, bandwidth in GB/s, "
    "dense 16-bit tensor TFLOPS, e.g. custom(80,2039,312)";

double parse_custom_field(const std::string& spec, const std::string& text, const char* what,
                          const char* unit, double max) {
  const std::string t = trim(text);
  char* end = nullptr;
  const double v = t.empty() ? 0.0 : std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v)) {
    fail("--gpu", spec, std::string(what) + " '" + t + "' is not a number; " + kCustomHelp);
  }
  if (!(v > 0) || v > max) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", max);
    fail("--gpu", spec,
         std::string(what) + " = " + t + " must be in (0, " + buf + "] " + unit + "; " +
             kCustomHelp);
  }
  return v;
}

GpuSpec parse_custom(const std::string& spec) {
  const std::string s = trim(spec);
  const std::string head = "custom(";
  if (s.size() < head.size() + 1 || normalize(s.substr(0, 6)) != "custom" ||
      trim(s.substr(6)).front() != '(' || s.back() != ')') {
    fail("--gpu", spec, kCustomHelp);
  }
  const auto open = s.find('(');
  const std::string inner = s.substr(open + 1, s.size() - open - 2);
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const auto comma = inner.find(',', start);
    parts.push_back(
        inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (parts.size() != 3) {
    fail("--gpu", spec,
         "has " + std::to_string(parts.size()) + " value(s), needs 3; " + kCustomHelp);
  }
  GpuSpec g;
  g.name = "custom";
  g.memory_gib = parse_custom_field(spec, parts[0], "memory", "GiB", 1e5);
  g.bandwidth_gb_s = parse_custom_field(spec, parts[1], "bandwidth", "GB/s", 1e6);
  g.tflops = parse_custom_field(spec, parts[2], "TFLOPS", "TFLOPS", 1e6);
  char buf[160];
  std::snprintf(buf, sizeof buf, "custom GPU: %g GiB, %g GB/s, %g TFLOPS", g.memory_gib,
                g.bandwidth_gb_s, g.tflops);
  g.description = buf;
  g.source = "given on the command line";
  return g;
}

void check_int(const char* field, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (v < lo || v > hi) {
    fail(field, std::to_string(v),
         "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

// a * b, saturating at INT64_MAX (both non-negative).
std::int64_t sat_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::numeric_limits<std::int64_t>::max();
  return r;
}
std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<std::int64_t>::max();
  return r;
}

// Σ_{x = a}^{a + n - 1} min(x, cap), in double (n up to 10^7).
double sum_min(double a, double n, double cap) {
  const double last = a + n - 1;
  if (cap >= last) return n * (a + last) / 2;
  double s = 0;
  if (cap >= a) s += (cap - a + 1) * (a + cap) / 2;  // a..cap
  const double over = last - std::max(cap, a - 1);   // values above cap
  return s + over * cap;
}

// How many keys layer `l` can see at most: the window for a sliding layer, else no cap.
std::int64_t key_cap(const ModelConfig& cfg, const KvPlan& plan, int l) {
  return plan.sliding(l) ? cfg.sliding_window : kNoCap;
}

std::string human_gb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

PlanSimulation simulate_plan(const ModelConfig& cfg, const KvPlan& plan, const std::string& spec,
                             const GpuSpec& gpu, const SimOptions& o) {
  PlanSimulation r;
  r.spec = spec;
  r.map = plan.to_string();
  r.num_kv_layers = plan.num_kv_layers();
  const int wbytes = dtype_bytes(o.weight_dtype);
  const std::int64_t N = o.prompt, G = o.gen;
  const std::int64_t C = cfg.hidden_size, V = cfg.vocab_size;

  // Memory.
  r.weight_params = cfg.parameter_count(r.num_kv_layers);
  r.weight_bytes = r.weight_params * wbytes;
  r.kv_bytes_per_token =
      kv_bytes_per_token(plan, cfg.num_key_value_heads, cfg.head_dim, o.kv_dtype);
  r.kv_bytes_per_sequence = kv_sequence_bytes(plan, cfg, N + G, o.kv_dtype);
  r.memory_bytes = gpu.memory_bytes();
  r.reserve_bytes = static_cast<std::int64_t>(
      std::floor(o.reserve_fraction * static_cast<double>(r.memory_bytes)));
  r.kv_budget_bytes = r.memory_bytes - r.reserve_bytes - r.weight_bytes;
  r.max_batch =
      max_batch_that_fits(r.memory_bytes, r.reserve_bytes, r.weight_bytes, r.kv_bytes_per_sequence);
  if (o.batch) {
    r.batch = *o.batch;
    r.fits = r.batch <= r.max_batch;
  } else {
    r.batch = r.max_batch > 0 ? r.max_batch : 1;
    r.fits = r.max_batch > 0;
  }
  r.memory_used_bytes =
      sat_add(sat_add(r.weight_bytes, sat_mul(r.batch, r.kv_bytes_per_sequence)), r.reserve_bytes);
  const double B = static_cast<double>(r.batch);

  // Per-layer facts shared by decode and prefill.
  const double unit = static_cast<double>(
      kv_bank_bytes(1, cfg.num_key_value_heads, cfg.head_dim, o.kv_dtype));  // one token, one bank
  std::int64_t matmul_params = V * C;  // classifier (or the tied embedding used as one)
  for (int l = 0; l < plan.layers(); ++l) matmul_params += layer_matmul_params(cfg, plan, l);
  int uncapped = 0, windowed = 0;
  for (int l = 0; l < plan.layers(); ++l) (key_cap(cfg, plan, l) == kNoCap ? uncapped : windowed)++;
  const double W = cfg.sliding_window;
  auto keys_at = [&](double t) { return uncapped * t + windowed * std::min(t, W); };

  // Decode: G steps at contexts N + 1 .. N + G.
  DecodeFigures& d = r.decode;
  d.weight_bytes_read_per_step = (r.weight_params - (cfg.tie_word_embeddings ? 0 : V * C)) * wbytes;
  d.kv_bytes_read_per_step_first = kv_bytes_read_per_step(plan, cfg, N + 1, o.kv_dtype);
  d.kv_bytes_read_per_step_last = kv_bytes_read_per_step(plan, cfg, N + G, o.kv_dtype);
  d.flops_per_token_first = decode_flops_per_token(cfg, plan, N + 1);
  d.flops_per_token_last = decode_flops_per_token(cfg, plan, N + G);
  const double bw = gpu.bandwidth_bytes_per_s(), peak = gpu.flops_per_s();
  double bytes_sum = 0, flops_sum = 0;
  for (std::int64_t j = 0; j < G; ++j) {
    const double t = static_cast<double>(N + j + 1);
    const double keys = keys_at(t);
    const double bytes = static_cast<double>(d.weight_bytes_read_per_step) + B * keys * unit;
    const double flops =
        B * (2.0 * static_cast<double>(matmul_params) + attention_flops(cfg, keys));
    const double mem_t = bytes / bw, comp_t = flops / peak;
    const double step = std::max(mem_t, comp_t);
    bytes_sum += bytes;
    flops_sum += flops;
    d.memory_time_s += mem_t;
    d.compute_time_s += comp_t;
    d.time_s += step;
    if (j == 0) d.step_time_first_s = step;
    if (j == G - 1) d.step_time_last_s = step;
  }
  d.bytes_per_step_mean = bytes_sum / static_cast<double>(G);
  d.flops_per_step_mean = flops_sum / static_cast<double>(G);
  d.step_time_mean_s = d.time_s / static_cast<double>(G);
  d.tokens_per_s = B * static_cast<double>(G) / d.time_s;
  d.tokens_per_s_per_sequence = static_cast<double>(G) / d.time_s;
  d.memory_bound = d.memory_time_s >= d.compute_time_s;

  // Prefill.
  PrefillFigures& p = r.prefill;
  p.iterative = !plan.cyclic_blocks().empty();
  const PassSchedule sched = pass_schedule(o.prompt, o.m, o.b);
  p.token_by_token = p.iterative && sched.token_by_token;
  p.passes = p.iterative ? sched.passes : 1;
  p.layer_passes = prefill_layer_passes(plan, o.prompt, o.m, o.b);
  const double n = static_cast<double>(N);
  for (int l = 0; l < plan.layers(); ++l) {
    const double P = static_cast<double>(layer_matmul_params(cfg, plan, l));
    const double wl = (P + 2.0 * static_cast<double>(C)) * wbytes;  // + the two norms
    const bool up = plan.is_upward(l);
    const std::int64_t cap = key_cap(cfg, plan, l);
    // Keys token i sees: j <= i (self/downward) or j < i (upward), within the window if sliding.
    const double a = up ? 0.0 : 1.0;
    const double kcap = cap == kNoCap ? std::numeric_limits<double>::infinity()
                                      : static_cast<double>(cap) - (up ? 1.0 : 0.0);
    const double writes = plan.is_kv_layer(l) ? 1.0 : 0.0;
    const bool in_block = plan.cyclic_block_of(l) >= 0;
    if (in_block && p.token_by_token) {
      // N sequential decode-like steps: token i reads the layer's weights and its seen K/V.
      for (std::int64_t i = 0; i < N; ++i) {
        const double seen = std::min(static_cast<double>(i) + a, kcap);
        const double flops = B * (2.0 * P + attention_flops(cfg, seen));
        const double bytes = wl + B * unit * (seen + writes);
        p.flops += flops;
        p.bytes += bytes;
        p.time_s += roofline_time_s(bytes, flops, gpu);
      }
      continue;
    }
    const double keys = sum_min(a, n, kcap);
    const double flops = B * (2.0 * n * P + attention_flops(cfg, keys));
    // Weights once per pass; the bank's N tokens read once (flash-style), written if a KV layer.
    const double bytes = wl + B * n * unit * (1.0 + writes);
    const double passes = in_block ? sched.passes : 1;
    p.flops += passes * flops;
    p.bytes += passes * bytes;
    p.time_s += passes * roofline_time_s(bytes, flops, gpu);
  }
  {  // classifier on the last prompt position (+ the final norm's weights)
    const double bytes = static_cast<double>(V * C + C) * wbytes;
    const double flops = B * 2.0 * static_cast<double>(V * C);
    p.flops += flops;
    p.bytes += bytes;
    p.time_s += roofline_time_s(bytes, flops, gpu);
  }
  p.flops_per_sequence = p.flops / B;
  p.tokens_per_s = B * n / p.time_s;

  r.total_time_s = p.time_s + d.time_s;
  r.end_to_end_tokens_per_s = B * static_cast<double>(G) / r.total_time_s;
  return r;
}

}  // namespace

std::int64_t GpuSpec::memory_bytes() const {
  return static_cast<std::int64_t>(std::llround(memory_gib * 1073741824.0));
}

const std::vector<GpuSpec>& gpu_presets() {
  static const std::vector<GpuSpec> list = [] {
    std::vector<GpuSpec> v;
    for (const auto& e : preset_table()) v.push_back(e.spec);
    return v;
  }();
  return list;
}

GpuSpec parse_gpu(const std::string& spec) {
  const std::string key = normalize(spec);
  if (key.rfind("custom", 0) == 0) return parse_custom(spec);
  for (const auto& e : preset_table()) {
    if (key == normalize(e.spec.name)) return e.spec;
    for (const auto& a : e.aliases) {
      if (key == normalize(a)) return e.spec;
    }
  }
  std::string known;
  for (const auto& e : preset_table()) known += (known.empty() ? "" : ", ") + e.spec.name;
  fail("--gpu", spec,
       "unknown GPU; known presets: " + known +
           ", or custom(MEM,BANDWIDTH,TFLOPS) in GiB, GB/s, dense 16-bit TFLOPS, e.g. "
           "custom(80,2039,312)");
}

std::int64_t layer_matmul_params(const ModelConfig& cfg, const KvPlan& plan, int layer) {
  const std::int64_t c = cfg.hidden_size, f = cfg.intermediate_size;
  const std::int64_t q = static_cast<std::int64_t>(cfg.num_attention_heads) * cfg.head_dim;
  const std::int64_t kv = static_cast<std::int64_t>(cfg.num_key_value_heads) * cfg.head_dim;
  std::int64_t n = c * q + q * c + 3 * c * f;    // W_Q, W_O, W_1, W_2, W_3
  if (plan.is_kv_layer(layer)) n += 2 * c * kv;  // W_K, W_V
  return n;
}

double attention_flops(const ModelConfig& cfg, double keys) {
  return 4.0 * cfg.num_attention_heads * cfg.head_dim * keys;
}

double decode_flops_per_token(const ModelConfig& cfg, const KvPlan& plan, std::int64_t tokens) {
  double f = 2.0 * static_cast<double>(static_cast<std::int64_t>(cfg.vocab_size) * cfg.hidden_size);
  for (int l = 0; l < plan.layers(); ++l) {
    f += 2.0 * static_cast<double>(layer_matmul_params(cfg, plan, l));
    f += attention_flops(
        cfg, static_cast<double>(std::min<std::int64_t>(tokens, key_cap(cfg, plan, l))));
  }
  return f;
}

std::int64_t max_batch_that_fits(std::int64_t memory_bytes, std::int64_t reserve_bytes,
                                 std::int64_t weight_bytes, std::int64_t sequence_bytes) {
  const std::int64_t budget = memory_bytes - reserve_bytes - weight_bytes;
  if (budget <= 0 || sequence_bytes <= 0) return 0;
  return budget / sequence_bytes;
}

double roofline_time_s(double bytes, double flops, const GpuSpec& gpu) {
  return std::max(bytes / gpu.bandwidth_bytes_per_s(), flops / gpu.flops_per_s());
}

Simulation simulate(const ModelConfig& cfg, const KvPlan& plan, const std::string& plan_spec,
                    const GpuSpec& gpu, const SimOptions& o) {
  check_int("--prompt", o.prompt, 1, 10'000'000);
  check_int("--gen", o.gen, 1, 1'000'000);
  if (o.batch) check_int("--batch", *o.batch, 1, 10'000'000);
  check_int("--m", o.m, 0, 1000);
  check_int("--b", o.b, 0, 1000);
  if (o.m + o.b < 1) fail("--m + --b", std::to_string(o.m + o.b), "at least one pass is needed");
  if (!(o.reserve_fraction >= 0.0) || o.reserve_fraction > 0.9) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", o.reserve_fraction);
    fail("--reserve", buf, "must be a fraction of the GPU memory in [0, 0.9]");
  }
  if (!(gpu.memory_gib > 0) || !(gpu.bandwidth_gb_s > 0) || !(gpu.tflops > 0)) {
    fail("--gpu", gpu.name, "memory, bandwidth and TFLOPS must all be positive");
  }
  if (plan.layers() != cfg.num_hidden_layers) {
    fail("--plan", plan_spec,
         "has " + std::to_string(plan.layers()) + " layers; the model has " +
             std::to_string(cfg.num_hidden_layers));
  }

  Simulation s;
  s.gpu = gpu;
  s.options = o;
  s.plan = simulate_plan(cfg, plan, plan_spec, gpu, o);
  s.standard =
      simulate_plan(cfg, KvPlan::parse("standard", cfg.num_hidden_layers), "standard", gpu, o);

  const std::int64_t total = static_cast<std::int64_t>(o.prompt) + o.gen;
  if (total > cfg.max_position_embeddings) {
    s.notes.push_back("prompt + gen = " + std::to_string(total) +
                      " exceeds the model's max_position_embeddings = " +
                      std::to_string(cfg.max_position_embeddings) + "; the figures extrapolate");
  }
  for (const PlanSimulation* p : {&s.plan, &s.standard}) {
    if (p == &s.standard && plan.map() == KvPlan::parse("standard", plan.layers()).map()) break;
    if (p->kv_budget_bytes <= 0) {
      s.notes.push_back(p->spec + ": does not fit: the weights (" +
                        human_gb(static_cast<double>(p->weight_bytes)) +
                        ") exceed the usable memory (" +
                        human_gb(static_cast<double>(p->memory_bytes - p->reserve_bytes)) +
                        "); times are shown for batch " + std::to_string(p->batch));
    } else if (!p->fits) {
      s.notes.push_back(
          p->spec + ": batch " + std::to_string(p->batch) + " does not fit: it needs " +
          human_gb(static_cast<double>(p->memory_used_bytes)) + " of " +
          human_gb(static_cast<double>(p->memory_bytes)) + "; the largest batch that fits is " +
          std::to_string(p->max_batch) +
          (p->max_batch == 0 ? " (not even one sequence of " + std::to_string(total) + " tokens)"
                             : std::string()));
    }
  }
  if (s.plan.prefill.token_by_token) {
    s.notes.push_back(
        "a prompt of " + std::to_string(o.prompt) + " <= m + b = " + std::to_string(o.m + o.b) +
        " tokens encodes the cyclic block token by token: " + std::to_string(o.prompt) +
        " sequential decode-like steps of the block's layers");
  }
  auto sixteen = [](Dtype d) { return d == Dtype::f16 || d == Dtype::bf16; };
  if (!sixteen(o.kv_dtype) || !sixteen(o.weight_dtype)) {
    s.notes.push_back(
        "compute is modelled at the GPU's dense 16-bit tensor peak whatever the dtype (bytes "
        "follow the dtype)");
  }
  return s;
}

}  // namespace kvlab
