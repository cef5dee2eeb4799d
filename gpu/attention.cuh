// Attention on the GPU, checked against ref::attention (reference/attention.hpp) by
// tests/gpu/test_attention.cpp. Host-only declarations; the kernels live in attention.cu.
//
//   out_i = Σ_{j ∈ S(i)} softmax_j(q_i · k_j / √D) · v_j        (0 when S(i) is empty)
//
// for the whole of ref::AttentionArgs<float> (reference/backend.hpp), mirrored field for field by
// gpu::AttentionArgs below (so that nvcc never compiles the reference's C++20 headers; the CUDA
// backend copies one into the other): T query rows at qpos, N cells
// at kpos (one list, or one per KV head with kpos_head_stride = N: H2O), GQA/MQA (query head h
// reads KV head h / (H / H_kv)), the AttentionSet (causal, strict = the LCKV diagonal masked,
// sliding window; reference/op_types.hpp). Every pointer of the args is a DEVICE pointer, the
// position lists included. No ordering of positions is assumed: every (row, cell) pair is masked
// by the set itself.
//
// Three paths, all exact softmax (no approximation), float32 arithmetic:
// - exact (probs or scores asked for, or D > 256): one kernel writes the scaled scores (H, T, N)
//   (-inf outside the set) into `scores`, else into `probs` (overwritten in place by the softmax),
//   else the workspace; a second, one block per (row, head),
//   takes the row's maximum and sum, writes the probabilities (0 outside the set) when asked and
//   out = Σ_j p_j v_j / Σ_j p_j. Simple; H·T·N floats of workspace only when neither is asked for
//   (D > 256).
// - prefill (T > 4): flash-style. A block of 4 warps takes 16 query rows of one head; tiles of 32
//   cells (one per lane) of K then V go through shared memory (K rows padded to D + 1 floats: no
//   bank conflicts); each warp keeps 4 rows' running maximum, sum and output (D/32 floats per lane
//   per row) and rescales them when the maximum grows (online softmax). A tile no row of the
//   block may see is skipped whole (__syncthreads_or), so causal and window masks cost about the
//   cells they allow.
// - decode (T <= 4): split over the context. A block of 4 warps takes one KV head, up to 8 of its
//   query heads (a GQA group shares every read of K and V) and one chunk of the cells; each warp
//   walks every 4th cell, 4 cells at a time (2 when D > 128; float4 loads of K and V when D % 4 ==
//   0 and the pointers are 16-byte aligned), skipping cells outside the set without reading them
//   (the next cells' positions are read with this group's K and V, so no load waits on another),
//   with an online softmax per head; the 4 warps merge in shared memory and the block writes its
//   chunk's (max, sum, unnormalised output). A combine kernel merges the chunks (one chunk: the
//   block writes `out` itself). Chunks: as many as fill exactly one wave of resident blocks
//   (the occupancy API; equal chunks finish together), at least 64 cells each.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "reference/op_types.hpp"

namespace kvlab::gpu {

// ref::AttentionArgs<float>'s fields, with every pointer in device memory.
struct AttentionArgs {
  float* out = nullptr;       // (T, H*D)
  const float* q = nullptr;   // (T, H*D) rotated queries
  const int* qpos = nullptr;  // (T) query positions
  int T = 0;
  const float* k = nullptr;   // (N, H_kv*D) keys as the bank holds them (rotated)
  const float* v = nullptr;   // (N, H_kv*D)
  const int* kpos = nullptr;  // (N) shared by every KV head, or (H_kv, N) with kpos_head_stride
  int N = 0;
  int kpos_head_stride = 0;    // 0: one position list; N: one list per KV head (H2O)
  int H = 0, H_kv = 0, D = 0;  // query head h reads KV head h / (H / H_kv)
  ref::AttentionSet set;       // causal or strict (LCKV diagonal), window
  float* probs = nullptr;      // optional (H, T, N): the probabilities, 0 outside the set
  float* scores = nullptr;     // optional (H, T, N): q·k/√D before the softmax, -inf outside
};

enum class AttentionPath { automatic, exact, prefill, decode };

struct AttentionOptions {
  AttentionPath path = AttentionPath::automatic;  // a forced path must support the arguments
  int decode_splits = 0;  // decode: chunks of the context; 0 = chosen from the device's SMs
};

// The largest head size the prefill and decode kernels take (the exact path takes any).
constexpr int kAttentionMaxD = 256;
// The most query rows for which `automatic` picks the decode path.
constexpr int kAttentionDecodeMaxT = 4;

// What `automatic` resolves to for these arguments (a forced path is returned as it is).
AttentionPath attention_path(const AttentionArgs& a, const AttentionOptions& o = {});

// The decode path's chunk count for these arguments (decode_splits when set; else one wave of
// resident blocks on the current device: this one queries the device).
int attention_decode_splits(const AttentionArgs& a, const AttentionOptions& o = {});

// Workspace bytes attention() needs for these arguments and options (0 when none). Queries the
// device like attention_decode_splits when the decode path is chosen with decode_splits = 0.
std::size_t attention_workspace_bytes(const AttentionArgs& a, const AttentionOptions& o = {});

// Enqueues the attention on `stream` and returns without waiting. `workspace` is device memory of
// at least attention_workspace_bytes(a, o) bytes (may be null when that is 0). Throws
// kvlab::Error before any CUDA call for: T, N < 0; H, H_kv < 1 or H not a multiple of H_kv; D < 1;
// kpos_head_stride neither 0 nor N; a negative window; a null pointer that is needed; probs/scores
// with a forced prefill or decode path; D > 256 on those paths; a short workspace. T = 0 does
// nothing; N = 0 writes a zero output (every set is empty).
void attention(const AttentionArgs& a, void* workspace, std::size_t workspace_bytes,
               cudaStream_t stream = nullptr, const AttentionOptions& o = {});

}  // namespace kvlab::gpu
