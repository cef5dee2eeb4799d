// Argmax over logits: one block per row, (value, index) pairs reduced, ties to the lowest index.
// Contract: gpu/argmax.cuh. CPU truth: ref::Sampler::next at temperature 0.
#include <climits>
#include <string>

#include "core/error.hpp"
#include "gpu/argmax.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"

namespace kvlab::gpu {
namespace {

constexpr int kBlock = 256;

// Does (v, i) beat (best, at)? Larger value, or equal value at a lower index; NaN never beats.
__device__ __forceinline__ bool beats(float v, int i, float best, int at) {
  return v > best || (v == best && i < at);
}

__global__ void argmax_kernel(int* out, const float* logits, int V) {
  using detail::kWarp;
  const float* row = logits + static_cast<long>(blockIdx.x) * V;
  float best = -__int_as_float(0x7f800000);  // -inf
  int at = INT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = row[v];
    if (beats(x, v, best, at)) best = x, at = v;
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, offset);
    const int oa = __shfl_xor_sync(0xffffffffu, at, offset);
    if (beats(ob, oa, best, at)) best = ob, at = oa;
  }
  __shared__ float wbest[kBlock / kWarp];
  __shared__ int wat[kBlock / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) wbest[warp] = best, wat[warp] = at;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    best = lane < warps ? wbest[lane] : -__int_as_float(0x7f800000);
    at = lane < warps ? wat[lane] : INT_MAX;
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, offset);
      const int oa = __shfl_xor_sync(0xffffffffu, at, offset);
      if (beats(ob, oa, best, at)) best = ob, at = oa;
    }
    if (lane == 0) out[blockIdx.x] = at == INT_MAX ? 0 : at;  // every logit NaN: 0
  }
}

}  // namespace

void argmax(int* out, const float* logits, int rows, int V, cudaStream_t stream) {
  if (rows < 0) fail("argmax rows", std::to_string(rows), "a row count >= 0");
  if (V < 1) fail("argmax V", std::to_string(V), "a vocabulary size >= 1");
  if (rows == 0) return;
  argmax_kernel<<<rows, kBlock, 0, stream>>>(out, logits, V);
  CUDA_CHECK(cudaGetLastError());
}

int argmax_row(const float* logits, int V, int* scratch, cudaStream_t stream) {
  argmax(scratch, logits, 1, V, stream);
  int id = 0;
  CUDA_CHECK(cudaMemcpyAsync(&id, scratch, sizeof(int), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return id;
}

}  // namespace kvlab::gpu
