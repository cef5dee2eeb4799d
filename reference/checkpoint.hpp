// The kvlab checkpoint: a directory with config.json (Hugging Face Llama fields plus a "kvlab"
// section: plan, tokenizer, rope_pairing) and model.safetensors with Hugging Face tensor names
// (layers that are not KV layers have no k_proj/v_proj). A standard-plan checkpoint is a valid
// Hugging Face Llama directory.
#pragma once

#include <string>

#include "reference/weights.hpp"

namespace kvlab::ref {

struct CheckpointMeta {
  std::string tokenizer = "byte";  // the default byte-level tokenizer (256 bytes + BOS + EOS)
  std::string plan_spec;           // how the plan was asked for ("cla:2"); informational
};

// Reads and checks everything before using it: the config, the plan (its layer count), every
// tensor name (unknown, missing), shape, dtype (F32, F16, BF16), finiteness. Keys of checkpoints
// written with "rope_pairing": "interleaved" are converted to kvlab's half pairing.
template <typename S>
ModelWeights<S> load_checkpoint(const std::string& dir, CheckpointMeta* meta = nullptr);

// Writes model.safetensors (F32) then config.json, each atomically; creates `dir` if needed.
// On failure nothing partial is left behind.
void save_checkpoint(const std::string& dir, const ModelWeights<float>& w,
                     const CheckpointMeta& meta = {});

// As save_checkpoint, but writes W_Q and W_K rows in interleaved pairing and says so in the
// config (used to prove both pairings load to the same model).
void save_checkpoint_interleaved(const std::string& dir, const ModelWeights<float>& w,
                                 const CheckpointMeta& meta = {});

}  // namespace kvlab::ref
