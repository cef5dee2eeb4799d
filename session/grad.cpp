// Session::grad: float64 gradients of one sequence's loss through ref::train::GradModel.
#include <cstdlib>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "session/session.hpp"
#include "session/session_impl.hpp"

namespace kvlab {

ref::train::TrainPasses parse_train_passes(const std::string& text, double kv_loss_weight) {
  const auto comma = text.find(',');
  auto integer = [&](const std::string& part) {
    char* end = nullptr;
    const long x = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || x < -(1L << 20) || x > (1L << 20)) {
      fail("--train-passes", text,
           "give m,b: passes without gradient, then with gradient (b >= 1), e.g. 7,2");
    }
    return static_cast<int>(x);
  };
  if (comma == std::string::npos) integer("");  // names the flag and the form
  ref::train::TrainPasses p;
  p.m = integer(text.substr(0, comma));
  p.b = integer(text.substr(comma + 1));
  p.kv_loss_weight = kv_loss_weight;
  p.validate();
  return p;
}

GradResult Session::grad(const std::vector<int>& tokens, const ref::train::TrainPasses& passes) {
  passes.validate();
  if (tokens.size() < 2) {
    fail("--tokens", std::to_string(tokens.size()) + " tokens",
         "the loss needs at least 2 (inputs all but the last, targets all but the first)");
  }
  const KvPlan plan = this->plan();  // the engine checked its KV layers have W_K, W_V
  const ModelConfig cfg = config();
  // float64 weights under the run plan: W_K, W_V only where the plan has KV layers.
  ref::ModelWeights<double> w = impl_->visit([](const auto& m) {
    using S = typename std::remove_reference_t<decltype(m)>::Scalar;
    if constexpr (std::is_same_v<S, double>) {
      return ref::ModelWeights<double>(*m.weights);
    } else {
      return ref::convert_weights<double>(*m.weights);
    }
  });
  w.plan = plan;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    if (!plan.is_kv_layer(l)) {
      w.layers[l].wk.clear();
      w.layers[l].wv.clear();
    }
  }
  ref::train::GradModel<double> model(cfg, plan, passes, impl_->run.threads,
                                      impl_->run.force_nodiag);
  ref::ModelWeights<double> g;
  const int T = static_cast<int>(tokens.size()) - 1;
  GradResult r;
  r.loss = model.loss_and_grad(w, tokens.data(), 1, T, g);
  r.passes = passes;
  r.iterative = plan.has_upward();
  r.plan = plan.to_string();
  r.predictions = T;
  r.specs = ref::tensor_specs(cfg, plan);
  const auto params = ref::train::parameters(g);
  if (params.size() != r.specs.size()) {
    fail("gradients", std::to_string(params.size()) + " tensors",
         "expected " + std::to_string(r.specs.size()) + " (internal: tensor_specs order)");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i].name != r.specs[i].name) {
      fail("gradients", params[i].name, "expected " + r.specs[i].name + " (tensor_specs order)");
    }
    r.grads.emplace_back(params[i].data->begin(), params[i].data->end());
  }
  return r;
}

}  // namespace kvlab
