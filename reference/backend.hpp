// The Backend seam (docs/architecture.md): the operations of one layer, which the engine calls
// while it walks the plan. The CPU reference (reference/cpu_backend.hpp) implements them in float32
// and float64; the CUDA backend (gpu/) will implement the same interface, each op tested against
// its CPU twin. All arrays are contiguous row-major; shapes use core/dims.hpp's legend.
#pragma once

#include <cstdint>
#include <string>

#include "reference/op_types.hpp"

namespace kvlab::ref {

// Attention of T query rows over N cells of one bank (techniques.md §2).
template <typename S>
struct AttentionArgs {
  S* out = nullptr;           // (T, H*D)
  const S* q = nullptr;       // (T, H*D) rotated queries
  const int* qpos = nullptr;  // (T) query positions
  int T = 0;
  const S* k = nullptr;       // (N, H_kv*D) keys as the bank holds them (rotated)
  const S* v = nullptr;       // (N, H_kv*D)
  const int* kpos = nullptr;  // (N) shared by every KV head, or (H_kv, N) with kpos_head_stride
  int N = 0;
  int kpos_head_stride = 0;    // 0: one position list; N: one list per KV head (H2O)
  int H = 0, H_kv = 0, D = 0;  // query head h reads KV head h / (H / H_kv)
  AttentionSet set;            // the plan's mask: causal or strict (LCKV diagonal), window
  S* probs = nullptr;          // optional (H, T, N): the probabilities, 0 outside the set
  S* scores = nullptr;         // optional (H, T, N): q·k/√D before the softmax, -inf outside
};

// One product of Backend::linears(): out (T, N) = x (T, K) · Wᵀ, W (N, K).
template <typename S>
struct LinearOut {
  S* out = nullptr;
  const S* w = nullptr;
  int N = 0;
};

// What a backend did that only an observer would have asked for (the telemetry cost test).
struct BackendCounters {
  std::int64_t attention_calls = 0;
  std::int64_t attention_probs = 0;  // calls that also wrote probabilities
  std::int64_t cosine_rows = 0;      // rows reduced by row_cosines (Squeeze importance)
};

template <typename S>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // x (T, C) = rows tokens[t] of table (V, C).
  virtual void embed(S* x, const S* table, const int* tokens, int T, int C) = 0;
  // out (T, C) = x · w / sqrt(mean x² + eps), row by row; out may alias x.
  virtual void rmsnorm(S* out, const S* x, const S* w, int T, int C, double eps) = 0;
  // out (T, N) = x (T, K) · Wᵀ, W (N, K) row-major.
  virtual void linear(S* out, const S* x, const S* w, int T, int K, int N) = 0;
  // Several products of the same x (T, K), at most 8 (a layer's Q, K, V; the MLP's gate and up),
  // each equal to linear()'s bit for bit. A backend may run them as one unit of work; this default
  // runs them one after the other.
  virtual void linears(const LinearOut<S>* outs, int n, const S* x, int T, int K) {
    for (int i = 0; i < n; ++i) linear(outs[i].out, x, outs[i].w, T, K, outs[i].N);
  }
  // Rotates every head of x (T, heads*D) in place by its row's position.
  virtual void rope(S* x, const int* pos, int T, int heads, int D, double theta,
                    RopePairing pairing = RopePairing::half) = 0;
  virtual void attention(const AttentionArgs<S>& a) = 0;
  // gate (n) = silu(gate) ⊙ up (n), in place.
  virtual void swiglu(S* gate, const S* up, long n) = 0;
  // x (n) += y (n): the residual stream.
  virtual void add(S* x, const S* y, long n) = 0;
  // out (T) = cos(a_t, b_t) of rows of a, b (T, C), in float64 (Squeeze importance, §6).
  virtual void row_cosines(double* out, const S* a, const S* b, int T, int C) = 0;

  const BackendCounters& counters() const { return counters_; }

 protected:
  BackendCounters counters_;
};

}  // namespace kvlab::ref
