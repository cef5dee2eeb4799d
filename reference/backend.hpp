// The Backend seam (docs/architecture.md): the operations of one layer, which the engine calls
// while it walks the plan, and the memory they work in. The CPU reference
// (reference/cpu_backend.hpp) implements them in float32 and float64; the CUDA backend (gpu/)
// implements the same interface, each op tested against its CPU twin. All arrays are contiguous
// row-major; shapes use core/dims.hpp's legend.
//
// Memory. Every floating array an op reads or writes (activations, K/V, workspaces, weights) is
// *backend memory*: allocated by alloc(), filled by upload() or copy(), read back by download(),
// and weights made resident once by resident(). The engine never dereferences backend memory; it
// only passes pointers (pointer arithmetic within an allocation is allowed: a device pointer
// supports it). The CPU backend's memory is host memory aligned to 64 bytes, so its upload,
// download and copy are memcpy and resident() copies nothing. Two kinds of argument stay host
// memory, and a backend copies what it needs of them: small integer metadata (tokens, positions,
// kpos, slots) and the float64 results of reductions (row_cosines, h2o_scores, diff_stats).
// tests/reference/test_backend_memory.cpp runs the engine over a backend whose memory the host
// cannot read (PROT_NONE pages) except while one of its ops runs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/accounting.hpp"
#include "reference/kv_dtype.hpp"
#include "reference/kv_storage.hpp"
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
class Backend;

// An owning array of backend memory (Backend::alloc): n elements, zero when allocated. Move-only;
// the backend that allocated it must outlive it.
template <typename S>
class BackendArray {
 public:
  BackendArray() = default;
  BackendArray(Backend<S>* owner, S* data, long n) : owner_(owner), data_(data), size_(n) {}
  BackendArray(BackendArray&& o) noexcept
      : owner_(std::exchange(o.owner_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  BackendArray& operator=(BackendArray&& o) noexcept {
    if (this != &o) {
      reset();
      owner_ = std::exchange(o.owner_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  BackendArray(const BackendArray&) = delete;
  BackendArray& operator=(const BackendArray&) = delete;
  ~BackendArray() { reset(); }
  void reset() noexcept;  // releases the memory: an empty array

  S* data() { return data_; }  // backend memory: pass it to the backend, never dereference it
  const S* data() const { return data_; }
  long size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  Backend<S>* owner_ = nullptr;
  S* data_ = nullptr;
  long size_ = 0;
};

// The operations and the memory. Every member is virtual; the defaults are correct for host memory
// (they are what CpuBackend uses), so a device backend overrides all of them.
template <typename S>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- Memory (see the top of this file) ----
  // n elements of backend memory, all zero; an empty array for n <= 0.
  BackendArray<S> alloc(long n) {
    return n > 0 ? BackendArray<S>(this, allocate(n), n) : BackendArray<S>();
  }
  // What alloc() and ~BackendArray call: n > 0 zeroed elements and their release. Default: host
  // memory aligned to 64 bytes (as reference/buffer.hpp: the matrix kernels' fast paths depend on
  // the alignment, so the same input gives the same bits).
  virtual S* allocate(long n) {
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(S) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return static_cast<S*>(p);
  }
  virtual void deallocate(S* p, long n) noexcept {
    (void)n;
    std::free(p);
  }
  // n elements from host memory to backend memory, back, and within backend memory. They return
  // when the copy is done (the host may read `host` after download()). Ranges do not overlap.
  virtual void upload(S* dst, const S* host, long n) { std::copy_n(host, n, dst); }
  virtual void download(S* host, const S* src, long n) { std::copy_n(src, n, host); }
  virtual void copy(S* dst, const S* src, long n) { std::copy_n(src, n, dst); }
  // The weights: backend memory holding the n values of the host array `host`, which must not
  // change while the backend lives. The engine calls it once per weight array when it is built;
  // the backend keeps one copy per host array (a second call returns the same memory: a tied
  // classifier is the embedding). Default: `host` itself, nothing copied.
  virtual const S* resident(const S* host, long n) {
    (void)n;
    return host;
  }
  // Where K/V live: the storage of banks of `rows[b]` rows of H_kv*D values (kv_storage.hpp).
  // Default: BackendKvStorage, arrays from alloc() moved with copy().
  virtual std::unique_ptr<KvStorage<S>> make_kv_storage(const std::vector<int>& rows, int H_kv,
                                                        int D);

  // ---- Operations ----
  // x (T, C) = rows tokens[t] of table (V, C). tokens: host memory.
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
  // Rotates every head of x (T, heads*D) in place by its row's position. pos: host memory.
  virtual void rope(S* x, const int* pos, int T, int heads, int D, double theta,
                    RopePairing pairing = RopePairing::half) = 0;
  // AttentionArgs: the floating arrays in backend memory, qpos and kpos in host memory.
  virtual void attention(const AttentionArgs<S>& a) = 0;
  // gate (n) = silu(gate) ⊙ up (n), in place.
  virtual void swiglu(S* gate, const S* up, long n) = 0;
  // x (n) += y (n): the residual stream.
  virtual void add(S* x, const S* y, long n) = 0;
  // out (T), host memory = cos(a_t, b_t) of rows of a, b (T, C), in float64 (Squeeze importance,
  // §6).
  virtual void row_cosines(double* out, const S* a, const S* b, int T, int C) = 0;

  // ---- Reductions and element-wise steps the engine used to do on the host ----
  // x (n) rounded in place to the K/V storage dtype d (f32, f16, bf16: kv_dtype.hpp's rounding,
  // ties to even, straight from the value).
  virtual void round_to_dtype(S* x, long n, Dtype d) { ref::round_to_dtype(x, n, d); }
  // H2O (h2o.hpp): score (N, H_kv), host memory, += the probabilities probs (H, T, N) that each
  // cell j got from the query heads h of KV head g = h / (H / H_kv), added to score[j * H_kv + g]
  // one at a time in the order h, then row (the reference's order: the same bits on every backend
  // that keeps it). The layout keeps the positions, counts and choices on the host; only the
  // N * H_kv scores cross.
  virtual void h2o_scores(double* score, const S* probs, int H, int T, int N, int H_kv) {
    const int group = H / H_kv;
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      for (int i = 0; i < T; ++i) {
        const S* p = probs + (static_cast<long>(h) * T + i) * N;
        for (int j = 0; j < N; ++j)
          score[static_cast<long>(j) * H_kv + g] += static_cast<double>(p[j]);
      }
    }
  }
  // out (3), host memory = {max |a - b|, Σ |a - b|, max |a|} over n elements, in float64 (LCKV's
  // K/V change per pass, lckv.cpp). The maxima decide convergence; the sum is telemetry only, so
  // a device may add in another order.
  virtual void diff_stats(double* out, const S* a, const S* b, long n) {
    double max_diff = 0, sum = 0, scale = 0;
    for (long i = 0; i < n; ++i) {
      const double diff = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
      max_diff = std::max(max_diff, diff);
      sum += diff;
      scale = std::max(scale, std::abs(static_cast<double>(a[i])));
    }
    out[0] = max_diff, out[1] = sum, out[2] = scale;
  }

  const BackendCounters& counters() const { return counters_; }

 protected:
  BackendCounters counters_;
};

template <typename S>
void BackendArray<S>::reset() noexcept {
  if (owner_ && data_) owner_->deallocate(data_, size_);
  owner_ = nullptr, data_ = nullptr, size_ = 0;
}

// K/V storage over any backend's memory: one array of K and one of V per bank, from alloc(),
// written and moved with copy(). The default of Backend::make_kv_storage.
template <typename S>
class BackendKvStorage final : public KvStorage<S> {
 public:
  BackendKvStorage(Backend<S>& backend, const std::vector<int>& rows, int H_kv, int D)
      : be_(backend), row_(H_kv * D), d_(D), k_(rows.size()), v_(rows.size()) {
    for (std::size_t b = 0; b < rows.size(); ++b) resize(static_cast<int>(b), rows[b], 0);
  }
  void resize(int b, int rows, int live) override {
    const long n = static_cast<long>(rows) * row_;
    if (n == k_[b].size()) return;
    BackendArray<S> k = be_.alloc(n), v = be_.alloc(n);
    const long keep = std::min({static_cast<long>(live) * row_, n, k_[b].size()});
    if (keep > 0) {
      be_.copy(k.data(), k_[b].data(), keep);
      be_.copy(v.data(), v_[b].data(), keep);
    }
    k_[b] = std::move(k);
    v_[b] = std::move(v);
  }
  void move_head(int b, int g, int from, int to) override {
    const long f = static_cast<long>(from) * row_ + g * d_,
               t = static_cast<long>(to) * row_ + g * d_;
    be_.copy(k_[b].data() + t, k_[b].data() + f, d_);
    be_.copy(v_[b].data() + t, v_[b].data() + f, d_);
  }
  void write(int b, int slot, const S* k, const S* v, int n) override {
    if (n <= 0) return;
    const long at = static_cast<long>(slot) * row_;
    be_.copy(k_[b].data() + at, k, static_cast<long>(n) * row_);
    be_.copy(v_[b].data() + at, v, static_cast<long>(n) * row_);
  }
  const S* keys(int b) const override { return k_[b].data(); }
  const S* values(int b) const override { return v_[b].data(); }
  std::int64_t bytes_allocated() const override {
    std::int64_t s = 0;
    for (std::size_t b = 0; b < k_.size(); ++b) {
      s += static_cast<std::int64_t>(k_[b].size() + v_[b].size()) * sizeof(S);
    }
    return s;
  }

 private:
  Backend<S>& be_;
  int row_, d_;
  std::vector<BackendArray<S>> k_, v_;
};

template <typename S>
std::unique_ptr<KvStorage<S>> Backend<S>::make_kv_storage(const std::vector<int>& rows, int H_kv,
                                                          int D) {
  return std::make_unique<BackendKvStorage<S>>(*this, rows, H_kv, D);
}

}  // namespace kvlab::ref
