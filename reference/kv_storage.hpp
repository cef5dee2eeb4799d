// KV storage: the K and V values of a KV store's banks, behind a small interface so that the CPU
// (host memory, here) and the CUDA backend (device memory) hold them alike. Which cells are live,
// their positions and the byte accounting are the layout's (kv_layout.hpp); the storage only
// resizes, writes rows and moves one KV head of a row when the layout compacts a bank.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "reference/buffer.hpp"
#include "reference/kv_layout.hpp"

namespace kvlab::ref {

template <typename S>
class KvStorage : public KvStorageOps {
 public:
  // Rows [slot, slot + n) of bank b from host rows k, v (n, H_kv*D).
  virtual void write(int b, int slot, const S* k, const S* v, int n) = 0;
  // Bank b's K and V, (rows, H_kv*D), in the storage's memory.
  virtual const S* keys(int b) const = 0;
  virtual const S* values(int b) const = 0;
  virtual std::int64_t bytes_allocated() const = 0;
};

// Host memory: one aligned buffer of K and one of V per bank.
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

}  // namespace kvlab::ref
