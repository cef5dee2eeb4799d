// Inside a Session (not for front ends): the weights and engine of one precision, and the
// operations as templates over it. session.cpp dispatches on the precision chosen at run time.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "session/backend.hpp"
#include "session/session.hpp"

namespace kvlab {
namespace detail {

template <typename S>
struct Model {
  using Scalar = S;
  std::shared_ptr<const ref::ModelWeights<S>> weights;
  std::unique_ptr<ref::Engine<S>> engine;
};

template <typename S>
std::vector<double> to_double(std::vector<S> v) {
  if constexpr (std::is_same_v<S, double>) {
    return v;
  } else {
    return std::vector<double>(v.begin(), v.end());
  }
}

// session/analysis.cpp
template <typename S>
SqueezeReport squeeze(ref::Engine<S>& engine, const ref::SqueezeSpec& spec,
                      const std::vector<int>& tokens);
template <typename S>
TraceReport trace_prefill(const Model<S>& model, const ref::EngineOptions& options,
                          const std::string& backend, const std::vector<Subscription>& observers,
                          const std::vector<int>& tokens, bool exact);

// session/eval.cpp
template <typename S>
EvalResult eval(ref::Engine<S>& engine, const Tokenizer& tokenizer, const EvalSetup& setup);
template <typename S>
void check_eval(const ref::Engine<S>& engine, const Tokenizer& tokenizer, const EvalSetup& setup);

// session/bench.cpp
template <typename S>
BenchResult bench(ref::Engine<S>& engine, const BenchSetup& setup);

}  // namespace detail

struct Session::Impl {
  std::variant<detail::Model<float>, detail::Model<double>> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  RunOptions run;
  ref::EngineOptions engine_options;  // `run`, parsed
  std::string format;                 // "kvlab" | "hf" | "llama2c" | "random" | "weights"
  std::string model_plan_spec;        // how the weights' plan was asked for; "" when unknown
  std::vector<Subscription> observers;

  // fn(detail::Model<S>&) for the session's precision.
  template <typename Fn>
  decltype(auto) visit(Fn&& fn) {
    return std::visit(std::forward<Fn>(fn), model);
  }
  template <typename Fn>
  decltype(auto) visit(Fn&& fn) const {
    return std::visit(std::forward<Fn>(fn), model);
  }
};

}  // namespace kvlab
