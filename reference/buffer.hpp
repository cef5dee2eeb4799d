// Buffers of the reference: contiguous arrays whose start is aligned to 64 bytes. Matrix kernels
// (Eigen, OpenBLAS) pick their vector code paths from the alignment of their operands, so fixed
// alignment is what makes two runs of the same input give bit-identical results.
#pragma once

#include <Eigen/Core>
#include <vector>

namespace kvlab::ref {

template <typename S>
using Buffer = std::vector<S, Eigen::aligned_allocator<S>>;

}  // namespace kvlab::ref
