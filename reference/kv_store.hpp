// One KV store for every plan (architecture principle 1): banks exist only for KV layers; a
// layer → bank map from the plan says where each layer reads; cell metadata (the position of each
// held token, per KV head, and H2O's accumulated scores) lives apart from the K/V storage; each
// bank has a budget and a sequence policy (reference/policies.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "reference/buffer.hpp"
#include "reference/h2o.hpp"
#include "reference/op_types.hpp"
#include "reference/policies.hpp"

namespace kvlab::ref {

template <typename S>
struct KvBank {
  int kv_layer = 0;
  bool sliding = false;       // every reader is a sliding layer: the bank keeps the plan's window
  PolicySpec policy;          // for banks that are not sliding
  int budget = 0;             // tokens the bank may hold between steps
  int capacity = 0;           // rows allocated in k, v
  int cells = 0;              // live rows [0, cells): the tokens held
  std::vector<int> pos;       // (capacity, H_kv): position of the token in slot s for KV head g
  std::vector<double> score;  // (capacity, H_kv): H2O's accumulated attention
  std::vector<double> count;  // (capacity, H_kv): query rows that could see the cell
  Buffer<S> k, v;             // (capacity, H_kv*D)
  std::int64_t evicted_in_step = 0;
  std::int64_t evicted_total = 0;

  int held() const { return cells; }
  bool evicts() const { return !sliding && policy.kind != SequencePolicy::full; }
};

template <typename S>
class KvStore {
 public:
  // Banks for the plan's KV layers, each able to hold `context` tokens (a sliding bank: its
  // window). `policy` applies to the banks that are not sliding; their budgets are set by
  // set_budget() and take effect at apply_policy() (when a prefill ends, after each decode step).
  KvStore(const KvPlan& plan, const ModelConfig& cfg, int context, PolicySpec policy = {})
      : hkv_(cfg.num_key_value_heads),
        d_(cfg.head_dim),
        row_(cfg.num_key_value_heads * cfg.head_dim),
        context_(context),
        layer_to_bank_(plan.layers(), -1) {
    for (int t : plan.kv_layers()) {
      KvBank<S> b;
      b.kv_layer = t;
      b.sliding = plan.bank_is_sliding(t);
      b.policy = b.sliding ? PolicySpec{} : policy;
      b.budget = static_cast<int>(bank_tokens_held(plan, t, context, cfg.sliding_window));
      allocate(b, b.budget);
      banks_.push_back(std::move(b));
    }
    for (int l = 0; l < plan.layers(); ++l) {
      for (int b = 0; b < num_banks(); ++b) {
        if (banks_[b].kv_layer == plan.kv_of(l)) layer_to_bank_[l] = b;
      }
    }
  }

  int num_banks() const { return static_cast<int>(banks_.size()); }
  int bank_of_layer(int layer) const { return layer_to_bank_[layer]; }
  int row_size() const { return row_; }  // H_kv * D
  int kv_heads() const { return hkv_; }
  KvBank<S>& bank(int b) { return banks_[b]; }
  const KvBank<S>& bank(int b) const { return banks_[b]; }

  // Empties every bank and gives evicting banks room for a whole prompt again.
  void clear() {
    for (auto& b : banks_) {
      if (b.evicts() && b.capacity < context_) allocate(b, context_);
      if (b.evicts()) b.budget = context_;
      b.cells = 0;
      b.evicted_in_step = 0;
      b.evicted_total = 0;
    }
  }
  void begin_step() {
    for (auto& b : banks_) b.evicted_in_step = 0;
  }

  // Appends n tokens (k, v: (n, H_kv*D), positions pos (n)) to bank b, every KV head alike. A
  // sliding bank first drops its oldest cells (they lie outside the new tokens' windows); any
  // other bank that would exceed its rows is an error (the context is full).
  void append(int b, const S* k, const S* v, const int* pos, int n) {
    KvBank<S>& bank = banks_[b];
    if (bank.sliding) {
      if (n > bank.capacity) {  // only the last `capacity` of them survive
        const int skip = n - bank.capacity;
        bank.evicted_in_step += skip;
        bank.evicted_total += skip;
        k += static_cast<long>(skip) * row_;
        v += static_cast<long>(skip) * row_;
        pos += skip;
        n = bank.capacity;
      }
      const int drop = std::max(0, bank.cells + n - bank.capacity);
      std::vector<int> keep;
      for (int s = drop; s < bank.cells; ++s) keep.push_back(s);
      compact_all_heads(bank, keep);
      bank.evicted_in_step += drop;
      bank.evicted_total += drop;
    } else if (bank.cells + n > bank.capacity) {
      fail("context", std::to_string(bank.cells + n) + " tokens",
           "bank " + std::to_string(bank.kv_layer) + " holds at most " +
               std::to_string(bank.capacity) +
               " tokens (the context); use a shorter prompt or a larger --context");
    }
    const long at = static_cast<long>(bank.cells) * row_;
    std::copy_n(k, static_cast<long>(n) * row_, bank.k.begin() + at);
    std::copy_n(v, static_cast<long>(n) * row_, bank.v.begin() + at);
    for (int i = 0; i < n; ++i) {
      for (int g = 0; g < hkv_; ++g) {
        const long c = static_cast<long>(bank.cells + i) * hkv_ + g;
        bank.pos[c] = pos[i];
        bank.score[c] = 0;
        bank.count[c] = 0;
      }
    }
    bank.cells += n;
  }

  // H2O bookkeeping (reference/h2o.hpp): adds attention probs (H, T, N) of query rows at qpos
  // (T) under `set` to the first N cells of bank b.
  void add_scores(int b, const S* probs, const int* qpos, AttentionSet set, int H, int T, int N) {
    KvBank<S>& bank = banks_[b];
    accumulate_h2o(bank.score.data(), bank.count.data(), bank.pos.data(), probs, qpos, set, H, T, N,
                   hkv_);
  }
  // Replaces the scores of bank b's first n cells: score, count (n, H_kv).
  void set_scores(int b, const std::vector<double>& score, const std::vector<double>& count) {
    KvBank<S>& bank = banks_[b];
    std::copy(score.begin(), score.end(), bank.score.begin());
    std::copy(count.begin(), count.end(), bank.count.begin());
  }

  // The budget an evicting bank enforces from now on (a prompt's B; SqueezeAttention's B_l).
  void set_budget(int b, int budget) { banks_[b].budget = std::min(budget, context_); }

  // Drops cells of an evicting bank until it holds at most its budget, each KV head choosing its
  // own cells (policies.hpp); then keeps rows for budget + 1 cells (the next step's token).
  void apply_policy(int b) {
    KvBank<S>& bank = banks_[b];
    if (!bank.evicts()) return;
    if (bank.cells > bank.budget) {
      const int before = bank.cells;
      for (int g = 0; g < hkv_; ++g) {
        std::vector<int> pos(bank.cells);
        std::vector<double> score(bank.cells), count(bank.cells);
        for (int s = 0; s < bank.cells; ++s) {
          const long c = static_cast<long>(s) * hkv_ + g;
          pos[s] = bank.pos[c];
          score[s] = bank.score[c];
          count[s] = bank.count[c];
        }
        compact_head(bank, g, select_cells(bank.policy, bank.budget, pos, score, count));
      }
      bank.cells = std::min(bank.cells, bank.budget);
      bank.evicted_in_step += before - bank.cells;
      bank.evicted_total += before - bank.cells;
    }
    const int rows = std::min(bank.budget + 1, context_);
    if (bank.capacity > rows) allocate(bank, rows);
  }

  // Positions of bank b's cells for KV head g: (held).
  std::vector<int> positions(int b, int g = 0) const {
    const KvBank<S>& bank = banks_[b];
    std::vector<int> p(bank.cells);
    for (int s = 0; s < bank.cells; ++s) p[s] = bank.pos[static_cast<long>(s) * hkv_ + g];
    return p;
  }
  // All heads' positions, (H_kv, held), as attention() takes them.
  std::vector<int> head_positions(int b) const {
    std::vector<int> p;
    for (int g = 0; g < hkv_; ++g) {
      const auto h = positions(b, g);
      p.insert(p.end(), h.begin(), h.end());
    }
    return p;
  }

  std::int64_t bytes_per_cell() const { return 2LL * row_ * static_cast<long>(sizeof(S)); }
  std::int64_t bank_bytes_held(int b) const { return banks_[b].cells * bytes_per_cell(); }
  std::int64_t bytes_held() const {
    std::int64_t s = 0;
    for (int b = 0; b < num_banks(); ++b) s += bank_bytes_held(b);
    return s;
  }
  // Bytes actually allocated for K and V (the vectors' sizes). Without eviction this equals
  // core's accounting for the plan and context; an evicting bank keeps budget + 1 rows.
  std::int64_t bytes_allocated() const {
    std::int64_t s = 0;
    for (const auto& b : banks_) {
      s += static_cast<std::int64_t>(b.k.size() + b.v.size()) * sizeof(S);
    }
    return s;
  }

 private:
  // Resizes a bank's storage to `rows` cells, keeping its live cells (rows >= held).
  void allocate(KvBank<S>& b, int rows) {
    b.capacity = rows;
    b.k.resize(static_cast<std::size_t>(rows) * row_);
    b.v.resize(static_cast<std::size_t>(rows) * row_);
    b.k.shrink_to_fit();
    b.v.shrink_to_fit();
    b.pos.resize(static_cast<std::size_t>(rows) * hkv_);
    b.score.resize(b.pos.size());
    b.count.resize(b.pos.size());
  }

  // Keeps, for KV head g, the cells `keep` (ascending slots), moved to slots 0, 1, ...
  void compact_head(KvBank<S>& b, int g, const std::vector<int>& keep) {
    for (int r = 0; r < static_cast<int>(keep.size()); ++r) {
      const int s = keep[r];
      if (s == r) continue;
      std::copy_n(b.k.begin() + static_cast<long>(s) * row_ + g * d_, d_,
                  b.k.begin() + static_cast<long>(r) * row_ + g * d_);
      std::copy_n(b.v.begin() + static_cast<long>(s) * row_ + g * d_, d_,
                  b.v.begin() + static_cast<long>(r) * row_ + g * d_);
      const long from = static_cast<long>(s) * hkv_ + g, to = static_cast<long>(r) * hkv_ + g;
      b.pos[to] = b.pos[from];
      b.score[to] = b.score[from];
      b.count[to] = b.count[from];
    }
  }
  void compact_all_heads(KvBank<S>& b, const std::vector<int>& keep) {
    for (int g = 0; g < hkv_; ++g) compact_head(b, g, keep);
    b.cells = static_cast<int>(keep.size());
  }

  int hkv_, d_, row_, context_;
  std::vector<int> layer_to_bank_;
  std::vector<KvBank<S>> banks_;
};

}  // namespace kvlab::ref
