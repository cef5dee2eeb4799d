// Checkpoints kvlab runs and writes (docs/checkpoints.md):
//  - kvlab: a directory with config.json (Hugging Face Llama fields plus a "kvlab" section: plan,
//    tokenizer, rope_pairing) and model.safetensors with Hugging Face tensor names (layers that
//    are not KV layers have no k_proj/v_proj). A standard-plan checkpoint is a valid Hugging Face
//    Llama directory.
//  - hf: a Hugging Face Llama directory without a kvlab section: config.json and either
//    model.safetensors or shards model-0000k-of-0000n.safetensors listed by
//    model.safetensors.index.json ("weight_map"). F32, F16 and BF16; RoPE pairs i with i + D/2.
//  - llama2c: a llama2.c .bin (Karpathy's legacy export): 7 int32 (dim, hidden_dim, n_layers,
//    n_heads, n_kv_heads, vocab_size (< 0: unshared classifier), seq_len), then float32 arrays.
//    RoPE pairs 2i with 2i + 1: W_Q and W_K rows are permuted to kvlab's half pairing on load.
#pragma once

#include <string>

#include "core/formats/safetensors.hpp"
#include "reference/weights.hpp"

namespace kvlab::ref {

enum class CheckpointFormat { kvlab, hf, llama2c };
const char* checkpoint_format_name(CheckpointFormat f);  // "kvlab", "hf", "llama2c"
// Parses "kvlab", "hf", "llama2c"; throws kvlab::Error naming `field`.
CheckpointFormat parse_checkpoint_format(const std::string& field, const std::string& name);

struct CheckpointMeta {
  CheckpointFormat format = CheckpointFormat::kvlab;
  // "byte": the byte-level tokenizer (256 bytes + BOS + EOS); "tokenizer.json": the Hugging Face
  // tokenizer next to the model; "" when the checkpoint does not say (llama2.c, HF without one).
  std::string tokenizer = "byte";
  std::string plan_spec;  // how the plan was asked for ("cla:2"); informational
};

// Which format `path` holds: a regular file is a llama2.c .bin, a directory whose config.json has
// a "kvlab" section is kvlab, any other directory is hf. Throws kvlab::Error when `path` is
// neither a file nor a directory.
CheckpointFormat detect_checkpoint_format(const std::string& path);

// Reads and checks everything before using it: the config, the plan (its layer count), every
// tensor name (unknown, missing; shards missing or holding a tensor twice), shape, dtype (F32,
// F16, BF16), finiteness, and for a .bin its exact size. Keys of checkpoints written with
// "rope_pairing": "interleaved" (and every llama2.c .bin) are converted to kvlab's half pairing.
// `path` may be any of the three formats.
template <typename S>
ModelWeights<S> load_checkpoint(const std::string& path, CheckpointMeta* meta = nullptr);

// The config of a checkpoint of any of the three formats without reading its weights: a
// directory's config.json, or a llama2.c .bin's 28-byte header (checked as load_checkpoint
// checks it, and the file's size against it). For commands that need only the shape (plan,
// simulate, init's memory estimate).
ModelConfig checkpoint_config(const std::string& path);

// Writes model.safetensors (F32, or `store`: F16 or BF16, rounded to nearest even) then
// config.json, each atomically; creates `dir` if needed. On failure (e.g. a weight too large for
// F16) nothing partial is left behind.
void save_checkpoint(const std::string& dir, const ModelWeights<float>& w,
                     const CheckpointMeta& meta = {}, TensorDtype store = TensorDtype::F32);

// As save_checkpoint, but writes W_Q and W_K rows in interleaved pairing and says so in the
// config (used to prove both pairings load to the same model).
void save_checkpoint_interleaved(const std::string& dir, const ModelWeights<float>& w,
                                 const CheckpointMeta& meta = {});

// A plain Hugging Face Llama directory (no kvlab section). The plan must be standard.
void save_hf_checkpoint(const std::string& dir, const ModelWeights<float>& w,
                        TensorDtype store = TensorDtype::F32);

// A llama2.c legacy .bin, written atomically. The plan must be standard, rope_theta 10000 and
// rms_norm_eps 1e-5 (llama2.c's run.c hard-codes both); throws kvlab::Error otherwise.
void save_llama2c(const std::string& path, const ModelWeights<float>& w);

// The LCKV/MLKV initialisation of a sharing plan from a standard model: each KV layer's W_K and
// W_V are the mean of its readers' W_K and W_V; everything else is copied. Throws kvlab::Error
// unless `w` has W_K and W_V in every layer and `plan` has as many layers as `w`.
ModelWeights<float> average_kv_init(ModelWeights<float> w, const KvPlan& plan);

}  // namespace kvlab::ref
