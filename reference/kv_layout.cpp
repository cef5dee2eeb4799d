#include "reference/kv_layout.hpp"

#include <algorithm>
#include <string>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "reference/h2o.hpp"

namespace kvlab::ref {

KvLayout::KvLayout(const KvPlan& plan, const ModelConfig& cfg, int context, PolicySpec policy)
    : hkv_(cfg.num_key_value_heads),
      d_(cfg.head_dim),
      context_(context),
      layer_to_bank_(plan.layers(), -1) {
  for (int t : plan.kv_layers()) {
    BankMeta b;
    b.kv_layer = t;
    b.sliding = plan.bank_is_sliding(t);
    b.policy = b.sliding ? PolicySpec{} : policy;
    b.budget = static_cast<int>(bank_tokens_held(plan, t, context, cfg.sliding_window));
    b.capacity = b.budget;
    b.pos.resize(static_cast<std::size_t>(b.capacity) * hkv_);
    b.score.resize(b.pos.size());
    b.count.resize(b.pos.size());
    banks_.push_back(std::move(b));
  }
  for (int l = 0; l < plan.layers(); ++l) {
    for (int b = 0; b < num_banks(); ++b) {
      if (banks_[b].kv_layer == plan.kv_of(l)) layer_to_bank_[l] = b;
    }
  }
}

void KvLayout::resize(int b, int rows, KvStorageOps& storage) {
  BankMeta& bank = banks_[b];
  bank.capacity = rows;
  bank.pos.resize(static_cast<std::size_t>(rows) * hkv_);
  bank.score.resize(bank.pos.size());
  bank.count.resize(bank.pos.size());
  storage.resize(b, rows, std::min(bank.cells, rows));
}

void KvLayout::clear(KvStorageOps& storage) {
  for (int b = 0; b < num_banks(); ++b) {
    BankMeta& bank = banks_[b];
    bank.cells = 0;
    if (bank.evicts() && bank.capacity < context_) resize(b, context_, storage);
    if (bank.evicts()) bank.budget = context_;
    bank.evicted_in_step = 0;
    bank.evicted_total = 0;
  }
}

void KvLayout::begin_step() {
  for (auto& b : banks_) b.evicted_in_step = 0;
}

KvLayout::Append KvLayout::prepare_append(int b, int n, KvStorageOps& storage) {
  BankMeta& bank = banks_[b];
  Append a;
  if (bank.sliding) {
    a.skip = std::max(0, n - bank.capacity);  // only the last `capacity` of them survive
    n -= a.skip;
    const int drop = std::max(0, bank.cells + n - bank.capacity);
    std::vector<int> keep;
    for (int s = drop; s < bank.cells; ++s) keep.push_back(s);
    for (int g = 0; g < hkv_; ++g) compact_head(b, g, keep, storage);
    bank.cells = static_cast<int>(keep.size());
    bank.evicted_in_step += drop + a.skip;
    bank.evicted_total += drop + a.skip;
  } else if (bank.cells + n > bank.capacity) {
    fail("context", std::to_string(bank.cells + n) + " tokens",
         "bank " + std::to_string(bank.kv_layer) + " holds at most " +
             std::to_string(bank.capacity) +
             " tokens (the context); use a shorter prompt or a larger --context");
  }
  a.slot = bank.cells;
  return a;
}

void KvLayout::commit_append(int b, int slot, const int* pos, int n) {
  BankMeta& bank = banks_[b];
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < hkv_; ++g) {
      const long c = static_cast<long>(slot + i) * hkv_ + g;
      bank.pos[c] = pos[i];
      bank.score[c] = 0;
      bank.count[c] = 0;
    }
  }
  bank.cells = slot + n;
}

void KvLayout::add_counts(int b, const int* qpos, AttentionSet set, int H, int T, int N) {
  BankMeta& bank = banks_[b];
  accumulate_h2o_counts(bank.count.data(), bank.pos.data(), qpos, set, H, T, N, hkv_);
}

void KvLayout::set_scores(int b, const std::vector<double>& score,
                          const std::vector<double>& count) {
  BankMeta& bank = banks_[b];
  std::copy(score.begin(), score.end(), bank.score.begin());
  std::copy(count.begin(), count.end(), bank.count.begin());
}

void KvLayout::set_budget(int b, int budget) {
  banks_[b].budget = std::min(budget, context_);
}

void KvLayout::apply_policy(int b, KvStorageOps& storage) {
  BankMeta& bank = banks_[b];
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
      compact_head(b, g, select_cells(bank.policy, bank.budget, pos, score, count), storage);
    }
    bank.cells = std::min(bank.cells, bank.budget);
    bank.evicted_in_step += before - bank.cells;
    bank.evicted_total += before - bank.cells;
  }
  const int rows = std::min(bank.budget + 1, context_);
  if (bank.capacity > rows) resize(b, rows, storage);
}

void KvLayout::compact_head(int b, int g, const std::vector<int>& keep, KvStorageOps& storage) {
  BankMeta& bank = banks_[b];
  for (int r = 0; r < static_cast<int>(keep.size()); ++r) {
    const int s = keep[r];
    if (s == r) continue;
    storage.move_head(b, g, s, r);
    const long from = static_cast<long>(s) * hkv_ + g, to = static_cast<long>(r) * hkv_ + g;
    bank.pos[to] = bank.pos[from];
    bank.score[to] = bank.score[from];
    bank.count[to] = bank.count[from];
  }
}

std::vector<int> KvLayout::positions(int b, int g) const {
  const BankMeta& bank = banks_[b];
  std::vector<int> p(bank.cells);
  for (int s = 0; s < bank.cells; ++s) p[s] = bank.pos[static_cast<long>(s) * hkv_ + g];
  return p;
}

std::vector<int> KvLayout::head_positions(int b) const {
  std::vector<int> p;
  for (int g = 0; g < hkv_; ++g) {
    const auto h = positions(b, g);
    p.insert(p.end(), h.begin(), h.end());
  }
  return p;
}

// §7: K and V of one cell, H_kv · D · 2 elements of `elem` bytes.
std::int64_t KvLayout::bytes_per_cell(int elem) const {
  return 2LL * row_size() * elem;
}
std::int64_t KvLayout::bank_bytes_held(int b, int elem) const {
  return banks_[b].cells * bytes_per_cell(elem);
}
std::int64_t KvLayout::bytes_held(int elem) const {
  std::int64_t s = 0;
  for (int b = 0; b < num_banks(); ++b) s += bank_bytes_held(b, elem);
  return s;
}
std::int64_t KvLayout::bytes_allocated(int elem) const {
  std::int64_t s = 0;
  for (const auto& b : banks_) s += b.capacity * bytes_per_cell(elem);
  return s;
}

std::int64_t KvLayout::score_bytes_held() const {
  std::int64_t s = 0;
  for (const auto& b : banks_) {
    if (b.evicts() && b.policy.kind == SequencePolicy::h2o) {
      s += static_cast<std::int64_t>(b.cells) * hkv_ * 2 * sizeof(double);
    }
  }
  return s;
}

}  // namespace kvlab::ref
