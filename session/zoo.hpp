// The zoo (docs/zoo.md): the papers' questions at tiny scale. One preset, one token budget, one
// seed; a model per KV-sharing scheme (MHA, GQA, MQA, MQA + CLA2, MQA with half the head size,
// CLA3, LCKV with and without warm-up layers, sandwich-middle), each trained by kvlab::train into
// its own run directory and then measured the same way: validation loss, K/V bytes per token,
// parameters, training speed, LCKV prefill passes to converge, passkey accuracy with the full
// cache and under an evicting budget. Front ends (`kvlab zoo`, the Python module, the visualizer)
// call run_zoo() and draw its events; the table is zoo.csv and zoo.md in the output directory.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "session/train.hpp"

namespace kvlab {

// One model of the zoo, resolved for a preset.
struct ZooEntry {
  std::string name;   // --only, and the run's directory under -o ("mqa-cla2")
  std::string label;  // for tables and the plot ("MQA + CLA2")
  std::string what;   // one line: what it is and which paper's question it answers
  std::string plan;   // a plan generator ("cla:2")
  int heads = 0;      // query heads (0: the preset's)
  int kv_heads = 0;   // KV heads
};

// The zoo's entries in table order, for `preset`'s shape (heads derived from its H). The names
// are the same for every preset; an entry whose plan does not fit the preset is refused when run.
std::vector<ZooEntry> zoo_entries(const std::string& preset);

struct ZooSetup {
  std::string preset = "tiny";
  std::int64_t steps = 0;                 // 0: the preset's (or from tokens)
  std::int64_t tokens = 0;                // instead of steps: ceil(tokens / (B*T)); >= B*T
  std::optional<std::uint64_t> seed;      // unset: 1 (kvlab train's default)
  std::optional<double> recall_fraction;  // unset: the preset's
  int threads = 1;                        // training and evaluation, [1, 256]
  std::vector<std::string> only;          // entry names; empty: all
  std::string train_passes;               // LCKV entries' "m,b"; "": kvlab train's default (7,2)
  std::string text_file;                  // "": the fortunes
  std::string tokenizer;                  // "byte" or a tokenizer.json (required)
  int passkey_examples = 32;              // per budget, [1, 10000]
  std::string out;                        // the zoo's directory (required)
};

// One row of the table. Doubles are -1 where a measurement does not apply (passkey on a preset
// whose rows are too short for one).
struct ZooRow {
  std::string name, label, plan, plan_map;
  int heads = 0, kv_heads = 0, head_dim = 0, layers = 0, kv_layers = 0;
  std::int64_t kv_bytes_per_token = 0;  // core's accounting (techniques.md §7), f32
  long long parameters = 0;
  std::int64_t steps = 0, train_tokens = 0;
  std::string train_passes;            // "m,b" for plans with upward edges, "" otherwise
  double val_loss = -1, val_ppl = -1;  // the best checkpoint's (the one evaluated)
  std::int64_t val_step = 0;
  double train_tokens_per_s = 0;  // median over the log's steps
  double train_seconds = 0;       // the log's steps summed (validation and checkpoints excluded)
  int prefill_passes = 1;         // LCKV: passes until convergence on a validation text
  bool passes_converged = true;
  double passkey_full = -1;   // share of the key's tokens predicted, full cache
  double passkey_evict = -1;  // the same under the evicting budget
  int passkey_length = 0;     // context tokens of each passkey prompt (0: not run)
  int evict_budget = 0;       // tokens per bank kept by StreamingLLM (4 sinks + recent)
};

struct ZooEvent {
  enum class Kind {
    entry_start,   // `entry` is about to be trained (or resumed)
    train_start,   // `info`: the run is set up
    train,         // `progress`: a step, validation or checkpoint
    evaluating,    // training is done; measuring
    entry_done,    // `row`
    entry_skipped  // `row`: measured by an earlier run into the same directory
  };
  Kind kind = Kind::entry_start;
  int index = 0, count = 0;  // this entry's place in the selection, from 0
  const ZooEntry* entry = nullptr;
  const TrainInfo* info = nullptr;
  const TrainProgress* progress = nullptr;
  const ZooRow* row = nullptr;
  bool resumed = false;  // entry_start: an earlier run's checkpoint continues
};

struct ZooResult {
  std::vector<ZooRow> rows;  // every entry the directory holds, in table order
  std::string dir, csv, markdown;
  double seconds = 0;
};

// Trains and measures the selected entries (resuming an entry whose run was interrupted and
// skipping one that is measured already), then writes DIR/zoo.csv and DIR/zoo.md with every
// entry DIR holds. Every input is checked before anything is written: an unknown --only entry,
// an entry whose plan or heads do not fit the preset, --tokens smaller than one batch, --steps
// with --tokens, a bad --recall-fraction or --train-passes are kvlab::Errors naming the flag.
ZooResult run_zoo(const ZooSetup& setup, const std::function<void(const ZooEvent&)>& on_event = {});

// The table as CSV (a header, a row per entry; empty cells where -1) and as Markdown.
std::string zoo_csv(const std::vector<ZooRow>& rows);
std::string zoo_markdown(const std::vector<ZooRow>& rows, const std::string& preset);

}  // namespace kvlab
