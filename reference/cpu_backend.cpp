#include "reference/cpu_backend.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "reference/attention.hpp"
#include "reference/attention_decode.hpp"
#include "reference/linear.hpp"
#include "reference/ops.hpp"

namespace kvlab::ref {

template <typename S>
CpuBackend<S>::CpuBackend(int threads) : threads_(threads) {
  if (threads < 1 || threads > 256) {
    fail("--threads", std::to_string(threads), "must be in [1, 256]");
  }
  Eigen::setNbThreads(1);  // kvlab splits the work itself (linear.hpp, attention.hpp)
}

template <typename S>
std::string CpuBackend<S>::name() const {
  return std::string("cpu-") + (sizeof(S) == 8 ? "f64" : "f32");
}

template <typename S>
void CpuBackend<S>::embed(S* x, const S* table, const int* tokens, int T, int C) {
  for (int t = 0; t < T; ++t) {
    std::copy_n(table + static_cast<long>(tokens[t]) * C, C, x + static_cast<long>(t) * C);
  }
}

template <typename S>
void CpuBackend<S>::rmsnorm(S* out, const S* x, const S* w, int T, int C, double eps) {
  ref::rmsnorm(out, x, w, T, C, eps);
}

template <typename S>
void CpuBackend<S>::linear(S* out, const S* x, const S* w, int T, int K, int N) {
  ref::linear(out, x, w, T, K, N, threads_);
}

template <typename S>
void CpuBackend<S>::linears(const LinearOut<S>* outs, int n, const S* x, int T, int K) {
  ref::linears(outs, n, x, T, K, threads_);
}

template <typename S>
void CpuBackend<S>::rope(S* x, const int* pos, int T, int heads, int D, double theta,
                         RopePairing pairing) {
  ref::rope(x, pos, T, heads, D, theta, pairing);
}

template <typename S>
void CpuBackend<S>::attention(const AttentionArgs<S>& a) {
  ++this->counters_.attention_calls;
  if (a.probs) ++this->counters_.attention_probs;
  if constexpr (std::is_same_v<S, float>) {
    if (a.T == 1) {  // decode in float32: the streaming path, tested against the reference
      attention_decode(a, threads_);
      return;
    }
  }
  ref::attention(a.out, a.q, a.qpos, a.T, a.k, a.v, a.kpos, a.N, a.H, a.H_kv, a.D, a.set, threads_,
                 a.probs, a.kpos_head_stride, a.scores);
}

template <typename S>
void CpuBackend<S>::swiglu(S* gate, const S* up, long n) {
  ref::swiglu(gate, up, n);
}

template <typename S>
void CpuBackend<S>::add(S* x, const S* y, long n) {
  for (long i = 0; i < n; ++i) x[i] += y[i];
}

template <typename S>
void CpuBackend<S>::row_cosines(double* out, const S* a, const S* b, int T, int C) {
  this->counters_.cosine_rows += T;
  for (int t = 0; t < T; ++t) {
    double dot = 0, a2 = 0, b2 = 0;
    for (int i = 0; i < C; ++i) {
      const double x = a[static_cast<long>(t) * C + i], y = b[static_cast<long>(t) * C + i];
      dot += x * y;
      a2 += x * x;
      b2 += y * y;
    }
    // As torch.nn.functional.cosine_similarity: each norm clamped to at least eps = 1e-8, so a
    // zero row (a zeroed embedding) gives cosine 0, not 0/0.
    constexpr double eps = 1e-8;
    out[t] = dot / (std::max(std::sqrt(a2), eps) * std::max(std::sqrt(b2), eps));
  }
}

template class CpuBackend<float>;
template class CpuBackend<double>;

}  // namespace kvlab::ref
