// Rounding float K/V to f16 or bf16 on the GPU (the simulated narrow K/V storage of
// reference/kv_dtype.hpp), checked bit for bit against ref::round_to_dtype by
// tests/gpu/test_kv_round.cpp. Host-only declarations; the kernel lives in kv_round.cu.
//
//   x (n) = each value rounded to the nearest f16 / bf16 value, ties to even, and held as float;
//   subnormals included, past the largest finite value ±infinity, NaN, ±infinity and signed zeros
//   unchanged.
//
// f16: the hardware conversion cvt.rn.f16.f32 (IEEE round to nearest even) and back. bf16: on the
// bits, u + 0x7fff + (bit 16 of u), low 16 bits cleared (the carry makes the overflow to infinity).
// A grid-stride loop, one element per thread per step.
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

enum class HalfFormat { f16, bf16 };

// Device pointer x (n floats), in place. Enqueued on `stream`. n = 0 does nothing; n < 0 throws
// kvlab::Error before any CUDA call.
void round_to_half(float* x, long n, HalfFormat format, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
