// The CPU reference backend: the Backend operations over the readable functions of ops.hpp,
// linear.hpp and attention.hpp (Eigen; OpenBLAS for the prefill's products), float32 and float64.
// It owns its thread count: no process-wide setting changes behind another engine's back.
#pragma once

#include "reference/backend.hpp"

namespace kvlab::ref {

template <typename S>
class CpuBackend final : public Backend<S> {
 public:
  explicit CpuBackend(int threads = 1);  // throws kvlab::Error naming --threads outside [1, 256]
  std::string name() const override;
  int threads() const { return threads_; }

  void embed(S* x, const S* table, const int* tokens, int T, int C) override;
  void rmsnorm(S* out, const S* x, const S* w, int T, int C, double eps) override;
  void linear(S* out, const S* x, const S* w, int T, int K, int N) override;
  void linears(const LinearOut<S>* outs, int n, const S* x, int T, int K) override;
  void rope(S* x, const int* pos, int T, int heads, int D, double theta,
            RopePairing pairing) override;
  void attention(const AttentionArgs<S>& a) override;
  void swiglu(S* gate, const S* up, long n) override;
  void add(S* x, const S* y, long n) override;
  void row_cosines(double* out, const S* a, const S* b, int T, int C) override;

 private:
  int threads_;
};

extern template class CpuBackend<float>;
extern template class CpuBackend<double>;

}  // namespace kvlab::ref
