// The analytic simulator: memory fit, decode and prefill times of a model + KV plans on one GPU,
// from a roofline (time = max(bytes / bandwidth, FLOPs / peak)) corrected by an efficiency model
// (achievable fractions of the peaks by operation size), and memory from weights, K/V and an
// activation model (--ideal: the pure roofline and weights + K/V + reserve). Every formula is
// written out in docs/simulator.md; the K/V figures come from core/accounting (techniques.md §7)
// and the extra iterative passes of upward plans from core/plan's pass schedule (techniques.md §3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/plan.hpp"

namespace kvlab {

// One GPU as the roofline sees it. Units: memory in GiB (2^30 bytes: a GPU's "80 GB" of HBM is
// 80 GiB, an A100 80GB reports 81920 MiB), bandwidth in GB/s (10^9 bytes/s), dense (no sparsity)
// 16-bit tensor-core peak in TFLOPS (10^12 FLOP/s).
struct GpuSpec {
  std::string name;         // "a100-80gb", or "custom" for custom(mem,bandwidth,flops)
  std::string description;  // "NVIDIA A100 80GB SXM"
  std::string source;       // where the figures come from
  double memory_gib = 0;
  double bandwidth_gb_s = 0;
  double tflops = 0;

  std::int64_t memory_bytes() const;
  double bandwidth_bytes_per_s() const { return bandwidth_gb_s * 1e9; }
  double flops_per_s() const { return tflops * 1e12; }
};

// A100 40GB, A100 80GB, H100 80GB SXM, H200, L40S, RTX 3090, RTX 4090 (public datasheets).
const std::vector<GpuSpec>& gpu_presets();

// A preset name (case, '-', '_' and spaces ignored: "A100 80GB" == "a100-80gb"; aliases such as
// "h100" are accepted) or "custom(MEM_GiB,BANDWIDTH_GB/s,TFLOPS)", e.g. "custom(80,2039,312)".
// Throws kvlab::Error naming --gpu, the value and what is allowed.
GpuSpec parse_gpu(const std::string& spec);

// How the batch's memory beyond weights and K/V is modelled (docs/simulator.md, "Activations").
enum class AttentionImpl { flash, eager };        // eager: scores materialised (HF "eager")
enum class LogitsScope { last, all };             // logits of the last prompt position, or all
enum class CacheGrowth { preallocated, concat };  // concat: each step copies the cache (HF tuples)

// The flag words: "flash" | "eager", "last" | "all", "f32" | "f16" | "bf16", "preallocated" |
// "concat". Parsers throw kvlab::Error naming --attention, --logits, --logits-dtype,
// --cache-growth.
AttentionImpl parse_attention(const std::string& s);
LogitsScope parse_logits(const std::string& s);
Dtype parse_logits_dtype(const std::string& s);
CacheGrowth parse_cache_growth(const std::string& s);
std::string to_string(AttentionImpl a);
std::string to_string(LogitsScope l);
std::string to_string(CacheGrowth g);

struct ActivationModel {
  AttentionImpl attention = AttentionImpl::flash;
  LogitsScope logits = LogitsScope::last;
  Dtype logits_dtype = Dtype::f32;  // f32: the 16-bit logits are upcast (both live at once)
  int prefill_chunk = 0;  // tokens of every sequence per prefill step; 0: the whole prompt
  CacheGrowth cache_growth = CacheGrowth::preallocated;
  double overhead_gib = 0;  // a fixed framework term (CUDA context, library workspaces), GiB
};

// Achievable fractions of the peak by operation size (docs/simulator.md, "Efficiency"):
//   e(size) = max · size / (size + latency · max · peak), monotone in size, in (0, max].
// Equivalently an operation takes size / (max · peak) + latency. Defaults fitted to Vidur's
// measured A100 Llama-2-7B operator profile (microsoft/vidur, data/profiling/compute/a100/
// meta-llama/Llama-2-7b-hf/mlp.csv).
struct EfficiencyModel {
  double compute_max = 0.70;          // of the dense 16-bit tensor peak
  double compute_latency_s = 9.5e-6;  // per GEMM
  double memory_max = 0.84;           // of the datasheet bandwidth
  double memory_latency_s = 7.0e-6;   // per memory-bound kernel
};

// A sequence policy (techniques.md §5) as the simulator sees it: banks keep at most `budget`
// tokens between steps (0: no policy, every token is kept).
struct SimPolicy {
  std::string name = "full";  // as given: full, window[:W], streaming[:S], h2o[:R][,norm=count]
  std::string budget_text;    // as given: "64" or "25%" (empty for full)
  int budget = 0;             // tokens, resolved against the prompt; 0: full
  int score_arrays = 0;       // float32 arrays per kept cell and KV head: h2o 1, norm=count 2
};

struct SimOptions {
  int prompt = 0;                     // N prompt tokens, >= 1
  int gen = 0;                        // G generated tokens (decode steps), >= 1
  std::optional<std::int64_t> batch;  // sequences in flight; unset: the largest that fits
  Dtype kv_dtype = Dtype::f16;        // K/V cache dtype
  Dtype weight_dtype = Dtype::f16;    // weights dtype
  int m = 7;                          // LCKV passes (techniques.md §3)
  int b = 2;
  double reserve_fraction = 0.10;  // memory kept back for allocator fragmentation, the CUDA
                                   // context and what the activation model does not name
  std::optional<int> kv_heads;     // --kv-heads: overrides the model's H_kv (divides H)
  std::optional<int> window;       // --window: overrides the model's sliding window W
  SimPolicy policy;
  ActivationModel activations;
  EfficiencyModel efficiency;
  bool ideal = false;  // --ideal: the pure model (roofline times; weights + K/V + reserve memory)
};

// Decode: G steps; step j = 0..G-1 attends over t_j = N + j + 1 tokens (the cache grows from N + 1
// to N + G tokens). Figures are per step and averaged over the G steps.
struct DecodeFigures {
  std::int64_t weight_bytes_read_per_step = 0;    // all weights but an untied input embedding
  std::int64_t kv_bytes_read_per_step_first = 0;  // per sequence, at t = N + 1
  std::int64_t kv_bytes_read_per_step_last = 0;   // per sequence, at t = N + G
  double flops_per_token_first = 0;               // per sequence, at t = N + 1
  double flops_per_token_last = 0;                // per sequence, at t = N + G
  double bytes_per_step_mean = 0;                 // weights + batch * K/V, mean over the G steps
  double flops_per_step_mean = 0;                 // batch * FLOPs per token, mean over the G steps
  double memory_time_s = 0;                       // sum over steps of bytes / bandwidth
  double compute_time_s = 0;                      // sum over steps of FLOPs / peak
  double time_s = 0;                              // the G steps (ideal: Σ max(both))
  double step_time_mean_s = 0;                    // time_s / G: each sequence's time per token
  double step_time_first_s = 0;
  double step_time_last_s = 0;
  double tokens_per_s = 0;               // batch * G / time_s (whole batch)
  double tokens_per_s_per_sequence = 0;  // G / time_s
  bool memory_bound = true;              // memory_time_s >= compute_time_s
};

// Prefill of the batch's prompts: every layer once, layers inside a cyclic block once per pass
// (m + b passes), or token by token (N sequential decode-like steps of the block's layers) when
// N <= m + b; then the classifier on the last prompt position.
struct PrefillFigures {
  bool iterative = false;       // the plan has cyclic blocks
  bool token_by_token = false;  // iterative and N <= m + b
  int passes = 1;               // passes over each cyclic block (N when token by token)
  double layer_passes = 0;      // core::prefill_layer_passes: Σ_l passes of layer l
  int chunks = 1;               // prefill steps per layer pass (ceil(N / prefill_chunk))
  double flops = 0;             // whole batch
  double bytes = 0;             // whole batch
  double flops_per_sequence = 0;
  double time_s = 0;               // whole batch
  double time_per_sequence_s = 0;  // time_s / batch
  double tokens_per_s = 0;         // batch * N / time_s
};

struct PlanSimulation {
  std::string spec;  // as given ("cla:2") or "standard"
  std::string map;   // text form
  int num_kv_layers = 0;
  int sliding_kv_layers = 0;       // banks that hold at most the window
  int window = 0;                  // the window W sliding layers assume
  std::int64_t weight_params = 0;  // ModelConfig::parameter_count(num_kv_layers)
  std::int64_t weight_bytes = 0;
  std::int64_t kv_bytes_per_token = 0;         // techniques.md §7 (every bank, before any cap)
  std::int64_t kv_bytes_per_sequence = 0;      // peak K/V of one sequence: sliding banks and the
                                               // policy's budget applied
  std::int64_t policy_bytes_per_sequence = 0;  // H2O score arrays (§7: kept apart from K/V)
  std::int64_t activation_bytes_per_sequence = 0;  // prefill peak of the activation model
  std::int64_t sequence_bytes = 0;  // what one more sequence costs: max(prefill, decode) peak
  std::int64_t memory_bytes = 0;
  std::int64_t reserve_bytes = 0;      // reserve_fraction * memory
  std::int64_t overhead_bytes = 0;     // the activation model's fixed framework term
  std::int64_t kv_budget_bytes = 0;    // memory - reserve - overhead - weights (negative: no fit)
  std::int64_t max_batch = 0;          // floor(kv_budget / sequence_bytes), >= 0
  std::int64_t batch = 0;              // the batch simulated: the requested one, else max_batch
                                       // (1 when nothing fits, to still show the times)
  bool fits = false;                   // batch >= 1 and batch <= max_batch
  std::int64_t memory_used_bytes = 0;  // weights + reserve + overhead + batch * sequence_bytes
  DecodeFigures decode;
  PrefillFigures prefill;
  double total_time_s = 0;                          // prefill + decode
  double end_to_end_tokens_per_s = 0;               // batch * G / total_time_s (whole batch)
  double end_to_end_tokens_per_s_per_sequence = 0;  // G / total_time_s
};

struct Simulation {
  GpuSpec gpu;
  SimOptions options;
  ModelConfig config;                 // the model with --kv-heads and --window applied
  std::vector<PlanSimulation> plans;  // in the order given
  PlanSimulation standard;            // same model, GPU and options, `standard` plan
  std::vector<std::string> notes;     // caveats that apply to these inputs
};

// Validates the options (errors name --prompt, --gen, --batch, --m, --b, --reserve, --kv-heads,
// --window, --budget, --prefill-chunk, --overhead) and simulates every plan and `standard`. With
// options.batch unset each plan runs at its own largest batch; with it set all run at that batch
// and `fits` says whether each one does.
Simulation simulate(const ModelConfig& cfg,
                    const std::vector<std::pair<KvPlan, std::string>>& plans, const GpuSpec& gpu,
                    const SimOptions& options);
// One plan (and standard).
Simulation simulate(const ModelConfig& cfg, const KvPlan& plan, const std::string& plan_spec,
                    const GpuSpec& gpu, const SimOptions& options);

// Building blocks, exposed for the tests.
// Matrix parameters a token passes through in layer `layer`: W_Q, W_O, the MLP, and W_K, W_V when
// the layer is a KV layer (norms excluded).
std::int64_t layer_matmul_params(const ModelConfig& cfg, const KvPlan& plan, int layer);
// Attention FLOPs of one query token that sees `keys` keys: 4 · H · D · keys (QK^T and PV).
double attention_flops(const ModelConfig& cfg, double keys);
// Decode FLOPs of one token at context t: 2 · (Σ_l matmul params + V · C) + Σ_l attention.
double decode_flops_per_token(const ModelConfig& cfg, const KvPlan& plan, std::int64_t tokens);
// Largest batch with weights + batch · seq + reserve <= memory (0 when none fits).
std::int64_t max_batch_that_fits(std::int64_t memory_bytes, std::int64_t reserve_bytes,
                                 std::int64_t weight_bytes, std::int64_t sequence_bytes);
// The roofline: max(bytes / bandwidth, FLOPs / peak).
double roofline_time_s(double bytes, double flops, const GpuSpec& gpu);

// The efficiency model: achievable fraction of the peak FLOP/s for an operation of `flops`, and
// of the bandwidth for one moving `bytes`: max · s / (s + latency · max · rate), in (0, max].
double compute_efficiency(double flops, const GpuSpec& gpu, const EfficiencyModel& e);
double bandwidth_efficiency(double bytes, const GpuSpec& gpu, const EfficiencyModel& e);
// One operation under the efficiency model: max(bytes / (BW · e_bw), FLOPs / (PEAK · e_c)).
double op_time_s(double bytes, double flops, const GpuSpec& gpu, const EfficiencyModel& e);

// The activation model's per-sequence terms (bytes; `a` bytes per activation element):
// one layer's working set for `tokens` tokens seeing `keys` keys: tokens · a · (2C + max(2·H·D +
// 2·H_kv·D, 3F)) plus the attention scores (eager: H · tokens · keys · (2a + 4); flash: the
// float32 log-sum-exp, H · tokens · 4).
double layer_activation_bytes(const ModelConfig& cfg, double tokens, double keys, int a,
                              AttentionImpl attention);
// The logits of `rows` positions: rows · V · (bytes(logits dtype) + a if upcast to f32 from a
// 16-bit product) plus the final hidden states, tokens · C · a.
double logits_activation_bytes(const ModelConfig& cfg, double rows, double tokens, int a,
                               Dtype logits_dtype);

}  // namespace kvlab
