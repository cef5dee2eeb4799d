// The engine's intermediate tensors for EventKind::tensors (`kvlab dump`, docs/crosscheck.md).
// The engine calls these only while someone subscribes to that kind (it tests one flag per step,
// Engine::tapping_), so the normal path copies nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/telemetry.hpp"

namespace kvlab::ref {

inline std::int64_t tensor_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

// A floating tensor of `shape` (C order) from `data`, exact as float64.
template <typename S>
void emit_tensor(const ObserverList& observers, std::string name, std::vector<std::int64_t> shape,
                 const S* data) {
  TensorEvent e;
  e.name = std::move(name);
  e.values.assign(data, data + tensor_numel(shape));
  e.shape = std::move(shape);
  observers.emit(EventKind::tensors, e, &Observer::on_tensor);
}

// An integer tensor (positions, token ids).
template <typename I>
void emit_int_tensor(const ObserverList& observers, std::string name,
                     std::vector<std::int64_t> shape, const I* data) {
  TensorEvent e;
  e.name = std::move(name);
  e.integer = true;
  e.ints.assign(data, data + tensor_numel(shape));
  e.shape = std::move(shape);
  observers.emit(EventKind::tensors, e, &Observer::on_tensor);
}

}  // namespace kvlab::ref
