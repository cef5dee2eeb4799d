#include "reference/positions.hpp"

#include <vector>

namespace kvlab::ref {

template <typename S>
const S* rotate_for_bank(Backend<S>& backend, bool cache_mode, S* q, int pos, const S* bank_k,
                         const int* kpos, int N, int H, int H_kv, int D, double theta,
                         BackendArray<S>& scratch) {
  if (!cache_mode) {
    backend.rope(q, &pos, 1, H, D, theta, RopePairing::half);
    return bank_k;
  }
  // Keys by slot 0..N-1; the query by its token's slot: the last cell when the token was just
  // written to this bank, else the next one.
  const long n = static_cast<long>(N) * H_kv * D;
  if (scratch.size() != n) scratch = backend.alloc(n);
  if (n > 0) backend.copy(scratch.data(), bank_k, n);
  std::vector<int> slots(N);
  for (int j = 0; j < N; ++j) slots[j] = j;
  backend.rope(scratch.data(), slots.data(), N, H_kv, D, theta, RopePairing::half);
  const bool own_cell = N > 0 && kpos[N - 1] == pos;
  const int qslot = own_cell ? N - 1 : N;
  backend.rope(q, &qslot, 1, H, D, theta, RopePairing::half);
  return scratch.data();
}

template const float* rotate_for_bank(Backend<float>&, bool, float*, int, const float*, const int*,
                                      int, int, int, int, double, BackendArray<float>&);
template const double* rotate_for_bank(Backend<double>&, bool, double*, int, const double*,
                                       const int*, int, int, int, int, double,
                                       BackendArray<double>&);

}  // namespace kvlab::ref
