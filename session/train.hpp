// Training on the Session side (docs/training.md, "Training loop, checkpoints and resume"): a
// preset model under a KV plan, trained with AdamW on the corpus (reference/train/corpus.hpp)
// through the gradients of reference/train/grad.hpp, validated at intervals, checkpointed
// atomically into OUT/last and OUT/best, resumable exactly. Front ends (`kvlab train`, the Python
// module, the visualizer) call train() and draw its progress; they never touch the engine.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "session/session.hpp"

namespace kvlab {

// What to train. Fields left at their "unset" value take the preset's default in a new run and
// the checkpoint's value when resuming; a value given on resume must equal the checkpoint's.
struct TrainSetup {
  std::string preset;  // tiny | small (micro: tests); unset ""
  std::string plan;    // a plan generator or text form for the preset's L
  int heads = 0;       // query heads; 0: the preset's H; head_dim = hidden / heads (must divide)
  int kv_heads = 0;    // 0: `heads` (MHA); must divide the query heads (GQA; 1 = MQA)
  std::int64_t steps = 0;                 // 0: the preset's (or from tokens)
  std::int64_t tokens = 0;                // instead of steps: ceil(tokens / (B*T)) steps
  double lr = 0;                          // peak learning rate; 0: the preset's
  std::optional<std::uint64_t> seed;      // init, corpus split, batches; unset: 1
  int threads = 1;                        // [1, 256]; may differ on resume
  std::optional<Precision> precision;     // unset: f32
  std::string train_passes;               // "m,b" (LCKV, techniques.md §4); "": 7,2
  std::optional<double> kv_loss;          // λ of the KV loss; unset: 0 (off)
  int val_every = 0;                      // steps between validations; 0: the preset's
  int checkpoint_every = 0;               // steps between OUT/last writes; 0: val_every
  std::string text_file;                  // "" : the Debian fortunes
  std::optional<double> recall_fraction;  // share of recall rows (corpus.hpp); unset: the preset's
  std::string tokenizer;     // "byte" or a tokenizer.json; "" on resume: the checkpoint's
  std::string resume;        // a run's directory (its last/) or a checkpoint; "" : new
  std::string out;           // the run's directory (required)
  std::int64_t stop_at = 0;  // tests: stop after this step (checkpoint written); 0: off
};

struct TrainProgress {
  enum class Kind { step, validation, checkpoint };
  Kind kind = Kind::step;
  std::int64_t step = 0;  // updates done
  std::int64_t total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_second = 0;  // this session's average
  double elapsed_seconds = 0, eta_seconds = 0;
  double val_loss = -1;       // the latest validation, -1 before the first
  double best_val_loss = -1;  // -1 before the first
  std::string checkpoint;     // Kind::checkpoint: the directory written (OUT/last or OUT/best)
};

struct TrainInfo {  // known once the run is set up (before the first step)
  std::string preset, plan, plan_map, precision, tokenizer, corpus_source;
  int layers = 0, kv_layers = 0, batch = 0, seq_len = 0, vocab = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t total_steps = 0, start_step = 0;  // start_step > 0: resumed
  std::int64_t train_tokens = 0, val_tokens = 0;
  long long parameters = 0;
  std::int64_t kv_bytes_per_token = 0;  // the plan's K/V per token in f32 (techniques.md §7)
};

struct TrainSummary {
  TrainInfo info;
  std::int64_t steps_done = 0;  // total updates (including those before a resume)
  bool stopped_early = false;   // stop_at reached
  double final_loss = 0;
  double best_val_loss = -1, best_val_perplexity = -1;
  std::int64_t best_val_step = 0;
  double seconds = 0;            // this session's wall clock
  double tokens_per_second = 0;  // this session's average
  std::string out;
};

// Runs (or resumes) a training run. `on_start` sees the setup resolved; `on_progress` every step,
// validation and checkpoint. Throws kvlab::Error naming the flag for bad input: an unknown preset,
// a plan that does not fit the preset, heads that do not divide, --steps with --tokens, a corpus
// smaller than one batch row, a resume directory from another preset, plan, precision or corpus, an
// -o that already holds a run (resume it instead).
TrainSummary train(const TrainSetup& setup,
                   const std::function<void(const TrainInfo&)>& on_start = {},
                   const std::function<void(const TrainProgress&)>& on_progress = {});

}  // namespace kvlab
