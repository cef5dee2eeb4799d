// Attention: the exact path (scores, then one block per row), the flash-style prefill and the
// split-context decode. Contract and design: gpu/attention.cuh. CPU truth: ref::attention
// (reference/attention.hpp).
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "gpu/attention.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_common.cuh"

namespace kvlab::gpu {
namespace {

using detail::kWarp;

// ref::AttentionSet::allows, on the device (the reference's is host-only).
__device__ __forceinline__ bool allows(bool strict, int window, int qp, int kp) {
  const bool causal = strict ? kp < qp : kp <= qp;
  return causal && (window <= 0 || kp > qp - window);
}

__device__ __forceinline__ float neg_inf() {
  return -__int_as_float(0x7f800000);
}

// The arguments every kernel reads, by value.
struct Params {
  const float* q;
  const int* qpos;
  const float* k;
  const float* v;
  const int* kpos;
  float* out;
  int T, N, H, H_kv, D, group, kpos_stride;
  bool strict;
  int window;
  float scale;
};

Params make_params(const AttentionArgs& a) {
  Params p;
  p.q = a.q;
  p.qpos = a.qpos;
  p.k = a.k;
  p.v = a.v;
  p.kpos = a.kpos;
  p.out = a.out;
  p.T = a.T;
  p.N = a.N;
  p.H = a.H;
  p.H_kv = a.H_kv;
  p.D = a.D;
  p.group = a.H / a.H_kv;
  p.kpos_stride = a.kpos_head_stride;
  p.strict = a.set.strict;
  p.window = a.set.window;
  p.scale = 1.0f / std::sqrt(static_cast<float>(a.D));  // as the reference: in float
  return p;
}

// ---- exact path --------------------------------------------------------------------------------

constexpr int kExactBlock = 128;

// s (H, T, N) = q·k/√D, -inf outside the set. grid (cells / 128, rows (strided), H).
__global__ void exact_scores_kernel(Params p, float* s) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  const int h = blockIdx.z, g = h / p.group;
  if (j >= p.N) return;
  const long row = static_cast<long>(p.H_kv) * p.D;
  const float* kj = p.k + j * row + static_cast<long>(g) * p.D;
  const int kp = p.kpos[static_cast<long>(g) * p.kpos_stride + j];
  for (int i = blockIdx.y; i < p.T; i += gridDim.y) {
    const float* qi = p.q + (static_cast<long>(i) * p.H + h) * p.D;
    float v = neg_inf();
    if (allows(p.strict, p.window, p.qpos[i], kp)) {
      float dot = 0;
      for (int d = 0; d < p.D; ++d) dot += qi[d] * kj[d];
      v = dot * p.scale;
    }
    s[(static_cast<long>(h) * p.T + i) * p.N + j] = v;
  }
}

// Block-wide max or sum of one value per thread (every thread gets the result).
template <bool kMax>
__device__ float block_reduce(float v, float* sh) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = kMax ? detail::warp_max(v) : detail::warp_sum(v);
  __syncthreads();  // sh may still be read from a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  float r = kMax ? neg_inf() : 0.0f;
  for (int w = 0; w < warps; ++w) r = kMax ? fmaxf(r, sh[w]) : r + sh[w];
  return r;
}

// One block per (row i, head h): softmax of s's row, probs when asked, out = Σ p v / Σ p.
__global__ void exact_softmax_kernel(Params p, const float* s, float* probs) {
  const int i = blockIdx.x, h = blockIdx.y, g = h / p.group;
  const long srow = (static_cast<long>(h) * p.T + i) * p.N;
  const float* sr = s + srow;
  float* orow = p.out + (static_cast<long>(i) * p.H + h) * p.D;
  __shared__ float red[kExactBlock / kWarp];
  __shared__ float pw[kExactBlock];

  float m = neg_inf();
  for (int j = threadIdx.x; j < p.N; j += blockDim.x) m = fmaxf(m, sr[j]);
  m = block_reduce<true>(m, red);
  if (m == neg_inf()) {  // an empty set: out 0, probs 0
    for (int d = threadIdx.x; d < p.D; d += blockDim.x) orow[d] = 0.0f;
    if (probs)
      for (int j = threadIdx.x; j < p.N; j += blockDim.x) probs[srow + j] = 0.0f;
    return;
  }
  float l = 0;
  for (int j = threadIdx.x; j < p.N; j += blockDim.x)
    l += sr[j] == neg_inf() ? 0.0f : expf(sr[j] - m);
  l = block_reduce<false>(l, red);
  const float inv = 1.0f / l;

  const long row = static_cast<long>(p.H_kv) * p.D;
  for (int d0 = 0; d0 < p.D; d0 += blockDim.x) {
    const int d = d0 + threadIdx.x;
    float acc = 0;
    for (int j0 = 0; j0 < p.N; j0 += blockDim.x) {
      const int j = j0 + threadIdx.x;
      __syncthreads();  // pw of the previous chunk read by everyone
      pw[threadIdx.x] = (j < p.N && sr[j] != neg_inf()) ? expf(sr[j] - m) : 0.0f;
      __syncthreads();
      const int n = min(static_cast<int>(blockDim.x), p.N - j0);
      if (d < p.D) {
        const float* vg = p.v + static_cast<long>(j0) * row + static_cast<long>(g) * p.D + d;
        for (int jj = 0; jj < n; ++jj) acc += pw[jj] * vg[jj * row];
      }
    }
    if (d < p.D) orow[d] = acc * inv;
  }
  // Last, as probs may be the scores' own buffer: every element of the row is read and written by
  // the same thread (j ≡ threadIdx.x), and this is its last read.
  if (probs)
    for (int j = threadIdx.x; j < p.N; j += blockDim.x)
      probs[srow + j] = sr[j] == neg_inf() ? 0.0f : expf(sr[j] - m) / l;
}

// ---- prefill path ------------------------------------------------------------------------------

constexpr int kPrefillWarps = 4;
constexpr int kPrefillRowsPerWarp = 4;
constexpr int kPrefillRows = kPrefillWarps * kPrefillRowsPerWarp;  // 16 query rows per block
constexpr int kPrefillCells = kWarp;                               // 32 cells per tile
constexpr int kPrefillDimsPerLane = kAttentionMaxD / kWarp;        // 8

std::size_t prefill_smem_bytes(int D) {
  return sizeof(float) * (static_cast<std::size_t>(kPrefillRows) * D +
                          static_cast<std::size_t>(kPrefillCells) * (D + 1));
}

// grid (ceil(T / 16), H), block 128. Shared: Q (16, D), one tile of K or V (32, D + 1).
__global__ void __launch_bounds__(kPrefillWarps* kWarp) prefill_kernel(Params p) {
  extern __shared__ float smem[];
  const int D = p.D, Dp = D + 1;
  float* qs = smem;                       // (16, D)
  float* tile = smem + kPrefillRows * D;  // (32, D + 1)
  const int h = blockIdx.y, g = h / p.group;
  const int i0 = blockIdx.x * kPrefillRows;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const long row = static_cast<long>(p.H_kv) * D;
  const int* kp_g = p.kpos + static_cast<long>(g) * p.kpos_stride;

  for (int idx = threadIdx.x; idx < kPrefillRows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D, i = i0 + r;
    qs[idx] = i < p.T ? p.q[(static_cast<long>(i) * p.H + h) * D + d] : 0.0f;
  }
  int qp[kPrefillRowsPerWarp];
  bool active[kPrefillRowsPerWarp];
  float m[kPrefillRowsPerWarp], l[kPrefillRowsPerWarp];
  float o[kPrefillRowsPerWarp][kPrefillDimsPerLane];
#pragma unroll
  for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) {
    const int i = i0 + warp * kPrefillRowsPerWarp + rr;
    active[rr] = i < p.T;
    qp[rr] = active[rr] ? p.qpos[i] : 0;
    m[rr] = neg_inf();
    l[rr] = 0.0f;
#pragma unroll
    for (int c = 0; c < kPrefillDimsPerLane; ++c) o[rr][c] = 0.0f;
  }

  for (int j0 = 0; j0 < p.N; j0 += kPrefillCells) {
    const int j = j0 + lane;
    const int kp = j < p.N ? kp_g[j] : 0;
    bool ok[kPrefillRowsPerWarp];
    bool any = false;
#pragma unroll
    for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) {
      ok[rr] = active[rr] && j < p.N && allows(p.strict, p.window, qp[rr], kp);
      any = any || ok[rr];
    }
    // Also the barrier after the previous tile's reads of V (and of Q, before the first tile).
    if (!__syncthreads_or(any)) continue;

    const int n = min(kPrefillCells, p.N - j0);
    for (int idx = threadIdx.x; idx < kPrefillCells * D; idx += blockDim.x) {
      const int r = idx / D, d = idx % D;
      tile[r * Dp + d] = r < n ? p.k[(j0 + r) * row + static_cast<long>(g) * D + d] : 0.0f;
    }
    __syncthreads();
    float s[kPrefillRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) s[rr] = 0.0f;
    const float* kl = tile + lane * Dp;
    const float* qw = qs + warp * kPrefillRowsPerWarp * D;
    for (int d = 0; d < D; ++d) {
      const float kd = kl[d];
#pragma unroll
      for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) s[rr] += qw[rr * D + d] * kd;
    }
    __syncthreads();  // K read by every warp: the tile may take V
    for (int idx = threadIdx.x; idx < kPrefillCells * D; idx += blockDim.x) {
      const int r = idx / D, d = idx % D;
      tile[r * Dp + d] = r < n ? p.v[(j0 + r) * row + static_cast<long>(g) * D + d] : 0.0f;
    }
    // Online softmax, row by row (every lane of the warp holds the same m and l).
    float pr[kPrefillRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) {
      const float sv = ok[rr] ? s[rr] * p.scale : neg_inf();
      const float mt = detail::warp_max(sv);
      const float mn = fmaxf(m[rr], mt);
      if (mn == neg_inf()) {  // nothing seen yet on this row
        pr[rr] = 0.0f;
        continue;
      }
      const float corr = m[rr] == neg_inf() ? 0.0f : expf(m[rr] - mn);
      pr[rr] = ok[rr] ? expf(sv - mn) : 0.0f;
      l[rr] = l[rr] * corr + detail::warp_sum(pr[rr]);
      m[rr] = mn;
#pragma unroll
      for (int c = 0; c < kPrefillDimsPerLane; ++c) o[rr][c] *= corr;
    }
    __syncthreads();  // V in the tile
    for (int jj = 0; jj < n; ++jj) {
      float pj[kPrefillRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr)
        pj[rr] = __shfl_sync(0xffffffffu, pr[rr], jj);
      const float* vj = tile + jj * Dp;
#pragma unroll
      for (int c = 0; c < kPrefillDimsPerLane; ++c) {
        const int d = lane + c * kWarp;
        if (d < D) {
          const float vd = vj[d];
#pragma unroll
          for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) o[rr][c] += pj[rr] * vd;
        }
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kPrefillRowsPerWarp; ++rr) {
    if (!active[rr]) continue;
    const int i = i0 + warp * kPrefillRowsPerWarp + rr;
    const float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;  // an empty set: 0
    float* orow = p.out + (static_cast<long>(i) * p.H + h) * D;
#pragma unroll
    for (int c = 0; c < kPrefillDimsPerLane; ++c) {
      const int d = lane + c * kWarp;
      if (d < D) orow[d] = o[rr][c] * inv;
    }
  }
}

// ---- decode path -------------------------------------------------------------------------------

constexpr int kDecodeWarps = 4;
constexpr int kDecodeMinCells = 64;  // the fewest cells a chunk gets
constexpr int kDecodeMaxSplits = 4096;

// A lane's share of a head's D values: kC vectors of Vec (float4 or float), vector index
// lane + 32c.
template <typename Vec>
struct VecOps;
template <>
struct VecOps<float4> {
  static constexpr int kWidth = 4;
  __device__ static float dot(float4 a, float4 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
  }
  __device__ static void axpy(float4& o, float p, float4 v) {
    o.x += p * v.x, o.y += p * v.y, o.z += p * v.z, o.w += p * v.w;
  }
  __device__ static void scale(float4& o, float c) { o.x *= c, o.y *= c, o.z *= c, o.w *= c; }
  __device__ static float4 zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
};
template <>
struct VecOps<float> {
  static constexpr int kWidth = 1;
  __device__ static float dot(float a, float b) { return a * b; }
  __device__ static void axpy(float& o, float p, float v) { o += p * v; }
  __device__ static void scale(float& o, float c) { o *= c; }
  __device__ static float zero() { return 0.f; }
};

// Decode params beyond Params.
struct DecodeParams {
  int splits, chunk, head_chunks, heads_per_block;
  float* part;  // (T, H, splits, D + 2): unnormalised output, then max and sum; null: splits == 1
};

// grid (splits, H_kv * head_chunks, T), block 128. Shared: q of the block's heads (HB, D), then
// per warp (HB, D) outputs and (HB) maxima and sums for the merge.
template <typename Vec, int kC, int HB>
__global__ void __launch_bounds__(kDecodeWarps* kWarp) decode_kernel(Params p, DecodeParams dp) {
  using Ops = VecOps<Vec>;
  constexpr int W = Ops::kWidth;
  extern __shared__ float smem[];
  const int D = p.D, Dv = D / W;  // vectors per head row
  const int split = blockIdx.x, t = blockIdx.z;
  const int g = blockIdx.y / dp.head_chunks, hc = blockIdx.y % dp.head_chunks;
  const int h0 = g * p.group + hc * HB;
  const int nh = min(HB, p.group - hc * HB);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const long row = static_cast<long>(p.H_kv) * D;

  float* qs = smem;  // (HB, D)
  for (int idx = threadIdx.x; idx < nh * D; idx += blockDim.x) {
    const int hh = idx / D, d = idx % D;
    qs[idx] = p.q[(static_cast<long>(t) * p.H + h0 + hh) * D + d];
  }
  __syncthreads();

  const int qp = p.qpos[t];
  const int* kp_g = p.kpos + static_cast<long>(g) * p.kpos_stride;
  const Vec* kbase = reinterpret_cast<const Vec*>(p.k + static_cast<long>(g) * D);
  const Vec* vbase = reinterpret_cast<const Vec*>(p.v + static_cast<long>(g) * D);
  const Vec* qv = reinterpret_cast<const Vec*>(qs);
  const long rowv = row / W;

  float m[HB], l[HB];
  Vec o[HB][kC];
#pragma unroll
  for (int hh = 0; hh < HB; ++hh) {
    m[hh] = neg_inf();
    l[hh] = 0.0f;
#pragma unroll
    for (int c = 0; c < kC; ++c) o[hh][c] = Ops::zero();
  }

  // One cell: scores of every head, online softmax, accumulate V.
  auto consume = [&](const Vec(&kr)[kC], const Vec(&vr)[kC]) {
#pragma unroll
    for (int hh = 0; hh < HB; ++hh) {
      if (hh >= nh) break;
      float part = 0.0f;
#pragma unroll
      for (int c = 0; c < kC; ++c) {
        const int e = lane + c * kWarp;
        if (e < Dv) part += Ops::dot(kr[c], qv[hh * Dv + e]);
      }
      const float s = detail::warp_sum(part) * p.scale;
      if (s > m[hh]) {  // uniform across the warp
        const float corr = m[hh] == neg_inf() ? 0.0f : expf(m[hh] - s);
        l[hh] *= corr;
#pragma unroll
        for (int c = 0; c < kC; ++c) Ops::scale(o[hh][c], corr);
        m[hh] = s;
      }
      const float pw = expf(s - m[hh]);
      l[hh] += pw;
#pragma unroll
      for (int c = 0; c < kC; ++c) Ops::axpy(o[hh][c], pw, vr[c]);
    }
  };

  const int c0 = split * dp.chunk, c1 = min(p.N, c0 + dp.chunk);
  // Warp w takes cells c0 + w, c0 + w + 4, ...: kU of them at a time, all loaded before any is
  // used, and the positions of the next kU read together with them (no load waits on another).
  constexpr int kU = kC == 1 ? 4 : 2;
  constexpr int kStride = kDecodeWarps;
  int kpn[kU];
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const int jj = c0 + warp + u * kStride;
    kpn[u] = jj < c1 ? kp_g[jj] : 0;
  }
  for (int j = c0 + warp; j < c1; j += kU * kStride) {
    bool ok[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int jj = j + u * kStride;
      ok[u] = jj < c1 && allows(p.strict, p.window, qp, kpn[u]);
      const int jn = jj + kU * kStride;
      kpn[u] = jn < c1 ? kp_g[jn] : 0;
    }
    Vec kr[kU][kC], vr[kU][kC];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const long at = static_cast<long>(j + u * kStride) * rowv;
#pragma unroll
      for (int c = 0; c < kC; ++c) {
        const int e = lane + c * kWarp;
        const bool load = ok[u] && e < Dv;  // cells outside the set are never read
        kr[u][c] = load ? kbase[at + e] : Ops::zero();
        vr[u][c] = load ? vbase[at + e] : Ops::zero();
      }
    }
#pragma unroll
    for (int u = 0; u < kU; ++u)
      if (ok[u]) consume(kr[u], vr[u]);
  }

  // Merge the warps: each writes (m, l, o) to shared memory, then the block combines per head.
  float* wo = smem + HB * D;               // (warps, HB, D)
  float* wm = wo + kDecodeWarps * HB * D;  // (warps, HB)
  float* wl = wm + kDecodeWarps * HB;      // (warps, HB)
#pragma unroll
  for (int hh = 0; hh < HB; ++hh) {
    if (hh >= nh) break;
    Vec* dst = reinterpret_cast<Vec*>(wo + (warp * HB + hh) * D);
#pragma unroll
    for (int c = 0; c < kC; ++c) {
      const int e = lane + c * kWarp;
      if (e < Dv) dst[e] = o[hh][c];
    }
    if (lane == 0) wm[warp * HB + hh] = m[hh], wl[warp * HB + hh] = l[hh];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < nh * D; idx += blockDim.x) {
    const int hh = idx / D, d = idx % D;
    float M = neg_inf();
    for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, wm[w * HB + hh]);
    float L = 0.0f, O = 0.0f;
    if (M != neg_inf()) {
      for (int w = 0; w < kDecodeWarps; ++w) {
        const float mw = wm[w * HB + hh];
        if (mw == neg_inf()) continue;
        const float c = expf(mw - M);
        L += wl[w * HB + hh] * c;
        O += wo[(w * HB + hh) * D + d] * c;
      }
    }
    const int h = h0 + hh;
    if (dp.part == nullptr) {  // one chunk: this block's result is the answer
      p.out[(static_cast<long>(t) * p.H + h) * D + d] = L > 0.0f ? O / L : 0.0f;
    } else {
      float* pr = dp.part + ((static_cast<long>(t) * p.H + h) * dp.splits + split) * (D + 2);
      pr[d] = O;
      if (d == 0) pr[D] = M, pr[D + 1] = L;
    }
  }
}

// grid (T * H), block min(D, 256) rounded to a warp: out = Σ_s O_s e^{M_s - M} / Σ_s L_s e^{M_s -
// M}.
__global__ void decode_combine_kernel(Params p, DecodeParams dp) {
  const long th = blockIdx.x;  // t * H + h
  const int D = p.D;
  const float* pr = dp.part + th * dp.splits * (D + 2);
  float M = neg_inf();
  for (int s = 0; s < dp.splits; ++s) M = fmaxf(M, pr[static_cast<long>(s) * (D + 2) + D]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float L = 0.0f, O = 0.0f;
    if (M != neg_inf()) {
      for (int s = 0; s < dp.splits; ++s) {
        const float* ps = pr + static_cast<long>(s) * (D + 2);
        if (ps[D] == neg_inf()) continue;
        const float c = expf(ps[D] - M);
        L += ps[D + 1] * c;
        O += ps[d] * c;
      }
    }
    p.out[th * D + d] = L > 0.0f ? O / L : 0.0f;
  }
}

int heads_per_block(int group) {
  return group <= 1 ? 1 : (group <= 4 ? 4 : 8);
}

std::size_t decode_smem_bytes(int HB, int D) {
  return sizeof(float) * (static_cast<std::size_t>(HB) * D * (1 + kDecodeWarps) +
                          2 * static_cast<std::size_t>(kDecodeWarps) * HB);
}

int sm_count_of_current_device() {
  static int cached[64] = {};
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  if (dev >= 0 && dev < 64 && cached[dev] > 0) return cached[dev];
  int sms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (dev >= 0 && dev < 64) cached[dev] = sms;
  return sms;
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// Raises a kernel's dynamic shared memory limit when it needs more than the default 48 KiB.
template <typename Kernel>
void allow_smem(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
}

using DecodeFn = void (*)(Params, DecodeParams);

// The decode kernel for these arguments: float4 loads when D % 4 == 0 and q, k, v are 16-byte
// aligned (one vector per lane up to D = 128, two up to 256), else scalar loads; 1, 4 or 8 query
// heads per block.
struct DecodeChoice {
  DecodeFn fn;
  int heads_per_block;
  std::size_t smem;
};

DecodeChoice choose_decode(const AttentionArgs& a) {
  const int group = a.H / a.H_kv;
  const bool vec4 = a.D % 4 == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
  if (!vec4) return {decode_kernel<float, kAttentionMaxD / kWarp, 8>, 8, decode_smem_bytes(8, a.D)};
  const int hb = heads_per_block(group);
  DecodeFn fn;
  if (a.D <= 4 * kWarp)
    fn = hb == 1 ? decode_kernel<float4, 1, 1>
                 : (hb == 4 ? decode_kernel<float4, 1, 4> : decode_kernel<float4, 1, 8>);
  else
    fn = hb == 1 ? decode_kernel<float4, 2, 1>
                 : (hb == 4 ? decode_kernel<float4, 2, 4> : decode_kernel<float4, 2, 8>);
  return {fn, hb, decode_smem_bytes(hb, a.D)};
}

// ---- argument checks ---------------------------------------------------------------------------

void check_args(const AttentionArgs& a, const AttentionOptions& o) {
  const auto s = [](long v) { return std::to_string(v); };
  if (a.T < 0) fail("attention T", s(a.T), "a row count >= 0");
  if (a.N < 0) fail("attention N", s(a.N), "a cell count >= 0");
  if (a.H < 1 || a.H > 65535) fail("attention H", s(a.H), "a head count in [1, 65535]");
  if (a.H_kv < 1 || a.H % a.H_kv != 0)
    fail("attention H_kv", s(a.H_kv), "a KV head count >= 1 that divides H = " + s(a.H));
  if (a.D < 1) fail("attention D", s(a.D), "a head size >= 1");
  if (a.kpos_head_stride != 0 && a.kpos_head_stride != a.N)
    fail("attention kpos_head_stride", s(a.kpos_head_stride),
         "0 (one position list) or N = " + s(a.N) + " (one list per KV head)");
  if (a.set.window < 0) fail("attention window", s(a.set.window), "0 (none) or a width >= 1");
  if (o.decode_splits < 0)
    fail("attention decode_splits", s(o.decode_splits), "0 (automatic) or a chunk count >= 1");
  const bool observed = a.probs != nullptr || a.scores != nullptr;
  if (o.path == AttentionPath::prefill || o.path == AttentionPath::decode) {
    const char* name = o.path == AttentionPath::prefill ? "prefill" : "decode";
    if (observed) fail("attention path", name, "only the exact path writes probs or scores");
    if (o.path == AttentionPath::decode && a.T > 65535)
      fail("attention T", s(a.T), "at most 65535 rows on the decode path");
    if (a.D > kAttentionMaxD)
      fail("attention D", s(a.D),
           std::string("at most ") + s(kAttentionMaxD) + " on the " + name + " path");
  }
  if (a.T > 0) {
    if (!a.out) fail("attention out", "null", "a device pointer to (T, H*D) floats");
    if (!a.q) fail("attention q", "null", "a device pointer to (T, H*D) floats");
    if (!a.qpos) fail("attention qpos", "null", "a device pointer to T ints");
    if (a.N > 0) {
      if (!a.k) fail("attention k", "null", "a device pointer to (N, H_kv*D) floats");
      if (!a.v) fail("attention v", "null", "a device pointer to (N, H_kv*D) floats");
      if (!a.kpos) fail("attention kpos", "null", "a device pointer to N (or H_kv*N) ints");
    }
  }
}

AttentionPath resolve(const AttentionArgs& a, const AttentionOptions& o) {
  if (o.path != AttentionPath::automatic) return o.path;
  if (a.probs || a.scores || a.D > kAttentionMaxD) return AttentionPath::exact;
  return a.T <= kAttentionDecodeMaxT ? AttentionPath::decode : AttentionPath::prefill;
}

int decode_splits(const AttentionArgs& a, const AttentionOptions& o) {
  const int max_by_cells = a.N <= 0 ? 1 : (a.N + kDecodeMinCells - 1) / kDecodeMinCells;
  int splits = o.decode_splits;
  if (splits == 0) {
    // As many chunks as fill exactly one wave of resident blocks: every block has the same work,
    // so a second, partial wave would leave most of the device idle at the end.
    const DecodeChoice c = choose_decode(a);
    int resident = 0;
    allow_smem(c.fn, c.smem);
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, c.fn, kDecodeWarps * kWarp,
                                                             c.smem));
    const long head_chunks = (a.H / a.H_kv + c.heads_per_block - 1) / c.heads_per_block;
    const long base = static_cast<long>(a.H_kv) * head_chunks * (a.T > 0 ? a.T : 1);
    const long capacity =
        static_cast<long>(sm_count_of_current_device()) * (resident > 0 ? resident : 1);
    const long fit = capacity / base;
    splits = static_cast<int>(fit < 1 ? 1 : (fit > kDecodeMaxSplits ? kDecodeMaxSplits : fit));
    if (splits > max_by_cells) splits = max_by_cells;
  }
  if (splits > a.N) splits = a.N > 0 ? a.N : 1;
  if (splits > kDecodeMaxSplits) splits = kDecodeMaxSplits;
  return splits < 1 ? 1 : splits;
}

}  // namespace

AttentionPath attention_path(const AttentionArgs& a, const AttentionOptions& o) {
  return resolve(a, o);
}

int attention_decode_splits(const AttentionArgs& a, const AttentionOptions& o) {
  check_args(a, o);
  return decode_splits(a, o);
}

std::size_t attention_workspace_bytes(const AttentionArgs& a, const AttentionOptions& o) {
  check_args(a, o);
  if (a.T == 0 || a.N == 0) return 0;
  switch (resolve(a, o)) {
    case AttentionPath::exact:
      // The scores go to `scores`, else into `probs` (the softmax then overwrites them in place).
      return a.scores || a.probs ? 0 : sizeof(float) * static_cast<std::size_t>(a.H) * a.T * a.N;
    case AttentionPath::decode: {
      const int splits = decode_splits(a, o);
      if (splits == 1) return 0;
      return sizeof(float) * static_cast<std::size_t>(a.T) * a.H * splits * (a.D + 2);
    }
    default:
      return 0;
  }
}

void attention(const AttentionArgs& a, void* workspace, std::size_t workspace_bytes,
               cudaStream_t stream, const AttentionOptions& o) {
  check_args(a, o);
  if (a.T == 0) return;
  const std::size_t need = attention_workspace_bytes(a, o);
  if (workspace_bytes < need || (need > 0 && workspace == nullptr))
    fail("attention workspace", std::to_string(workspace_bytes) + " bytes",
         "at least " + std::to_string(need) + " bytes (attention_workspace_bytes)");
  const Params p = make_params(a);
  if (a.N == 0) {  // every set is empty: out = 0 (probs and scores have no elements)
    CUDA_CHECK(cudaMemsetAsync(a.out, 0, sizeof(float) * static_cast<std::size_t>(a.T) * a.H * a.D,
                               stream));
    return;
  }
  switch (resolve(a, o)) {
    case AttentionPath::exact: {
      float* s = a.scores ? a.scores : (a.probs ? a.probs : static_cast<float*>(workspace));
      const dim3 sgrid((a.N + kExactBlock - 1) / kExactBlock, a.T < 65535 ? a.T : 65535, a.H);
      exact_scores_kernel<<<sgrid, kExactBlock, 0, stream>>>(p, s);
      CUDA_CHECK(cudaGetLastError());
      exact_softmax_kernel<<<dim3(a.T, a.H), kExactBlock, 0, stream>>>(p, s, a.probs);
      CUDA_CHECK(cudaGetLastError());
      return;
    }
    case AttentionPath::prefill: {
      const std::size_t smem = prefill_smem_bytes(a.D);
      allow_smem(prefill_kernel, smem);
      const dim3 grid((a.T + kPrefillRows - 1) / kPrefillRows, a.H);
      prefill_kernel<<<grid, kPrefillWarps * kWarp, smem, stream>>>(p);
      CUDA_CHECK(cudaGetLastError());
      return;
    }
    case AttentionPath::decode:
    default: {
      DecodeParams dp;
      dp.splits = decode_splits(a, o);
      dp.chunk = (a.N + dp.splits - 1) / dp.splits;
      dp.splits = (a.N + dp.chunk - 1) / dp.chunk;  // no empty chunk at the end
      const DecodeChoice c = choose_decode(a);
      dp.heads_per_block = c.heads_per_block;
      dp.head_chunks = (p.group + dp.heads_per_block - 1) / dp.heads_per_block;
      dp.part = dp.splits > 1 ? static_cast<float*>(workspace) : nullptr;
      allow_smem(c.fn, c.smem);
      const dim3 grid(dp.splits, p.H_kv * dp.head_chunks, p.T);
      c.fn<<<grid, kDecodeWarps * kWarp, c.smem, stream>>>(p, dp);
      CUDA_CHECK(cudaGetLastError());
      if (dp.part) {
        const int block = a.D >= 256 ? 256 : (a.D + kWarp - 1) / kWarp * kWarp;
        decode_combine_kernel<<<a.T * a.H, block, 0, stream>>>(p, dp);
        CUDA_CHECK(cudaGetLastError());
      }
      return;
    }
  }
}

}  // namespace kvlab::gpu
