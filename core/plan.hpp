// The KV plan: which layer reads which layer's K/V (techniques.md §2), its text form, the named
// generators, and the facts derived from the map (KV layers, readers, upward edges, cyclic blocks,
// the pass schedule of iterative prefill, §3).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kvlab {

// A contiguous range of layers [first, last] that must be encoded iteratively (it contains upward
// edges). Computed exactly as whyNLP/LCKV `iteration_plan`.
struct CyclicBlock {
  int first = 0;
  int last = 0;
};

// How an iterative prefill of a cyclic block runs for a prompt of T tokens (§3).
struct PassSchedule {
  bool token_by_token = false;  // prompts of at most m + b tokens are encoded one token at a time
  int passes = 1;               // passes over the whole prompt (T when token by token)
  int m = 7;                    // passes without gradient (training) / first passes
  int b = 2;                    // passes with gradient (training) / last passes
};

class KvPlan {
 public:
  KvPlan() = default;
  // kv[l] = the layer whose K/V layer l reads; sliding[l] = layer l attends within a window.
  // Validates (every target is a KV layer, indices in range). Throws kvlab::Error.
  KvPlan(std::vector<int> kv, std::vector<bool> sliding);

  // Parses a named generator ("standard", "cla:2", "lckv:2", "sandwich-middle:4", "yoco", ...)
  // or a text form ("0_0_2_2", "0s_1s_2_2") for `layers` layers. Throws kvlab::Error.
  static KvPlan parse(const std::string& spec, int layers);

  int layers() const { return static_cast<int>(kv_.size()); }
  int kv_of(int layer) const { return kv_[layer]; }
  bool sliding(int layer) const { return sliding_[layer]; }
  const std::vector<int>& map() const { return kv_; }

  // "kv(0)_kv(1)_..." with an "s" after sliding layers; parse(to_string(), L) == *this.
  std::string to_string() const;

  bool is_kv_layer(int layer) const { return kv_[layer] == layer; }
  std::vector<int> kv_layers() const;           // ascending
  int num_kv_layers() const;
  std::vector<int> readers(int kv_layer) const;  // ascending, includes the KV layer itself
  bool is_upward(int layer) const { return kv_[layer] > layer; }
  std::vector<std::pair<int, int>> upward_edges() const;  // (reader, target), ascending reader
  bool has_upward() const;
  std::vector<CyclicBlock> cyclic_blocks() const;
  int cyclic_block_of(int layer) const;  // index into cyclic_blocks(), or -1
  // True when every reader of `kv_layer` is a sliding layer, so the bank keeps only the window.
  bool bank_is_sliding(int kv_layer) const;

  bool operator==(const KvPlan&) const = default;

 private:
  std::vector<int> kv_;
  std::vector<bool> sliding_;
};

// The schedule for one cyclic block and a prompt of `tokens` tokens; m >= 0, b >= 0, m + b >= 1.
PassSchedule pass_schedule(int tokens, int m = 7, int b = 2);

// Full-prompt layer evaluations of a prefill, summed over layers: a layer outside every cyclic
// block counts 1, a layer inside one counts the block's passes. Token-by-token encoding counts 1
// (each token crosses the block once: the FLOPs of one pass, though without parallelism).
double prefill_layer_passes(const KvPlan& plan, int tokens, int m = 7, int b = 2);

// Names of the generators, for help text and errors.
const std::vector<std::string>& plan_generator_names();

}  // namespace kvlab
