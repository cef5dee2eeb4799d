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

constexpr double kInf = std::numeric_limits<double>::infinity();

// Bytes of one activation element: the weights' dtype when it is a float dtype, else 16-bit
// (fp8/int8 weights are dequantised into 16-bit activations).
int activation_element_bytes(Dtype weights) {
  const int w = dtype_bytes(weights);
  return w >= 2 ? std::min(w, 4) : 2;
}

// Tokens a bank (or a reader, with its cap) holds / sees at decode context t (the new token
// included): the policy keeps min(t - 1, budget) between steps and the new token joins them.
double decode_keys(double t, double budget, double cap) {
  const double held = budget > 0 ? std::min(t - 1, budget) + 1 : t;
  return std::min(held, cap);
}

PlanSimulation simulate_plan(const ModelConfig& cfg, const KvPlan& plan, const std::string& spec,
                             const GpuSpec& gpu, const SimOptions& o) {
  PlanSimulation r;
  r.spec = spec;
  r.map = plan.to_string();
  r.num_kv_layers = plan.num_kv_layers();
  r.window = cfg.sliding_window;
  for (int t : plan.kv_layers()) r.sliding_kv_layers += plan.bank_is_sliding(t) ? 1 : 0;
  const bool ideal = o.ideal;
  const ActivationModel& am = o.activations;
  const EfficiencyModel& em = o.efficiency;
  const int wbytes = dtype_bytes(o.weight_dtype);
  const int a = activation_element_bytes(o.weight_dtype);
  const std::int64_t N = o.prompt, G = o.gen;
  const std::int64_t C = cfg.hidden_size, V = cfg.vocab_size;
  const double Cd = static_cast<double>(C), Vd = static_cast<double>(V);
  const double HD = static_cast<double>(cfg.num_attention_heads) * cfg.head_dim;
  const double KVD = static_cast<double>(cfg.num_key_value_heads) * cfg.head_dim;
  const double F = cfg.intermediate_size;
  const double Wwin = cfg.sliding_window;
  const double budget = o.policy.budget;  // 0: no policy
  const double n = static_cast<double>(N);

  // ---- Memory.
  r.weight_params = cfg.parameter_count(r.num_kv_layers);
  r.weight_bytes = r.weight_params * wbytes;
  r.kv_bytes_per_token =
      kv_bytes_per_token(plan, cfg.num_key_value_heads, cfg.head_dim, o.kv_dtype);
  const double unit = static_cast<double>(
      kv_bank_bytes(1, cfg.num_key_value_heads, cfg.head_dim, o.kv_dtype));  // one token, one bank
  // Per bank: tokens at the end of prefill (the whole prompt: §5 evicts after it) and at the
  // decode peak (the last step, t = N + G, with the new token).
  double prefill_cells = 0, decode_cells = 0, decode_cells_prev = 0, peak_cells = 0;
  for (int t : plan.kv_layers()) {
    const double cap = plan.bank_is_sliding(t) ? Wwin : kInf;
    const double p = std::min(n, cap);
    const double d = decode_keys(static_cast<double>(N + G), budget, cap);
    const double d_prev = G >= 2 ? decode_keys(static_cast<double>(N + G - 1), budget, cap) : p;
    prefill_cells += p;
    decode_cells += d;
    decode_cells_prev += d_prev;
    peak_cells += std::max(p, d);
  }
  r.kv_bytes_per_sequence = static_cast<std::int64_t>(std::llround(peak_cells * unit));
  const double score_bytes_per_cell =
      static_cast<double>(o.policy.score_arrays) * cfg.num_key_value_heads * 4.0;
  r.policy_bytes_per_sequence =
      static_cast<std::int64_t>(std::llround(peak_cells * score_bytes_per_cell));
  const double chunk = am.prefill_chunk > 0 ? std::min<double>(am.prefill_chunk, n) : n;
  if (ideal) {
    r.sequence_bytes = sat_add(r.kv_bytes_per_sequence, r.policy_bytes_per_sequence);
  } else {
    const double a_prefill =
        std::max(layer_activation_bytes(cfg, chunk, n, a, am.attention),
                 logits_activation_bytes(cfg, am.logits == LogitsScope::all ? chunk : 1.0, chunk, a,
                                         am.logits_dtype));
    const double a_decode =
        std::max(layer_activation_bytes(cfg, 1, static_cast<double>(N + G), a, am.attention),
                 logits_activation_bytes(cfg, 1, 1, a, am.logits_dtype));
    r.activation_bytes_per_sequence = static_cast<std::int64_t>(std::llround(a_prefill));
    const double prefill_seq = prefill_cells * (unit + score_bytes_per_cell) + a_prefill;
    const double copies = am.cache_growth == CacheGrowth::concat ? 1.0 : 0.0;
    const double decode_seq = (decode_cells + copies * decode_cells_prev) * unit +
                              decode_cells * score_bytes_per_cell + a_decode;
    r.sequence_bytes = static_cast<std::int64_t>(std::ceil(std::max(prefill_seq, decode_seq)));
    r.overhead_bytes = static_cast<std::int64_t>(std::llround(am.overhead_gib * 1073741824.0));
  }
  r.memory_bytes = gpu.memory_bytes();
  r.reserve_bytes = static_cast<std::int64_t>(
      std::floor(o.reserve_fraction * static_cast<double>(r.memory_bytes)));
  r.kv_budget_bytes = r.memory_bytes - r.reserve_bytes - r.overhead_bytes - r.weight_bytes;
  r.max_batch = max_batch_that_fits(r.memory_bytes, r.reserve_bytes + r.overhead_bytes,
                                    r.weight_bytes, r.sequence_bytes);
  if (o.batch) {
    r.batch = *o.batch;
    r.fits = r.batch <= r.max_batch;
  } else {
    r.batch = r.max_batch > 0 ? r.max_batch : 1;
    r.fits = r.max_batch > 0;
  }
  r.memory_used_bytes = sat_add(sat_add(r.weight_bytes, sat_mul(r.batch, r.sequence_bytes)),
                                r.reserve_bytes + r.overhead_bytes);
  const double B = static_cast<double>(r.batch);

  // ---- Per-layer facts shared by decode and prefill.
  std::int64_t matmul_params = V * C;  // classifier (or the tied embedding used as one)
  for (int l = 0; l < plan.layers(); ++l) matmul_params += layer_matmul_params(cfg, plan, l);
  int uncapped = 0, windowed = 0;
  for (int l = 0; l < plan.layers(); ++l) (key_cap(cfg, plan, l) == kNoCap ? uncapped : windowed)++;
  auto keys_at = [&](double t) {
    return uncapped * decode_keys(t, budget, kInf) + windowed * decode_keys(t, budget, Wwin);
  };
  const double bw = gpu.bandwidth_bytes_per_s(), peak = gpu.flops_per_s();
  // The efficiency model's operations (M tokens through them at once).
  auto gemm = [&](double in, double out, double M) {
    return op_time_s(in * out * wbytes + M * (in + out) * a, 2.0 * M * in * out, gpu, em);
  };
  auto elementwise_bytes = [&](double M, bool kv_layer) {
    // two RMSNorms (read + write C each), RoPE on q and k, SiLU·mul (read 2F, write F), two
    // residual adds (read 2C, write C each).
    return M * a * (10.0 * Cd + 2.0 * (HD + (kv_layer ? KVD : 0.0)) + 3.0 * F);
  };
  auto layer_const_time = [&](int l, double M) {  // everything but attention
    const bool kv = plan.is_kv_layer(l);
    return gemm(Cd, HD + (kv ? 2.0 * KVD : 0.0), M) + gemm(HD, Cd, M) + gemm(Cd, 2.0 * F, M) +
           gemm(F, Cd, M) + op_time_s(elementwise_bytes(M, kv), 0, gpu, em);
  };
  auto layer_const_bytes = [&](int l, double M) {
    const bool kv = plan.is_kv_layer(l);
    const double P = static_cast<double>(layer_matmul_params(cfg, plan, l));
    const double io = (Cd + HD + (kv ? 2.0 * KVD : 0.0)) + (HD + Cd) + (Cd + 2.0 * F) + (F + Cd);
    return P * wbytes + M * io * a + elementwise_bytes(M, kv);
  };
  // Attention of `queries` rows (whole batch) that see `key_sum` keys in all and read `read`
  // K/V tokens (+ `written`): FLOPs 4·H·D per query-key pair; eager adds the scores' traffic.
  auto attention_time = [&](double queries, double key_sum, double read, double written,
                            double rect) {
    double bytes = (read + written) * unit + queries * 2.0 * HD * a;
    if (am.attention == AttentionImpl::eager) {
      bytes += cfg.num_attention_heads * rect * (4.0 * a + 8.0);
    }
    return op_time_s(bytes, attention_flops(cfg, key_sum), gpu, em);
  };
  auto classifier_time = [&](double M) {
    return gemm(Cd, Vd, M) + op_time_s(M * a * 2.0 * Cd, 0, gpu, em);  // + the final norm
  };

  // ---- Decode: G steps at contexts N + 1 .. N + G.
  DecodeFigures& d = r.decode;
  d.weight_bytes_read_per_step = (r.weight_params - (cfg.tie_word_embeddings ? 0 : V * C)) * wbytes;
  auto kv_read = [&](double t) {
    return static_cast<std::int64_t>(std::llround(keys_at(t) * unit));
  };
  d.kv_bytes_read_per_step_first = kv_read(static_cast<double>(N + 1));
  d.kv_bytes_read_per_step_last = kv_read(static_cast<double>(N + G));
  d.flops_per_token_first =
      2.0 * static_cast<double>(matmul_params) + attention_flops(cfg, keys_at(n + 1));
  d.flops_per_token_last = 2.0 * static_cast<double>(matmul_params) +
                           attention_flops(cfg, keys_at(static_cast<double>(N + G)));
  // Under the efficiency model a step is: the layers' GEMMs and elementwise kernels (the same
  // every step), attention per layer (one key count per cap), and the classifier.
  double step_const = 0, step_const_bytes = 0;
  if (!ideal) {
    for (int l = 0; l < plan.layers(); ++l) {
      step_const += layer_const_time(l, B);
      step_const_bytes += layer_const_bytes(l, B);
    }
    step_const += classifier_time(B);
    step_const_bytes += Vd * Cd * wbytes + B * (Cd + Vd) * a + B * a * 2.0 * Cd;
  }
  double bytes_sum = 0, flops_sum = 0;
  for (std::int64_t j = 0; j < G; ++j) {
    const double t = static_cast<double>(N + j + 1);
    const double keys = keys_at(t);
    const double flops =
        B * (2.0 * static_cast<double>(matmul_params) + attention_flops(cfg, keys));
    double bytes = 0, step = 0;
    if (ideal) {
      bytes = static_cast<double>(d.weight_bytes_read_per_step) + B * keys * unit;
      step = std::max(bytes / bw, flops / peak);
    } else {
      const double ku = decode_keys(t, budget, kInf), kw = decode_keys(t, budget, Wwin);
      bytes = step_const_bytes + B * (keys + static_cast<double>(r.num_kv_layers)) * unit +
              B * plan.layers() * 2.0 * HD * a;
      step = step_const;
      if (uncapped > 0) step += uncapped * attention_time(B, B * ku, B * ku, 0, B * ku);
      if (windowed > 0) step += windowed * attention_time(B, B * kw, B * kw, 0, B * kw);
      if (am.cache_growth == CacheGrowth::concat) {
        // Each bank's cache is copied into a tensor one token longer: read t - 1, write t.
        for (int bank : plan.kv_layers()) {
          const double cap = plan.bank_is_sliding(bank) ? Wwin : kInf;
          const double held = decode_keys(t, budget, cap);
          const double copy = B * (2.0 * held - 1.0) * unit;
          step += op_time_s(copy, 0, gpu, em);
          bytes += copy;
        }
      }
    }
    const double mem_t = bytes / bw, comp_t = flops / peak;
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

  // ---- Prefill.
  PrefillFigures& p = r.prefill;
  p.iterative = !plan.cyclic_blocks().empty();
  const PassSchedule sched = pass_schedule(o.prompt, o.m, o.b);
  p.token_by_token = p.iterative && sched.token_by_token;
  p.passes = p.iterative ? sched.passes : 1;
  p.layer_passes = prefill_layer_passes(plan, o.prompt, o.m, o.b);
  const std::int64_t chunk_tokens = ideal ? N : static_cast<std::int64_t>(chunk);
  p.chunks = static_cast<int>((N + chunk_tokens - 1) / chunk_tokens);
  for (int l = 0; l < plan.layers(); ++l) {
    const double P = static_cast<double>(layer_matmul_params(cfg, plan, l));
    const double wl = (P + 2.0 * static_cast<double>(C)) * wbytes;  // + the two norms
    const bool up = plan.is_upward(l);
    const std::int64_t cap = key_cap(cfg, plan, l);
    // Keys token i sees: j <= i (self/downward) or j < i (upward), within the window if sliding.
    const double a0 = up ? 0.0 : 1.0;
    const double kcap = cap == kNoCap ? kInf : static_cast<double>(cap) - (up ? 1.0 : 0.0);
    const double writes = plan.is_kv_layer(l) ? 1.0 : 0.0;
    const bool in_block = plan.cyclic_block_of(l) >= 0;
    if (in_block && p.token_by_token) {
      // N sequential decode-like steps: token i reads the layer's weights and its seen K/V.
      const double tb_const = ideal ? 0.0 : layer_const_time(l, B);
      for (std::int64_t i = 0; i < N; ++i) {
        const double seen = std::min(static_cast<double>(i) + a0, kcap);
        const double flops = B * (2.0 * P + attention_flops(cfg, seen));
        const double bytes = wl + B * unit * (seen + writes);
        p.flops += flops;
        p.bytes += bytes;
        p.time_s += ideal ? roofline_time_s(bytes, flops, gpu)
                          : tb_const + attention_time(B, B * seen, B * seen, B * writes, B * seen);
      }
      continue;
    }
    const double passes = in_block ? sched.passes : 1;
    if (ideal) {
      const double keys = sum_min(a0, n, kcap);
      const double flops = B * (2.0 * n * P + attention_flops(cfg, keys));
      // Weights once per pass; the bank's N tokens read once (flash-style), written if a KV layer.
      const double bytes = wl + B * n * unit * (1.0 + writes);
      p.flops += passes * flops;
      p.bytes += passes * bytes;
      p.time_s += passes * roofline_time_s(bytes, flops, gpu);
      continue;
    }
    // Chunks of c tokens of every sequence: chunk k covers tokens o .. o + c - 1.
    for (std::int64_t off = 0; off < N; off += chunk_tokens) {
      const double c = static_cast<double>(std::min(chunk_tokens, N - off));
      const double o0 = static_cast<double>(off);
      const double M = B * c;
      const double keys = sum_min(o0 + a0, c, kcap);  // Σ over the chunk's tokens
      const double visible = std::min(o0 + c - (up ? 1.0 : 0.0), kcap);
      const double flops = B * (2.0 * c * P + attention_flops(cfg, keys));
      const double bytes = layer_const_bytes(l, M) + B * unit * (visible + c * writes);
      const double time = layer_const_time(l, M) +
                          attention_time(M, B * keys, B * visible, B * c * writes, M * visible);
      p.flops += passes * flops;
      p.bytes += passes * bytes;
      p.time_s += passes * time;
    }
  }
  {  // classifier on the last prompt position (all positions with --logits all), final norm
    const double rows = (!ideal && am.logits == LogitsScope::all) ? B * n : B;
    const double bytes = static_cast<double>(V * C + C) * wbytes;
    const double flops = rows * 2.0 * static_cast<double>(V * C);
    p.flops += flops;
    p.bytes += bytes;
    if (ideal) {
      p.time_s += roofline_time_s(bytes, flops, gpu);
    } else {
      const double chunk_rows = am.logits == LogitsScope::all ? B * chunk : B;
      p.time_s += (rows / chunk_rows) * classifier_time(chunk_rows);
    }
  }
  p.flops_per_sequence = p.flops / B;
  p.time_per_sequence_s = p.time_s / B;
  p.tokens_per_s = B * n / p.time_s;

  r.total_time_s = p.time_s + d.time_s;
  r.end_to_end_tokens_per_s = B * static_cast<double>(G) / r.total_time_s;
  r.end_to_end_tokens_per_s_per_sequence = static_cast<double>(G) / r.total_time_s;
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

namespace {
template <typename E>
E pick(const char* field, const std::string& v,
       std::initializer_list<std::pair<const char*, E>> words) {
  std::string allowed;
  for (const auto& [name, e] : words) {
    if (v == name) return e;
    allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  }
  fail(field, v, "must be one of " + allowed);
}
}  // namespace

AttentionImpl parse_attention(const std::string& s) {
  return pick<AttentionImpl>("--attention", s,
                             {{"flash", AttentionImpl::flash}, {"eager", AttentionImpl::eager}});
}
LogitsScope parse_logits(const std::string& s) {
  return pick<LogitsScope>("--logits", s, {{"last", LogitsScope::last}, {"all", LogitsScope::all}});
}
Dtype parse_logits_dtype(const std::string& s) {
  return pick<Dtype>("--logits-dtype", s,
                     {{"f32", Dtype::f32}, {"f16", Dtype::f16}, {"bf16", Dtype::bf16}});
}
CacheGrowth parse_cache_growth(const std::string& s) {
  return pick<CacheGrowth>(
      "--cache-growth", s,
      {{"preallocated", CacheGrowth::preallocated}, {"concat", CacheGrowth::concat}});
}
std::string to_string(AttentionImpl a) {
  return a == AttentionImpl::flash ? "flash" : "eager";
}
std::string to_string(LogitsScope l) {
  return l == LogitsScope::last ? "last" : "all";
}
std::string to_string(CacheGrowth g) {
  return g == CacheGrowth::preallocated ? "preallocated" : "concat";
}

double roofline_time_s(double bytes, double flops, const GpuSpec& gpu) {
  return std::max(bytes / gpu.bandwidth_bytes_per_s(), flops / gpu.flops_per_s());
}

double compute_efficiency(double flops, const GpuSpec& gpu, const EfficiencyModel& e) {
  const double half = e.compute_latency_s * e.compute_max * gpu.flops_per_s();
  return flops <= 0 ? 0.0 : e.compute_max * flops / (flops + half);
}

double bandwidth_efficiency(double bytes, const GpuSpec& gpu, const EfficiencyModel& e) {
  const double half = e.memory_latency_s * e.memory_max * gpu.bandwidth_bytes_per_s();
  return bytes <= 0 ? 0.0 : e.memory_max * bytes / (bytes + half);
}

double op_time_s(double bytes, double flops, const GpuSpec& gpu, const EfficiencyModel& e) {
  // bytes / (BW · e_bw(bytes)) = bytes / (BW · max) + latency: the same for FLOPs.
  const double mem =
      bytes > 0 ? bytes / (gpu.bandwidth_bytes_per_s() * e.memory_max) + e.memory_latency_s : 0.0;
  const double comp =
      flops > 0 ? flops / (gpu.flops_per_s() * e.compute_max) + e.compute_latency_s : 0.0;
  return std::max(mem, comp);
}

double layer_activation_bytes(const ModelConfig& cfg, double tokens, double keys, int a,
                              AttentionImpl attention) {
  const double C = cfg.hidden_size, F = cfg.intermediate_size;
  const double HD = static_cast<double>(cfg.num_attention_heads) * cfg.head_dim;
  const double KVD = static_cast<double>(cfg.num_key_value_heads) * cfg.head_dim;
  const double H = cfg.num_attention_heads;
  const double working = tokens * a * (2.0 * C + std::max(2.0 * HD + 2.0 * KVD, 3.0 * F));
  const double scores =
      attention == AttentionImpl::eager ? H * tokens * keys * (2.0 * a + 4.0) : H * tokens * 4.0;
  return working + scores;
}

double logits_activation_bytes(const ModelConfig& cfg, double rows, double tokens, int a,
                               Dtype logits_dtype) {
  const int l = dtype_bytes(logits_dtype);
  const double per = static_cast<double>(l) + (l > a ? static_cast<double>(a) : 0.0);
  return rows * static_cast<double>(cfg.vocab_size) * per +
         tokens * static_cast<double>(cfg.hidden_size) * a;
}

Simulation simulate(const ModelConfig& cfg, const KvPlan& plan, const std::string& plan_spec,
                    const GpuSpec& gpu, const SimOptions& o) {
  return simulate(cfg, {{plan, plan_spec}}, gpu, o);
}

Simulation simulate(const ModelConfig& model,
                    const std::vector<std::pair<KvPlan, std::string>>& plans, const GpuSpec& gpu,
                    const SimOptions& o) {
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
  if (plans.empty()) fail("--plan", "(none)", "give at least one plan");
  ModelConfig cfg = model;
  if (o.kv_heads) {
    const int h = *o.kv_heads;
    if (h < 1 || h > cfg.num_attention_heads || cfg.num_attention_heads % h != 0) {
      fail("--kv-heads", std::to_string(h),
           "must divide the model's num_attention_heads = " +
               std::to_string(cfg.num_attention_heads) + " (1: MQA; " +
               std::to_string(cfg.num_attention_heads) + ": MHA)");
    }
    cfg.num_key_value_heads = h;
  }
  if (o.window) {
    check_int("--window", *o.window, 1, 1 << 24);
    cfg.sliding_window = *o.window;
  }
  check_int("--budget", o.policy.budget, 0, 10'000'000);
  if (o.policy.score_arrays < 0 || o.policy.score_arrays > 2) {
    fail("--policy", o.policy.name, "score arrays per cell must be 0, 1 or 2");
  }
  check_int("--prefill-chunk", o.activations.prefill_chunk, 0, 10'000'000);
  if (o.activations.prefill_chunk > 0 && !o.ideal) {
    const std::int64_t chunks =
        (static_cast<std::int64_t>(o.prompt) + o.activations.prefill_chunk - 1) /
        o.activations.prefill_chunk;
    if (chunks > 100'000) {
      fail("--prefill-chunk", std::to_string(o.activations.prefill_chunk),
           "gives " + std::to_string(chunks) + " prefill steps for " + std::to_string(o.prompt) +
               " prompt tokens; at most 100000 are simulated");
    }
  }
  if (!(o.activations.overhead_gib >= 0) || o.activations.overhead_gib >= gpu.memory_gib) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", o.activations.overhead_gib);
    fail("--overhead", buf,
         "must be in [0, " + std::to_string(static_cast<long long>(gpu.memory_gib)) +
             ") GiB (the GPU's memory)");
  }
  {
    const Dtype l = o.activations.logits_dtype;
    if (l != Dtype::f32 && l != Dtype::f16 && l != Dtype::bf16) {
      fail("--logits-dtype", dtype_name(l), "must be f32, f16 or bf16");
    }
  }
  const EfficiencyModel& e = o.efficiency;
  for (const auto& [name, v] : {std::pair<const char*, double>{"compute_max", e.compute_max},
                                {"memory_max", e.memory_max}}) {
    if (!(v > 0) || v > 1)
      fail(std::string("efficiency.") + name, std::to_string(v), "must be in (0, 1]");
  }
  for (const auto& [name, v] :
       {std::pair<const char*, double>{"compute_latency_s", e.compute_latency_s},
        {"memory_latency_s", e.memory_latency_s}}) {
    if (!(v >= 0) || v > 1)
      fail(std::string("efficiency.") + name, std::to_string(v), "must be in [0, 1] s");
  }
  for (const auto& [plan, spec] : plans) {
    if (plan.layers() != cfg.num_hidden_layers) {
      fail("--plan", spec,
           "has " + std::to_string(plan.layers()) + " layers; the model has " +
               std::to_string(cfg.num_hidden_layers));
    }
  }

  Simulation s;
  s.gpu = gpu;
  s.options = o;
  s.config = cfg;
  for (const auto& [plan, spec] : plans) s.plans.push_back(simulate_plan(cfg, plan, spec, gpu, o));
  const KvPlan standard = KvPlan::parse("standard", cfg.num_hidden_layers);
  s.standard = simulate_plan(cfg, standard, "standard", gpu, o);

  const std::int64_t total = static_cast<std::int64_t>(o.prompt) + o.gen;
  if (total > cfg.max_position_embeddings) {
    s.notes.push_back("prompt + gen = " + std::to_string(total) +
                      " exceeds the model's max_position_embeddings = " +
                      std::to_string(cfg.max_position_embeddings) + "; the figures extrapolate");
  }
  std::vector<const PlanSimulation*> all;
  bool standard_given = false;
  for (size_t i = 0; i < s.plans.size(); ++i) {
    all.push_back(&s.plans[i]);
    standard_given |= plans[i].first.map() == standard.map();
  }
  if (!standard_given) all.push_back(&s.standard);
  for (const PlanSimulation* p : all) {
    if (p->kv_budget_bytes <= 0) {
      s.notes.push_back(
          p->spec + ": does not fit: the weights (" +
          human_gb(static_cast<double>(p->weight_bytes)) + ") exceed the usable memory (" +
          human_gb(static_cast<double>(p->memory_bytes - p->reserve_bytes - p->overhead_bytes)) +
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
  for (const PlanSimulation& p : s.plans) {
    if (p.prefill.token_by_token) {
      s.notes.push_back(
          p.spec + ": a prompt of " + std::to_string(o.prompt) +
          " <= m + b = " + std::to_string(o.m + o.b) +
          " tokens encodes the cyclic block token by token: " + std::to_string(o.prompt) +
          " sequential decode-like steps of the block's layers");
    }
  }
  if (o.policy.budget > 0) {
    s.notes.push_back(
        "policy " + o.policy.name + ", budget " + o.policy.budget_text + " = " +
        std::to_string(o.policy.budget) +
        " tokens per bank: the prompt is held whole until the prefill ends "
        "(techniques.md §5), then each bank keeps at most the budget between "
        "decode steps" +
        (o.policy.budget >= total ? std::string("; this budget never evicts") : std::string()));
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
