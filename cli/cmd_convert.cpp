// kvlab convert: a checkpoint from one format to another (kvlab, Hugging Face, llama2.c), or a
// standard model to a sharing plan with averaged W_K, W_V (--plan, the LCKV/MLKV initialisation).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"
#include "reference/checkpoint.hpp"
#include "session/builtin_models.hpp"

namespace kvlab::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertOptions {
  std::string model, to, out, plan, dtype = "f32";
  bool force = false;
};

TensorDtype parse_store_dtype(const std::string& name) {
  if (name == "f32") return TensorDtype::F32;
  if (name == "f16") return TensorDtype::F16;
  if (name == "bf16") return TensorDtype::BF16;
  fail("--dtype", name, "must be f32, f16 or bf16");
}

void run_convert(const ConvertOptions& o) {
  const ref::CheckpointFormat to = ref::parse_checkpoint_format("--to", o.to);
  if (!o.plan.empty() && to != ref::CheckpointFormat::kvlab) {
    fail("--plan", o.plan, "a sharing plan can only be written as a kvlab checkpoint (--to kvlab)");
  }
  const TensorDtype store = parse_store_dtype(o.dtype);
  if (store != TensorDtype::F32 && to == ref::CheckpointFormat::llama2c) {
    fail("--dtype", o.dtype, "llama2.c's legacy .bin holds float32 only (use --dtype f32)");
  }
  check_replace_output(o.out, o.force);
  check_output_directory("-o", o.out);
  ref::CheckpointMeta meta;
  ref::ModelWeights<float> w = ref::load_checkpoint<float>(o.model, &meta);
  const ref::CheckpointFormat from = meta.format;
  if (!o.plan.empty()) {
    const KvPlan plan = KvPlan::parse(o.plan, w.config.num_hidden_layers);
    w = ref::average_kv_init(std::move(w), plan);
    meta.plan_spec = o.plan;
  }
  // Written to a temporary sibling and renamed into place at the end: a failure leaves no partial
  // output.
  write_via_temporary(o.out, [&](const std::string& tmp) {
    if (to == ref::CheckpointFormat::llama2c) {
      if (meta.tokenizer == "byte") {
        std::fprintf(stderr,
                     "kvlab convert: note: llama2.c has no place for the tokenizer; this model "
                     "uses the byte tokenizer\n");
      }
      ref::save_llama2c(tmp, w);
      return;
    }
    if (to == ref::CheckpointFormat::kvlab) {
      ref::save_checkpoint(tmp, w, meta, store);
    } else {
      ref::save_hf_checkpoint(tmp, w, store);
    }
    // The Hugging Face tokenizer travels with the model.
    if (from != ref::CheckpointFormat::llama2c) {
      for (const char* name :
           {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
        const fs::path src = fs::path(o.model) / name;
        if (fs::exists(src)) fs::copy_file(src, fs::path(tmp) / name);
      }
    }
  });
  std::printf("wrote %s (%s %s, from %s): %d layers, plan %s, %.2f M parameters\n", o.out.c_str(),
              ref::checkpoint_format_name(to), tensor_dtype_name(store),
              ref::checkpoint_format_name(from), w.config.num_hidden_layers,
              w.plan.to_string().c_str(), static_cast<double>(w.bytes()) / sizeof(float) / 1e6);
}

// convert converts weights: a preset or a config.json is a shape without any.
void refuse_shape_only(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool json = fs::is_regular_file(model, ec) && fs::path(model).extension() == ".json";
  const bool preset = !fs::exists(model, ec) && model.find('/') == std::string::npos;
  if (json || preset) {
    fail("--model", model,
         std::string("is a ") + (json ? "config.json" : "preset") +
             ": a shape without weights, so there is nothing to convert (kvlab init --model " +
             model + " -o DIR writes random weights)");
  }
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = app.add_subcommand(
      "convert", "Convert a checkpoint between kvlab, Hugging Face and llama2.c formats");
  cmd->add_option(
         "--model", o->model,
         "Source: a built-in trained model's name, a kvlab or Hugging Face directory, or a "
         "llama2.c .bin (a preset or config.json holds no weights: use kvlab init)")
      ->required();
  cmd->add_option("--to", o->to, "Target format: kvlab, hf or llama2c")->required();
  cmd->add_option(
         "-o,--out", o->out,
         "Output directory (kvlab, hf) or .bin file (llama2c); must not exist unless --force")
      ->required();
  cmd->add_option("--plan", o->plan,
                  "Write a kvlab checkpoint for this sharing plan: each KV layer's W_K, W_V are "
                  "the mean of its readers' (needs a standard source)");
  cmd->add_option("--dtype", o->dtype,
                  "Weights' storage for kvlab and hf: f32 (default), f16 or bf16 (rounded to "
                  "nearest even; a weight too large for f16 is a named error)");
  cmd->add_flag("--force", o->force,
                "Replace an existing -o (a file, an empty directory or a checkpoint directory)");
  cmd->callback([o] {
    o->model = resolve_model(o->model);  // a built-in trained model by name
    refuse_shape_only(o->model);
    run_convert(*o);
  });
}

}  // namespace kvlab::cli
