// KV storage: the K and V values of a KV store's banks, behind a small interface so that every
// backend holds them in its own memory (Backend::make_kv_storage; BackendKvStorage in backend.hpp
// over any backend's alloc and copy). Which cells are live, their positions and the byte accounting
// are the layout's (kv_layout.hpp); the storage only resizes, writes rows and moves one KV head of
// a row when the layout compacts a bank. No Eigen here: the CUDA backend includes it.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/kv_layout.hpp"

namespace kvlab::ref {

template <typename S>
class KvStorage : public KvStorageOps {
 public:
  // Rows [slot, slot + n) of bank b from rows k, v (n, H_kv*D) in the backend's memory.
  virtual void write(int b, int slot, const S* k, const S* v, int n) = 0;
  // Bank b's K and V, (rows, H_kv*D), in the storage's memory.
  virtual const S* keys(int b) const = 0;
  virtual const S* values(int b) const = 0;
  virtual std::int64_t bytes_allocated() const = 0;
};

}  // namespace kvlab::ref
