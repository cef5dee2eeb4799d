// One KV store for every plan (architecture principle 1): banks exist only for KV layers; a
// layer → bank map from the plan says where each layer reads; cell metadata (the position of each
// held token) lives apart from the K/V storage; each bank has a budget and a sequence policy.
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

namespace kvlab::ref {

// What a bank keeps between steps (techniques.md §5). `full` keeps everything up to its budget
// (the context); `window` keeps the `budget` most recent tokens. (Streaming and H2O join here.)
enum class SequencePolicy { full, window };

// Metadata of one held token, kept apart from its K/V row.
struct KvCell {
  int pos = 0;  // the token's position in the sequence (its keys carry RoPE of this position)
};

template <typename S>
struct KvBank {
  int kv_layer = 0;
  SequencePolicy policy = SequencePolicy::full;
  int budget = 0;             // capacity in tokens = rows allocated below
  std::vector<KvCell> cells;  // (held), oldest first; row r of k/v belongs to cells[r]
  Buffer<S> k, v;             // (budget, H_kv*D): rows [0, held) are live
  std::int64_t evicted_in_step = 0;
  std::int64_t evicted_total = 0;

  int held() const { return static_cast<int>(cells.size()); }
};

template <typename S>
class KvStore {
 public:
  // Banks for the plan's KV layers. A bank whose readers are all sliding layers keeps a window of
  // cfg.sliding_window tokens; every other bank is `full` with budget `context`.
  KvStore(const KvPlan& plan, const ModelConfig& cfg, int context)
      : row_(cfg.num_key_value_heads * cfg.head_dim), layer_to_bank_(plan.layers(), -1) {
    for (int t : plan.kv_layers()) {
      KvBank<S> b;
      b.kv_layer = t;
      const bool sliding = plan.bank_is_sliding(t);
      b.policy = sliding ? SequencePolicy::window : SequencePolicy::full;
      b.budget = static_cast<int>(bank_tokens_held(plan, t, context, cfg.sliding_window));
      b.k.assign(static_cast<std::size_t>(b.budget) * row_, S(0));
      b.v.assign(static_cast<std::size_t>(b.budget) * row_, S(0));
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
  KvBank<S>& bank(int b) { return banks_[b]; }
  const KvBank<S>& bank(int b) const { return banks_[b]; }

  void clear() {
    for (auto& b : banks_) {
      b.cells.clear();
      b.evicted_in_step = 0;
      b.evicted_total = 0;
    }
  }
  void begin_step() {
    for (auto& b : banks_) b.evicted_in_step = 0;
  }

  // Appends n cells (k, v: (n, H_kv*D), positions pos (n)) to bank b. A window bank first drops
  // its oldest cells to make room (they lie outside the new tokens' windows); a full bank that
  // would exceed its budget is an error.
  void append(int b, const S* k, const S* v, const int* pos, int n) {
    KvBank<S>& bank = banks_[b];
    if (bank.policy == SequencePolicy::window) {
      if (n > bank.budget) {  // only the last `budget` of them survive
        const int skip = n - bank.budget;
        bank.evicted_in_step += skip;
        bank.evicted_total += skip;
        k += static_cast<long>(skip) * row_;
        v += static_cast<long>(skip) * row_;
        pos += skip;
        n = bank.budget;
      }
      evict_oldest(bank, std::max(0, bank.held() + n - bank.budget));
    } else if (bank.held() + n > bank.budget) {
      fail("context", std::to_string(bank.held() + n) + " tokens",
           "bank " + std::to_string(bank.kv_layer) + " holds at most " +
               std::to_string(bank.budget) +
               " tokens (the context); use a shorter prompt or "
               "a larger --context");
    }
    const long at = static_cast<long>(bank.held()) * row_;
    std::copy_n(k, static_cast<long>(n) * row_, bank.k.begin() + at);
    std::copy_n(v, static_cast<long>(n) * row_, bank.v.begin() + at);
    for (int i = 0; i < n; ++i) bank.cells.push_back({pos[i]});
  }

  // Cell positions of bank b, for attention masks: (held).
  std::vector<int> positions(int b) const {
    std::vector<int> p;
    for (const auto& c : banks_[b].cells) p.push_back(c.pos);
    return p;
  }

  std::int64_t bytes_per_cell() const { return 2LL * row_ * static_cast<long>(sizeof(S)); }
  std::int64_t bank_bytes_held(int b) const { return banks_[b].held() * bytes_per_cell(); }
  std::int64_t bytes_held() const {
    std::int64_t s = 0;
    for (int b = 0; b < num_banks(); ++b) s += bank_bytes_held(b);
    return s;
  }
  // Bytes actually allocated for K and V (the vectors' sizes), equal to core's accounting.
  std::int64_t bytes_allocated() const {
    std::int64_t s = 0;
    for (const auto& b : banks_)
      s += static_cast<std::int64_t>(b.k.size() + b.v.size()) * sizeof(S);
    return s;
  }

 private:
  // Drops the n oldest cells of a bank, keeping the rest in order.
  void evict_oldest(KvBank<S>& bank, int n) {
    if (n <= 0) return;
    const int keep = bank.held() - n;
    std::copy_n(bank.k.begin() + static_cast<long>(n) * row_, static_cast<long>(keep) * row_,
                bank.k.begin());
    std::copy_n(bank.v.begin() + static_cast<long>(n) * row_, static_cast<long>(keep) * row_,
                bank.v.begin());
    bank.cells.erase(bank.cells.begin(), bank.cells.begin() + n);
    bank.evicted_in_step += n;
    bank.evicted_total += n;
  }

  int row_;
  std::vector<int> layer_to_bank_;
  std::vector<KvBank<S>> banks_;
};

}  // namespace kvlab::ref
