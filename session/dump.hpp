// `kvlab dump` (docs/crosscheck.md): every intermediate tensor of a prefill and of greedy decode
// steps after it, named by one scheme, with metadata that makes the file self-describing. The
// tensors come from the engine's EventKind::tensors telemetry (reference/tensor_tap.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/telemetry.hpp"

namespace kvlab {

// One named tensor: float64 values (exact copies of float32 ones in an f32 session) or, when
// `integer`, int64 ints (token ids, positions). Shapes and layouts: docs/crosscheck.md.
using NamedTensor = TensorEvent;

// The kinds --what selects (a name's kind: dump_kind).
//   tokens  inputs.tokens, decodeN.token           embed   STEP.embed
//   norm    attn.norm_in, mlp.norm_in             q k v   attn.q, attn.k, attn.v (after RoPE)
//   read    attn.read_positions                    scores  attn.scores   probs  attn.probs
//   attn    attn.out (before W_O)                  resid   attn.resid, mlp.resid
//   mlp     mlp.out                                targets prefill.passP.bankT.target_k/_v
//   cache   STEP.bankT.kept_positions / evicted_positions              logits STEP.logits
const std::vector<std::string>& dump_kinds();
std::string dump_kind(const std::string& tensor_name);  // "" for a name outside the scheme

struct DumpRequest {
  std::vector<int> tokens;        // the prompt's ids
  int decode = 0;                 // greedy decode steps after the prefill, [0, 4096]
  std::vector<std::string> what;  // kinds to keep; empty: all (tokens are always kept)
  std::vector<int> layers;        // layers whose `.layerN.` tensors to keep; empty: all
};

struct Dump {
  std::vector<NamedTensor> tensors;             // in the order they were computed
  std::map<std::string, std::string> metadata;  // the file's __metadata__ (docs/crosscheck.md)
};

// "norm,q,probs" / "0,3" -> lists, checked (naming --what / --layers); empty text: empty list.
std::vector<std::string> parse_dump_what(const std::string& text);
std::vector<int> parse_dump_layers(const std::string& text, int num_layers);

// Writes a dump as safetensors, atomically: floating tensors as F64 when metadata "precision" is
// f64, else F32 (exact: an f32 session's values are floats); integer tensors as I64.
void write_dump(const std::string& path, const Dump& dump);

// kvlab's version, as dumps record it.
const char* kvlab_version();

}  // namespace kvlab
