// The KV layout (architecture principle 1): everything about a KV store except the K/V values.
// Banks exist only for KV layers; a layer → bank map from the plan says where each layer reads;
// each bank keeps its cells' metadata (the position of each held token per KV head, H2O's
// accumulated scores), its budget and sequence policy (policies.hpp), its eviction counts, and
// the byte accounting. The values live in a KvStorage (kv_storage.hpp): the CPU's today, the
// device's with the CUDA backend. Every decision here is made on metadata and handed to the
// storage as row moves, so both storages keep the same cells.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/config.hpp"
#include "core/plan.hpp"
#include "reference/op_types.hpp"
#include "reference/policies.hpp"

namespace kvlab::ref {

struct BankMeta {
  int kv_layer = 0;
  bool sliding = false;       // every reader is a sliding layer: the bank keeps the plan's window
  PolicySpec policy;          // for banks that are not sliding
  int budget = 0;             // tokens the bank may hold between steps
  int capacity = 0;           // rows allocated in the storage
  int cells = 0;              // live rows [0, cells): the tokens held
  std::vector<int> pos;       // (capacity, H_kv): position of the token in slot s for KV head g
  std::vector<double> score;  // (capacity, H_kv): H2O's accumulated attention
  std::vector<double> count;  // (capacity, H_kv): query rows that could see the cell
  std::int64_t evicted_in_step = 0;
  std::int64_t evicted_total = 0;

  int held() const { return cells; }
  bool evicts() const { return !sliding && policy.kind != SequencePolicy::full; }
};

// What the storage must do to follow a layout change.
class KvStorageOps {
 public:
  virtual ~KvStorageOps() = default;
  // Bank b now has `rows` rows; its first `live` rows keep their values.
  virtual void resize(int b, int rows, int live) = 0;
  // KV head g of row `from` moves to row `to` (to < from).
  virtual void move_head(int b, int g, int from, int to) = 0;
};

class KvLayout {
 public:
  // Banks for the plan's KV layers, each able to hold `context` tokens (a sliding bank: its
  // window). `policy` applies to the banks that are not sliding.
  KvLayout(const KvPlan& plan, const ModelConfig& cfg, int context, PolicySpec policy);

  int num_banks() const { return static_cast<int>(banks_.size()); }
  int bank_of_layer(int layer) const { return layer_to_bank_[layer]; }
  int row_size() const { return hkv_ * d_; }  // H_kv * D
  int kv_heads() const { return hkv_; }
  int head_dim() const { return d_; }
  int context() const { return context_; }
  BankMeta& bank(int b) { return banks_[b]; }
  const BankMeta& bank(int b) const { return banks_[b]; }

  // Empties every bank and gives evicting banks room for a whole prompt again.
  void clear(KvStorageOps& storage);
  void begin_step();
  // Makes room for n new cells in bank b and returns their first slot, and how many of the n
  // (the last ones) are written: a sliding bank first drops its oldest cells. Throws kvlab::Error
  // when any other bank would exceed its rows (the context is full).
  struct Append {
    int slot = 0;
    int skip = 0;  // leading new cells that are not written (a sliding bank smaller than n)
  };
  Append prepare_append(int b, int n, KvStorageOps& storage);
  // Records the positions of n written cells at `slot` (every KV head alike), scores zero.
  void commit_append(int b, int slot, const int* pos, int n);

  // H2O (h2o.hpp): bank b's scores (capacity, H_kv), for Backend::h2o_scores to add to, and the
  // counts of query rows at qpos (T) of H heads under `set` over the first N cells.
  double* scores(int b) { return banks_[b].score.data(); }
  void add_counts(int b, const int* qpos, AttentionSet set, int H, int T, int N);
  // Replaces the scores of bank b's first n cells: score, count (n, H_kv).
  void set_scores(int b, const std::vector<double>& score, const std::vector<double>& count);
  // The budget an evicting bank enforces from now on (a prompt's B; SqueezeAttention's B_l).
  void set_budget(int b, int budget);
  // Drops cells of an evicting bank until it holds at most its budget, each KV head choosing its
  // own cells (policies.hpp); then keeps rows for budget + 1 cells (the next step's token).
  void apply_policy(int b, KvStorageOps& storage);

  std::vector<int> positions(int b, int g = 0) const;  // (held) of KV head g
  std::vector<int> head_positions(int b) const;        // (H_kv, held), as attention() takes them

  // Byte accounting for elements of `elem` bytes (core/accounting.hpp's formula per cell).
  std::int64_t bytes_per_cell(int elem) const;
  std::int64_t bank_bytes_held(int b, int elem) const;
  std::int64_t bytes_held(int elem) const;
  std::int64_t bytes_allocated(int elem) const;
  // H2O's bookkeeping (§7: reported apart from the K/V): score and count, two float64 per cell
  // per KV head, for the cells H2O banks hold now.
  std::int64_t score_bytes_held() const;

 private:
  void resize(int b, int rows, KvStorageOps& storage);
  // Keeps, for KV head g, the cells `keep` (ascending slots), moved to slots 0, 1, ...
  void compact_head(int b, int g, const std::vector<int>& keep, KvStorageOps& storage);

  int hkv_, d_, context_;
  std::vector<int> layer_to_bank_;
  std::vector<BankMeta> banks_;
};

}  // namespace kvlab::ref
