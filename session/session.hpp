// The Session: the one API every front end calls (the `kvlab` CLI today; the Python module and
// the visualizer next). It owns what it runs with shared ownership: the weights, the tokenizer,
// the plan, policy, budget, SqueezeAttention spec, prefill schedule, threads and context. Nothing
// a front end holds (or drops) can leave it reading freed memory.
//
// Precision is chosen at run time (f32 or f64); the class is not a template. Logits come back as
// std::vector<double> for both precisions: every float is exactly a double, so an f32 session
// loses nothing (convert back with static_cast<float> to get its float logits bit for bit).
//
// Every rejection is a kvlab::Error naming the field (the CLI's flag), the value and what would
// be valid. A Session is not thread-safe: one thread at a time (the visualizer's worker owns it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/plan.hpp"
#include "core/telemetry.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/engine.hpp"
#include "reference/squeeze.hpp"
#include "reference/train/grad.hpp"
#include "reference/weights.hpp"
#include "session/bench.hpp"
#include "session/dump.hpp"
#include "session/eval.hpp"

namespace kvlab {

using Subscription = std::pair<Observer*, EventMask>;  // an observer and the kinds it receives

enum class Precision { f32, f64 };
// "f32" | "f64"; throws kvlab::Error naming --precision.
Precision parse_precision(const std::string& text);
const char* precision_name(Precision p);

// SqueezeAttention from its text form "f0,f3" or "f0,p=P" (f3 = p · f0), each a fraction of the
// prompt or a percentage ("0.4,0.1", "40%,10%", "0.4,p=0.25"); empty: off. Throws kvlab::Error
// naming --squeeze (and the part: "--squeeze f3").
ref::SqueezeSpec parse_squeeze(const std::string& text);

// How a session runs its model. Session::load and Session::configure validate every field.
struct RunOptions {
  std::string plan;                    // a plan spec ("cla:2", "0_0_2_2"); empty: the model's own
  std::string policy = "full";         // full | window[:W] | streaming[:S] | h2o[:R][,norm=count]
  std::string positions = "absolute";  // key positions: absolute | cache
  std::string budget;                  // tokens ("128") or a percentage of the prompt ("25%")
  ref::SqueezeSpec squeeze;            // SqueezeAttention budgets per bank (enabled: on)
  ref::PrefillSchedule schedule;       // plans with upward edges (LCKV)
  int threads = 1;                     // [1, 256]
  std::string backend = "cpu";         // cpu | cuda (session/backend.hpp)
  int context = 0;                     // longest sequence; 0: max_position_embeddings
  bool force_nodiag = false;           // mask the diagonal in every layer
  // The dtype K and V are stored at: "" (the precision, f32 or f64), "f16", "bf16", "f32", "f64".
  // Narrower than the precision: each value is rounded to it as it is written and held rounded in
  // the precision's memory (reference/kv_dtype.hpp); the byte figures count the dtype's bytes.
  std::string kv_dtype;
};

// What Session::load reads, and how it runs it.
struct SessionOptions {
  // A kvlab or Hugging Face checkpoint directory, or a llama2.c .bin; with allow_random also a
  // model preset name ("stories15m") or a config.json file: random weights (ref::init_random
  // under run.plan, default standard, with `seed`).
  std::string model;
  // Benchmarks: a preset or a config.json gives random weights. Off, a config.json is refused
  // (give its directory) and a name that is no file is a missing checkpoint.
  bool allow_random = false;
  std::string tokenizer;  // a tokenizer.json or llama2.c tokenizer.bin; empty: the model's own
  Precision precision = Precision::f32;
  std::uint64_t seed = 1;  // random weights only
  // Random weights only: max_position_embeddings is raised to at least this (RoPE is defined at
  // every position; a benchmark may run past the shape's trained length).
  int min_positions = 0;
  RunOptions run;
};

// A prompt given one of three ways: exactly one field is non-empty.
struct Prompt {
  std::string text;       // encoded with the session's tokenizer, BOS first
  std::string tokens;     // token ids "1,2,3", each in [0, vocab_size)
  std::string text_file;  // a file whose bytes are encoded as text, BOS first
};

struct GenerateOptions {
  int max_new = 64;          // [0, 1048576]
  double temperature = 0.0;  // [0, 100]; 0 = greedy
  double top_p = 1.0;        // (0, 1]
  std::int64_t seed = 0;     // >= 0, the sampler's
  void validate() const;     // throws kvlab::Error naming --max-new, --temperature, ...
};

struct GenerateResult {
  std::vector<int> tokens;  // the new tokens (no EOS)
  int prompt_tokens = 0;
  bool context_full = false;  // stopped before max_new tokens: the context was full
  double prefill_seconds = 0, decode_seconds = 0;  // wall clock: prefill; sampling + decoding
  double tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(tokens.size()) / decode_seconds : 0.0;
  }
};

// Perplexity over non-overlapping windows; each window predicts its tokens 1..n-1.
struct PplResult {
  double nll = 0;      // summed over predicted tokens, nats
  long predicted = 0;  // tokens predicted
  int window = 0;      // tokens per window
  double mean_nll() const { return predicted ? nll / predicted : 0.0; }
  double perplexity() const;
  double bits_per_token() const;
};

// SqueezeAttention's analysis of one prompt (what `kvlab squeeze` prints).
struct SqueezeReport {
  std::string map;  // the plan, text form
  int prompt_tokens = 0;
  ref::SqueezeResult result;       // per evicting bank: importance, cluster, fraction, budget
  std::vector<int> bank;           // per layer: the KV layer whose bank it reads
  std::vector<int> slot;           // per layer: index into result's per-bank vectors; -1 when the
                                   // bank does not evict (a sliding window keeps its window)
  int evicting_banks = 0;          // banks SqueezeAttention budgets
  long total_budget = 0;           // tokens, over the evicting banks
  long uniform_total = 0;          // evicting banks x floor(f0 · N)
  std::int64_t kv_bytes_held = 0;  // after the prompt, budgets applied
};

// LCKV's iterative prefill of one prompt, pass by pass (what `kvlab trace-prefill` prints).
struct TraceReport {
  std::string map;
  int tokens = 0;
  std::vector<CyclicBlock> blocks;
  int pass_limit = 0;                    // --passes N, or --max-passes with --converge
  std::vector<int> passes_run;           // per cyclic block: at most min(pass_limit, tokens)
  std::vector<PrefillPassEvent> passes;  // one per pass and upward target
  double logits_rel_error = -1;          // vs token by token when `exact`; -1: not computed
};

// LCKV's training schedule from its text form "m,b" (passes without, then with gradient, e.g.
// "7,2"), with the KV loss weight λ. Throws kvlab::Error naming --train-passes or --kv-loss.
ref::train::TrainPasses parse_train_passes(const std::string& text, double kv_loss_weight = 0);

// Gradients of one sequence's mean next-token loss (what `kvlab grad` writes), in float64.
struct GradResult {
  ref::train::LossReport loss;             // loss, kv_loss (before λ), λ
  ref::train::TrainPasses passes;          // as asked; plans without upward edges ignore m, b
  bool iterative = false;                  // the plan has upward edges: m, b took effect
  std::string plan;                        // text form of the plan the gradients are for
  int predictions = 0;                     // tokens - 1
  std::vector<ref::TensorSpec> specs;      // Hugging Face names, shapes: tensor_specs(cfg, plan)
  std::vector<std::vector<double>> grads;  // one per spec, C order
};

// What one bank holds now (Session::bank_kv): its K and V as double (exact for f32 sessions),
// (cells, H_kv * D) each in slot order, and the position of each cell per KV head (H_kv, cells):
// with per-head eviction (H2O) the heads may hold different positions.
struct BankKv {
  int kv_layer = 0;
  int cells = 0;
  int kv_heads = 0, head_dim = 0;
  std::vector<double> k, v;    // (cells, kv_heads * head_dim)
  std::vector<int> positions;  // (kv_heads, cells)
};

class Session {
 public:
  // Reads the model (and its tokenizer: --tokenizer when given; else the byte tokenizer for
  // kvlab checkpoints that say "byte" and for random weights, tokenizer.json in a directory,
  // tokenizer.bin beside a .bin; else a stand-in that refuses text with a named error) and builds
  // the engine under options.run.
  static Session load(const SessionOptions& options);
  // A session over weights and a tokenizer someone else made; it shares their ownership, so the
  // caller may drop its handles at once. A null tokenizer: none (text is refused by name).
  static Session from_weights(std::shared_ptr<const ref::ModelWeights<float>> weights,
                              std::shared_ptr<const Tokenizer> tokenizer,
                              const RunOptions& run = {});
  static Session from_weights(std::shared_ptr<const ref::ModelWeights<double>> weights,
                              std::shared_ptr<const Tokenizer> tokenizer,
                              const RunOptions& run = {});

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  // Runs the same weights and tokenizer (nothing is reloaded) under other options; the sequence
  // starts over. On an error the session keeps its previous options.
  void configure(const RunOptions& run);
  const RunOptions& run_options() const;

  // ---- text and tokens
  std::vector<int> encode(std::string_view text, bool add_bos = true) const;
  std::string decode(const std::vector<int>& ids) const;
  // The bytes one token stands for, or "<id>" for an id past the tokenizer's vocabulary (a model
  // vocabulary padded beyond it).
  std::string token_text(int id) const;
  // The ids of a prompt given one of three ways (throws naming --prompt/--tokens/--text-file).
  std::vector<int> tokens_of(const Prompt& prompt) const;

  // ---- running (logits as double; see the top of this file)
  // Starts a sequence with `tokens`: logits (T, V) row-major when all_logits, else the last (V).
  std::vector<double> prefill(const std::vector<int>& tokens, bool all_logits = false);
  // One decode step: appends `token`, returns its logits (V).
  std::vector<double> step(int token);
  void reset();  // an empty sequence
  // Prefills `prompt`, then samples up to max_new tokens, stopping at EOS or the context.
  // `on_token` (optional) sees each new token as it comes; returning false stops after it.
  GenerateResult generate(const std::vector<int>& prompt, const GenerateOptions& options,
                          const std::function<bool(int)>& on_token = {});
  // Perplexity of `tokens` in windows of `window` tokens (0: min(256, context())).
  PplResult ppl(const std::vector<int>& tokens, int window = 0);
  // SqueezeAttention's analysis of a prompt; needs run_options().squeeze.enabled.
  SqueezeReport squeeze(const std::vector<int>& tokens);
  // The iterative prefill of a prompt (an automatic schedule always iterates here, 9 passes; token
  // by token is refused). The passes are an upper bound: a block stops after T passes, when all T
  // tokens are exact (ref::PrefillSchedule::stop_when_exact). `exact`: also encode token by token
  // and report each pass's error and the logits'. Runs on engines of its own built from the
  // session's weights and options (the session's observers see the traced prefill); the session's
  // sequence is left as it was.
  TraceReport trace_prefill(const std::vector<int>& tokens, bool exact);
  // A task (passkey, mqar, ppl) under the session's plan, policy and budget.
  EvalResult eval(const EvalSetup& setup);
  // Checks, without running anything, what eval(setup) checks before its first example: the
  // task's options, every example against the context, and the budget against every prompt (a
  // percentage that keeps no token is refused naming the budget and the prompt's length).
  void check_eval(const EvalSetup& setup) const;
  // Decode or prefill speed (best of setup.repeat). The session's sequence is overwritten.
  BenchResult bench(const BenchSetup& setup);
  // d loss / d parameter of the mean next-token loss of `tokens` (inputs all but the last,
  // targets all but the first) under the session's plan, threads and force_nodiag, always in
  // float64 (an f32 session's weights are converted, exactly). Only the plan's KV layers get
  // W_K, W_V gradients. The session's sequence is left as it was.
  GradResult grad(const std::vector<int>& tokens, const ref::train::TrainPasses& passes);
  // Every intermediate of a prefill of request.tokens and request.decode greedy steps after it,
  // under the session's plan, policy, budget, schedule and precision (docs/crosscheck.md;
  // `kvlab dump` writes it with write_dump). Byte-identical for any thread count in f64. The
  // session's sequence is left at the dumped one.
  Dump dump(const DumpRequest& request);

  // ---- telemetry
  // Subscribes an observer to the event kinds `kinds` (core/telemetry.hpp) of every engine this
  // session runs (also after configure); kinds nobody subscribed to are not computed. Not owned:
  // it must outlive its subscription. add_observer: the cheap default kinds.
  void subscribe(Observer* observer, EventMask kinds);
  void add_observer(Observer* observer);
  void unsubscribe(Observer* observer);

  // ---- what the session holds
  Precision precision() const;
  const ModelConfig& config() const;
  const KvPlan& plan() const;  // the plan it runs
  // How the plan was asked for: run_options().plan, else the checkpoint's own spec ("cla:2"),
  // "standard" for random weights, else the plan's text form.
  std::string plan_spec() const;
  bool random_weights() const;
  std::string model_format() const;  // "kvlab" | "hf" | "llama2c" | "random" | "weights"
  const Tokenizer& tokenizer() const;
  std::shared_ptr<const Tokenizer> shared_tokenizer() const;
  std::int64_t weight_bytes() const;
  int position() const;  // tokens in the current sequence
  int context() const;   // the longest sequence
  int num_banks() const;
  // K/V bytes at kv_dtype(): held now, allocated (each bank's rows).
  std::int64_t kv_bytes_held() const;
  std::int64_t kv_bytes_allocated() const;
  // The dtype K/V are stored (and counted) at: run_options().kv_dtype, else the precision.
  Dtype kv_dtype() const;
  // The memory K/V occupy: kv_bytes_allocated() unless kv_dtype() is narrower than the precision
  // (the rounded values are held in the precision's elements).
  std::int64_t kv_memory_bytes() const;
  // H2O's score and count arrays of the held cells: bookkeeping, apart from the K/V (§7).
  std::int64_t h2o_score_bytes() const;
  const std::vector<int>& passes_run() const;  // per cyclic block, by the last prefill
  // The K/V the bank of KV layer `kv_layer` holds now (a copy). Throws kvlab::Error naming
  // kv_layer when it is not one of the plan's KV layers.
  BankKv bank_kv(int kv_layer) const;
  // s_l of the last prompt: measured with SqueezeAttention or while an observer subscribes to
  // EventKind::layer_importance (zeros otherwise).
  std::vector<double> layer_importance() const;

  struct Impl;  // session/session_impl.hpp (not for front ends)

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvlab
