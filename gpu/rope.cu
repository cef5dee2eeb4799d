// RoPE: one thread per (row, rotated pair); the angle in double as in the reference.
// Contract: gpu/rope.cuh. CPU truth: ref::rope (reference/ops.hpp).
#include <string>

#include "core/error.hpp"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"
#include "gpu/rope.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void rope_kernel(float* x, const int* pos, int T, int heads, int D, double theta,
                            bool interleaved) {
  const int half = D / 2;
  const long total = static_cast<long>(T) * half;
  for (long idx = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(idx / half), i = static_cast<int>(idx % half);
    const double inv_freq = pow(theta, -2.0 * i / D);
    const double angle = pos[t] * inv_freq;
    double sd, cd;
    sincos(angle, &sd, &cd);
    const float c = static_cast<float>(cd), s = static_cast<float>(sd);
    const int ia = interleaved ? 2 * i : i;
    const int ib = interleaved ? 2 * i + 1 : i + half;
    for (int h = 0; h < heads; ++h) {
      float* head = x + (static_cast<long>(t) * heads + h) * D;
      const float a = head[ia], b = head[ib];
      // No contraction into FMAs: the reference (ISO C++, -ffp-contract=off) rounds each product.
      head[ia] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
      head[ib] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    }
  }
}

}  // namespace

void rope(float* x, const int* pos, int T, int heads, int D, double theta, ref::RopePairing pairing,
          cudaStream_t stream) {
  if (T < 0) fail("rope T", std::to_string(T), "a row count >= 0");
  if (heads < 1) fail("rope heads", std::to_string(heads), "a head count >= 1");
  if (D < 2 || D % 2 != 0) fail("rope D", std::to_string(D), "an even head size >= 2");
  if (!(theta > 0)) fail("rope theta", std::to_string(theta), "a base > 0");
  if (T == 0) return;
  const long total = static_cast<long>(T) * (D / 2);
  rope_kernel<<<detail::grid_for(total, kBlock), kBlock, 0, stream>>>(
      x, pos, T, heads, D, theta, pairing == ref::RopePairing::interleaved);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvlab::gpu
