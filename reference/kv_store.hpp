// One KV store for every plan (architecture principle 1): the layout (kv_layout.hpp: banks, the
// layer → bank map, cell positions, budgets, policies, byte accounting) over a storage
// (kv_storage.hpp: the K/V values; host memory by default).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "reference/backend.hpp"
#include "reference/buffer.hpp"
#include "reference/kv_layout.hpp"
#include "reference/kv_storage.hpp"

namespace kvlab::ref {

// Host memory: one aligned buffer of K and one of V per bank (a store built without a backend:
// tests of the layout and policies).
template <typename S>
class HostKvStorage final : public KvStorage<S> {
 public:
  // Banks of `rows[b]` rows of H_kv*D values each, head_dim D.
  HostKvStorage(const std::vector<int>& rows, int H_kv, int D)
      : row_(H_kv * D), d_(D), k_(rows.size()), v_(rows.size()) {
    for (std::size_t b = 0; b < rows.size(); ++b) resize(static_cast<int>(b), rows[b], 0);
  }
  void resize(int b, int rows, int live) override {
    (void)live;  // std::vector keeps the leading rows
    k_[b].resize(static_cast<std::size_t>(rows) * row_);
    v_[b].resize(static_cast<std::size_t>(rows) * row_);
    k_[b].shrink_to_fit();
    v_[b].shrink_to_fit();
  }
  void move_head(int b, int g, int from, int to) override {
    const long f = static_cast<long>(from) * row_ + g * d_,
               t = static_cast<long>(to) * row_ + g * d_;
    std::copy_n(k_[b].begin() + f, d_, k_[b].begin() + t);
    std::copy_n(v_[b].begin() + f, d_, v_[b].begin() + t);
  }
  void write(int b, int slot, const S* k, const S* v, int n) override {
    const long at = static_cast<long>(slot) * row_;
    std::copy_n(k, static_cast<long>(n) * row_, k_[b].begin() + at);
    std::copy_n(v, static_cast<long>(n) * row_, v_[b].begin() + at);
  }
  const S* keys(int b) const override { return k_[b].data(); }
  const S* values(int b) const override { return v_[b].data(); }
  std::int64_t bytes_allocated() const override {
    std::int64_t s = 0;
    for (std::size_t b = 0; b < k_.size(); ++b) {
      s += static_cast<std::int64_t>(k_[b].size() + v_[b].size()) * sizeof(S);
    }
    return s;
  }

 private:
  int row_, d_;
  std::vector<Buffer<S>> k_, v_;
};

template <typename S>
class KvStore {
 public:
  // Banks for the plan's KV layers, each able to hold `context` tokens (a sliding bank: its
  // window). `policy` applies to the banks that are not sliding; their budgets are set by
  // set_budget() and take effect at apply_policy() (when a prefill ends, after each decode step).
  // `backend`: where K/V live (Backend::make_kv_storage); null = host memory. `elem_bytes`: the
  // bytes of one K or V element in the byte figures (bytes_held, bank_bytes_held); 0 = sizeof(S). A
  // narrower storage dtype is simulated by the engine (kv_dtype.hpp): the values are held rounded
  // in S, counted at the dtype's bytes.
  KvStore(const KvPlan& plan, const ModelConfig& cfg, int context, PolicySpec policy = {},
          Backend<S>* backend = nullptr, int elem_bytes = 0)
      : layout_(plan, cfg, context, policy),
        elem_(elem_bytes > 0 ? elem_bytes : static_cast<int>(sizeof(S))) {
    std::vector<int> rows;
    for (int b = 0; b < layout_.num_banks(); ++b) rows.push_back(layout_.bank(b).capacity);
    const int Hkv = cfg.num_key_value_heads, D = cfg.head_dim;
    storage_ = backend ? backend->make_kv_storage(rows, Hkv, D)
                       : std::make_unique<HostKvStorage<S>>(rows, Hkv, D);
  }

  const KvLayout& layout() const { return layout_; }
  int num_banks() const { return layout_.num_banks(); }
  int bank_of_layer(int layer) const { return layout_.bank_of_layer(layer); }
  int row_size() const { return layout_.row_size(); }
  int kv_heads() const { return layout_.kv_heads(); }
  const BankMeta& bank(int b) const { return layout_.bank(b); }
  // Bank b's K and V, (capacity, H_kv*D), in the storage's memory; rows [0, held) are live.
  const S* keys(int b) const { return storage_->keys(b); }
  const S* values(int b) const { return storage_->values(b); }

  void clear() { layout_.clear(*storage_); }
  void begin_step() { layout_.begin_step(); }
  // Appends n tokens (k, v: (n, H_kv*D) in the storage's memory, positions pos (n), host) to bank
  // b, every KV head alike. A sliding bank first drops its oldest cells (they lie outside the new
  // tokens' windows); any other bank that would exceed its rows is an error (the context is full).
  void append(int b, const S* k, const S* v, const int* pos, int n) {
    const KvLayout::Append a = layout_.prepare_append(b, n, *storage_);
    const long skip = static_cast<long>(a.skip) * row_size();
    storage_->write(b, a.slot, k + skip, v + skip, n - a.skip);
    layout_.commit_append(b, a.slot, pos + a.skip, n - a.skip);
  }
  // H2O: adds attention probs (H, T, N) (in `backend`'s memory) of query rows at qpos (T) to the
  // first N cells (h2o.hpp).
  void add_scores(int b, Backend<S>& backend, const S* probs, const int* qpos, AttentionSet set,
                  int H, int T, int N) {
    backend.h2o_scores(layout_.scores(b), probs, H, T, N, layout_.kv_heads());
    layout_.add_counts(b, qpos, set, H, T, N);
  }
  void set_scores(int b, const std::vector<double>& score, const std::vector<double>& count) {
    layout_.set_scores(b, score, count);
  }
  void set_budget(int b, int budget) { layout_.set_budget(b, budget); }
  void apply_policy(int b) { layout_.apply_policy(b, *storage_); }

  std::vector<int> positions(int b, int g = 0) const { return layout_.positions(b, g); }
  std::vector<int> head_positions(int b) const { return layout_.head_positions(b); }

  // K/V bytes at the storage dtype's element size (elem_bytes).
  int elem_bytes() const { return elem_; }
  std::int64_t bytes_per_cell() const { return layout_.bytes_per_cell(elem_); }
  std::int64_t bank_bytes_held(int b) const { return layout_.bank_bytes_held(b, elem_); }
  std::int64_t bytes_held() const { return layout_.bytes_held(elem_); }
  // Bytes allocated for K and V, at the storage dtype's element size: the storage's rows. Without
  // eviction this equals core's accounting for the plan and context; an evicting bank keeps
  // budget + 1 rows.
  std::int64_t bytes_allocated() const {
    return storage_->bytes_allocated() / static_cast<std::int64_t>(sizeof(S)) * elem_;
  }
  // The memory the storage holds, in elements of S (equals bytes_allocated unless a narrower
  // storage dtype is simulated).
  std::int64_t memory_bytes() const { return storage_->bytes_allocated(); }
  // H2O score and count arrays of the held cells: bookkeeping, not in the K/V figures (§7).
  std::int64_t score_bytes_held() const { return layout_.score_bytes_held(); }

 private:
  KvLayout layout_;
  std::unique_ptr<KvStorage<S>> storage_;
  int elem_;
};

}  // namespace kvlab::ref
