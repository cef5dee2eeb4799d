#include "reference/weights.hpp"

#include <cmath>

#include "core/error.hpp"
#include "reference/rng.hpp"

namespace kvlab::ref {
namespace {

// N(0, 1) draws by Box-Muller over SplitMix64 bits (reference/rng.hpp): the same numbers with
// every standard library.
class Gaussian {
 public:
  explicit Gaussian(std::uint64_t seed) : rng_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - rng_.unit();  // (0, 1]
    const double u2 = rng_.unit();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * u2);
  }

 private:
  Rng rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

template <typename S>
Buffer<S> gaussian(Gaussian& g, std::int64_t count, double stddev) {
  Buffer<S> v(count);
  for (auto& x : v) x = static_cast<S>(g.next() * stddev);
  return v;
}

template <typename S>
void check_array(const Buffer<S>& v, std::int64_t expected, const std::string& name) {
  if (static_cast<std::int64_t>(v.size()) != expected) {
    fail(name, std::to_string(v.size()) + " values", "expected " + std::to_string(expected));
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      fail(name, "element " + std::to_string(i) + " = " + std::to_string(static_cast<double>(v[i])),
           "weights must be finite");
    }
  }
}

}  // namespace

std::vector<TensorSpec> tensor_specs(const ModelConfig& c, const KvPlan& plan) {
  const std::int64_t C = c.hidden_size, V = c.vocab_size, F = c.intermediate_size;
  const std::int64_t Q = static_cast<std::int64_t>(c.num_attention_heads) * c.head_dim;
  const std::int64_t KV = static_cast<std::int64_t>(c.num_key_value_heads) * c.head_dim;
  std::vector<TensorSpec> s;
  s.push_back({"model.embed_tokens.weight", {V, C}});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    s.push_back({p + "input_layernorm.weight", {C}});
    s.push_back({p + "self_attn.q_proj.weight", {Q, C}});
    if (plan.is_kv_layer(l)) {
      s.push_back({p + "self_attn.k_proj.weight", {KV, C}});
      s.push_back({p + "self_attn.v_proj.weight", {KV, C}});
    }
    s.push_back({p + "self_attn.o_proj.weight", {C, Q}});
    s.push_back({p + "post_attention_layernorm.weight", {C}});
    s.push_back({p + "mlp.gate_proj.weight", {F, C}});
    s.push_back({p + "mlp.up_proj.weight", {F, C}});
    s.push_back({p + "mlp.down_proj.weight", {C, F}});
  }
  s.push_back({"model.norm.weight", {C}});
  if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", {V, C}});
  return s;
}

template <typename S>
std::int64_t ModelWeights<S>::bytes() const {
  std::int64_t n = embed.size() + final_norm.size() + classifier.size();
  for (const auto& l : layers) {
    n += l.attn_norm.size() + l.wq.size() + l.wk.size() + l.wv.size() + l.wo.size() +
         l.ffn_norm.size() + l.w1.size() + l.w3.size() + l.w2.size();
  }
  return n * static_cast<std::int64_t>(sizeof(S));
}

template <typename S>
ModelWeights<S> init_random(const ModelConfig& c, const KvPlan& plan, std::uint64_t seed) {
  c.validate();
  if (plan.layers() != c.num_hidden_layers) {
    fail("plan", plan.to_string(),
         "has " + std::to_string(plan.layers()) + " layers; the model has " +
             std::to_string(c.num_hidden_layers));
  }
  const std::int64_t C = c.hidden_size, V = c.vocab_size, F = c.intermediate_size;
  const std::int64_t Q = static_cast<std::int64_t>(c.num_attention_heads) * c.head_dim;
  const std::int64_t KV = static_cast<std::int64_t>(c.num_key_value_heads) * c.head_dim;
  const double std0 = 0.02, residual = 0.02 / std::sqrt(2.0 * c.num_hidden_layers);
  Gaussian g(seed);
  ModelWeights<S> w;
  w.config = c;
  w.plan = plan;
  w.embed = gaussian<S>(g, V * C, std0);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights<S> L;
    L.attn_norm.assign(C, S(1));
    L.wq = gaussian<S>(g, Q * C, std0);
    if (plan.is_kv_layer(l)) {
      L.wk = gaussian<S>(g, KV * C, std0);
      L.wv = gaussian<S>(g, KV * C, std0);
    }
    L.wo = gaussian<S>(g, C * Q, residual);
    L.ffn_norm.assign(C, S(1));
    L.w1 = gaussian<S>(g, F * C, std0);
    L.w3 = gaussian<S>(g, F * C, std0);
    L.w2 = gaussian<S>(g, C * F, residual);
    w.layers.push_back(std::move(L));
  }
  w.final_norm.assign(C, S(1));
  if (!c.tie_word_embeddings) w.classifier = gaussian<S>(g, V * C, std0);
  return w;
}

template <typename To, typename From>
ModelWeights<To> convert_weights(const ModelWeights<From>& w) {
  auto cv = [](const Buffer<From>& v) { return Buffer<To>(v.begin(), v.end()); };
  ModelWeights<To> o;
  o.config = w.config;
  o.plan = w.plan;
  o.embed = cv(w.embed);
  for (const auto& l : w.layers) {
    o.layers.push_back({cv(l.attn_norm), cv(l.wq), cv(l.wk), cv(l.wv), cv(l.wo), cv(l.ffn_norm),
                        cv(l.w1), cv(l.w3), cv(l.w2)});
  }
  o.final_norm = cv(w.final_norm);
  o.classifier = cv(w.classifier);
  return o;
}

template <typename S>
void check_weights(const ModelWeights<S>& w) {
  const ModelConfig& c = w.config;
  const std::int64_t C = c.hidden_size, V = c.vocab_size, F = c.intermediate_size;
  const std::int64_t Q = static_cast<std::int64_t>(c.num_attention_heads) * c.head_dim;
  const std::int64_t KV = static_cast<std::int64_t>(c.num_key_value_heads) * c.head_dim;
  check_array(w.embed, V * C, "model.embed_tokens.weight");
  if (static_cast<int>(w.layers.size()) != c.num_hidden_layers) {
    fail("layers", std::to_string(w.layers.size()),
         "expected num_hidden_layers = " + std::to_string(c.num_hidden_layers));
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const auto& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    check_array(L.attn_norm, C, p + "input_layernorm.weight");
    check_array(L.wq, Q * C, p + "self_attn.q_proj.weight");
    const std::int64_t kv = w.plan.is_kv_layer(l) ? KV * C : 0;
    check_array(L.wk, kv, p + "self_attn.k_proj.weight");
    check_array(L.wv, kv, p + "self_attn.v_proj.weight");
    check_array(L.wo, C * Q, p + "self_attn.o_proj.weight");
    check_array(L.ffn_norm, C, p + "post_attention_layernorm.weight");
    check_array(L.w1, F * C, p + "mlp.gate_proj.weight");
    check_array(L.w3, F * C, p + "mlp.up_proj.weight");
    check_array(L.w2, C * F, p + "mlp.down_proj.weight");
  }
  check_array(w.final_norm, C, "model.norm.weight");
  check_array(w.classifier, c.tie_word_embeddings ? 0 : V * C, "lm_head.weight");
}

template struct ModelWeights<float>;
template struct ModelWeights<double>;
template ModelWeights<float> init_random<float>(const ModelConfig&, const KvPlan&, std::uint64_t);
template ModelWeights<double> init_random<double>(const ModelConfig&, const KvPlan&, std::uint64_t);
template ModelWeights<double> convert_weights<double, float>(const ModelWeights<float>&);
template ModelWeights<float> convert_weights<float, double>(const ModelWeights<double>&);
template ModelWeights<float> convert_weights<float, float>(const ModelWeights<float>&);
template void check_weights<float>(const ModelWeights<float>&);
template void check_weights<double>(const ModelWeights<double>&);

}  // namespace kvlab::ref
