// NumPy .npy files, format version 1.0 (https://numpy.org/doc/stable/reference/generated/
// numpy.lib.format.html): magic "\x93NUMPY", version 1.0, a 2-byte little-endian header length,
// a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and ended by '\n' so the data starts at a 64-byte boundary, then the data in C order.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvlab {

// Writes `data` (C order, product(shape) elements; an empty shape is a scalar) as '<f4' / '<f8',
// atomically. Throws kvlab::Error naming the path when the size does not match the shape or the
// file cannot be written.
void write_npy(const std::string& path, std::span<const float> data,
               const std::vector<int64_t>& shape);
void write_npy(const std::string& path, std::span<const double> data,
               const std::vector<int64_t>& shape);

struct NpyArray {
  std::string descr;           // "<f4" or "<f8"
  std::vector<int64_t> shape;  // empty for a scalar
  std::vector<double> values;  // C order; '<f4' widened exactly
};

// Reads a '<f4' or '<f8' C-order .npy file (version 1.0 or 2.0), checking the magic, version,
// header, shape and that the file holds exactly product(shape) elements. Throws kvlab::Error.
NpyArray read_npy(const std::string& path);

}  // namespace kvlab
