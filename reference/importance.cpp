#include "reference/importance.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvlab::ref {

template <typename S>
void ImportanceMeter<S>::after(Backend<S>& backend, int l, const S* x, int T, int C) {
  cos_.resize(T);
  backend.row_cosines(cos_.data(), x_in_.data(), x, T, C);
  for (int t = 0; t < T; ++t) sum_[l] += cos_[t];
  count_[l] += T;
}

template <typename S>
std::vector<double> ImportanceMeter<S>::values() const {
  std::vector<double> s(sum_.size(), 0.0);
  for (std::size_t l = 0; l < s.size(); ++l) s[l] = count_[l] > 0 ? sum_[l] / count_[l] : 0;
  return s;
}

std::vector<double> bank_importance(const KvPlan& plan, const std::vector<int>& kv_layers,
                                    const std::vector<double>& layer_s, bool mean) {
  std::vector<double> out;
  for (int t : kv_layers) {
    const auto readers = plan.readers(t);
    double v = mean ? 0.0 : std::numeric_limits<double>::infinity();
    for (int r : readers) {
      const double x = layer_s[r];
      if (std::isnan(x)) {  // std::min would drop it; squeeze_budgets names it instead
        v = x;
        break;
      }
      v = mean ? v + x : std::min(v, x);
    }
    out.push_back(mean ? v / readers.size() : v);
  }
  return out;
}

template class ImportanceMeter<float>;
template class ImportanceMeter<double>;

}  // namespace kvlab::ref
