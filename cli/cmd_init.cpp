// kvlab init: a checkpoint with random weights (tests, demos, benchmarks).
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"
#include "core/formats/config_json.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/checkpoint.hpp"
#include "session/model_source.hpp"

namespace kvlab::cli {
namespace {

struct InitOptions {
  std::string model, config, plan = "standard", out;
  long long seed = 0;
  int vocab_size = 0;
  bool force = false;
};

void run_init(const InitOptions& o) {
  if ((o.model.empty()) == (o.config.empty())) {
    fail("--model/--config", o.model.empty() ? "(none)" : "(both)",
         "give exactly one of --model PRESET and --config FILE");
  }
  if (o.out.empty()) fail("-o", "(none)", "give the output directory");
  if (o.seed < 0) fail("--seed", std::to_string(o.seed), "must be >= 0");
  check_replace_output(o.out, o.force);
  ModelConfig c = o.model.empty() ? load_config(o.config) : resolve_model_config(o.model);
  if (o.vocab_size != 0) {
    c.vocab_size = o.vocab_size;
    c.validate();
  }
  if (c.vocab_size < ByteTokenizer::kVocabSize) {
    fail("vocab_size", std::to_string(c.vocab_size),
         "the byte tokenizer needs at least 258 (256 bytes + BOS + EOS)");
  }
  const KvPlan plan = KvPlan::parse(o.plan, c.num_hidden_layers);
  // The float32 weights, and as much again for the file being written.
  check_fits_in_memory(o.model.empty() ? "--config" : "--model",
                       o.model.empty() ? o.config : o.model,
                       8.0 * static_cast<double>(c.parameter_count(plan.num_kv_layers())),
                       "its random weights and their file");
  const auto w = ref::init_random<float>(c, plan, static_cast<std::uint64_t>(o.seed));
  ref::CheckpointMeta meta;
  meta.plan_spec = o.plan;
  // Missing parent directories are made now, when nothing else can refuse, and removed again if
  // the write fails (no partial output).
  const std::string created = create_parent_directories("-o", o.out);
  try {
    write_via_temporary(o.out, [&](const std::string& tmp) { ref::save_checkpoint(tmp, w, meta); });
  } catch (...) {
    remove_created_directories(created);
    throw;
  }
  std::printf("wrote %s: %d layers, plan %s (%d KV layers), %.2f M parameters, seed %lld\n",
              o.out.c_str(), c.num_hidden_layers, o.plan.c_str(), plan.num_kv_layers(),
              static_cast<double>(w.bytes()) / sizeof(float) / 1e6, o.seed);
}

}  // namespace

void add_init_command(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  auto* cmd = app.add_subcommand("init",
                                 "Write a checkpoint with random weights (GPT-2's init: N(0, "
                                 "0.02^2), residual projections / sqrt(2L))");
  cmd->add_option("--model", o->model,
                  "The shape to draw: a preset (e.g. stories15m), a built-in model's name, a "
                  "checkpoint directory or a llama2.c .bin (its config; the memory needed is "
                  "checked first)");
  cmd->add_option("--config", o->config, "A Hugging Face config.json");
  cmd->add_option("--plan", o->plan, "KV plan (only its KV layers get W_K, W_V)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "Override the vocabulary size (>= 258)");
  cmd->add_option("-o,--out", o->out,
                  "Output directory (must not exist unless --force; missing parent directories "
                  "are created)")
      ->required();
  cmd->add_flag("--force", o->force,
                "Replace an existing -o (a file, an empty directory or a checkpoint directory)");
  cmd->callback([o] { run_init(*o); });
}

}  // namespace kvlab::cli
