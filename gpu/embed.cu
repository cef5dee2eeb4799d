// Token embedding: one block per row copies the token's row of the table.
// Contract: gpu/embed.cuh. CPU truth: ref::CpuBackend<float>::embed (reference/cpu_backend.cpp).
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/embed.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 128;

template <typename Vec>
__global__ void embed_kernel(Vec* x, const Vec* table, const int* tokens, int C_vec, int V) {
  const long t = blockIdx.x;
  const int id = tokens[t];
  Vec* row = x + t * C_vec;
  if (id < 0 || id >= V) {  // out of range: NaN, never a read past the table
    const float nan = __int_as_float(0x7fc00000);
    float* f = reinterpret_cast<float*>(row);
    const int C = C_vec * static_cast<int>(sizeof(Vec) / sizeof(float));
    for (int c = threadIdx.x; c < C; c += blockDim.x) f[c] = nan;
    return;
  }
  const Vec* src = table + static_cast<long>(id) * C_vec;
  for (int c = threadIdx.x; c < C_vec; c += blockDim.x) row[c] = src[c];
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

}  // namespace

void embed(float* x, const float* table, const int* tokens, int T, int C, int V,
           cudaStream_t stream) {
  if (T < 0) fail("embed T", std::to_string(T), "a row count >= 0");
  if (C < 1) fail("embed C", std::to_string(C), "a row width >= 1");
  if (V < 1) fail("embed V", std::to_string(V), "a vocabulary size >= 1");
  if (T == 0) return;
  if (C % 4 == 0 && aligned16(x) && aligned16(table)) {
    embed_kernel<float4><<<T, kBlock, 0, stream>>>(
        reinterpret_cast<float4*>(x), reinterpret_cast<const float4*>(table), tokens, C / 4, V);
  } else {
    embed_kernel<float><<<T, kBlock, 0, stream>>>(x, table, tokens, C, V);
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
