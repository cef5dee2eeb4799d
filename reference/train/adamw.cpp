#include "reference/train/adamw.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"

namespace kvlab::ref::train {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

template <typename S>
void check_same_shapes(std::vector<ParamRef<S>>& a, std::vector<ParamRef<S>>& b,
                       const std::string& what) {
  if (a.size() != b.size()) {
    fail(what, std::to_string(b.size()) + " parameters",
         "the model has " + std::to_string(a.size()));
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].data->size() != b[i].data->size()) {
      fail(what + ": " + b[i].name, std::to_string(b[i].data->size()) + " values",
           "expected " + a[i].name + " with " + std::to_string(a[i].data->size()));
    }
  }
}

}  // namespace

void AdamWOptions::validate() const {
  if (!(beta1 >= 0 && beta1 < 1)) fail("beta1", num(beta1), "must be in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) fail("beta2", num(beta2), "must be in [0, 1)");
  if (!(eps > 0 && std::isfinite(eps))) fail("eps", num(eps), "must be > 0");
  if (!(weight_decay >= 0 && std::isfinite(weight_decay))) {
    fail("weight_decay", num(weight_decay), "must be >= 0");
  }
}

void Schedule::validate() const {
  if (!(peak > 0 && std::isfinite(peak))) fail("--lr", num(peak), "must be a positive number");
  if (!(floor >= 0 && floor <= peak)) fail("lr floor", num(floor), "must be in [0, --lr]");
  if (total < 1) fail("--steps", std::to_string(total), "must be >= 1");
  if (warmup < 0 || warmup > total) {
    fail("warmup", std::to_string(warmup), "must be in [0, --steps]");
  }
}

double Schedule::lr_at(std::int64_t step) const {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return floor;
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

template <typename S>
double global_norm(ModelWeights<S>& grads) {
  double sum = 0;
  for (const auto& p : parameters(grads)) {
    for (S g : *p.data) sum += static_cast<double>(g) * static_cast<double>(g);
  }
  return std::sqrt(sum);
}

template <typename S>
double clip_by_global_norm(ModelWeights<S>& grads, double max_norm) {
  const double norm = global_norm(grads);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / norm;
    for (const auto& p : parameters(grads)) {
      for (S& g : *p.data) g = static_cast<S>(static_cast<double>(g) * scale);
    }
  }
  return norm;
}

template <typename S>
AdamW<S>::AdamW(const ModelWeights<S>& like, const AdamWOptions& options)
    : options_(options), m_(zeros_like(like)), v_(zeros_like(like)) {
  options_.validate();
}

template <typename S>
void AdamW<S>::step(ModelWeights<S>& w, ModelWeights<S>& grads, double lr) {
  auto P = parameters(w);
  auto G = parameters(grads);
  auto M = parameters(m_);
  auto V = parameters(v_);
  check_same_shapes(P, G, "gradients");
  check_same_shapes(P, M, "AdamW moments");
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t i = 0; i < P.size(); ++i) {
    S* p = P[i].data->data();
    const S* g = G[i].data->data();
    S* m = M[i].data->data();
    S* v = V[i].data->data();
    const double decay = P[i].matrix ? 1.0 - lr * options_.weight_decay : 1.0;
    const size_t n = P[i].data->size();
    for (size_t k = 0; k < n; ++k) {
      const double gk = static_cast<double>(g[k]);
      const double mk = b1 * static_cast<double>(m[k]) + (1.0 - b1) * gk;
      const double vk = b2 * static_cast<double>(v[k]) + (1.0 - b2) * gk * gk;
      m[k] = static_cast<S>(mk);
      v[k] = static_cast<S>(vk);
      const double pk = static_cast<double>(p[k]) * decay;
      p[k] = static_cast<S>(pk - lr * (mk / c1) / (std::sqrt(vk / c2) + eps));
    }
  }
}

template <typename S>
void AdamW<S>::restore(std::int64_t t, ModelWeights<S> m, ModelWeights<S> v) {
  if (t < 0) fail("train_state: adamw_t", std::to_string(t), "must be >= 0");
  auto mine = parameters(m_);
  auto theirs_m = parameters(m);
  auto theirs_v = parameters(v);
  check_same_shapes(mine, theirs_m, "train_state: adamw.m");
  check_same_shapes(mine, theirs_v, "train_state: adamw.v");
  t_ = t;
  m_ = std::move(m);
  v_ = std::move(v);
}

template double global_norm<float>(ModelWeights<float>&);
template double global_norm<double>(ModelWeights<double>&);
template double clip_by_global_norm<float>(ModelWeights<float>&, double);
template double clip_by_global_norm<double>(ModelWeights<double>&, double);
template class AdamW<float>;
template class AdamW<double>;

}  // namespace kvlab::ref::train
