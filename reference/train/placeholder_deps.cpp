// THROWAWAY placeholder for the grad and corpus branches (removed when they are merged): a fake
// loss with gradient w / n, and a byte-level corpus with a trivial sampler.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "reference/rng.hpp"
#include "reference/train/corpus.hpp"
#include "reference/train/grad.hpp"

namespace kvlab::ref::train {

void TrainPasses::validate() const {
  if (m < 0) fail("--train-passes", std::to_string(m), "m must be >= 0");
  if (b < 1) fail("--train-passes", std::to_string(b), "b must be >= 1");
  if (!(kv_loss_weight >= 0)) fail("--kv-loss", std::to_string(kv_loss_weight), "must be >= 0");
}
double LossReport::total() const {
  return loss + kv_loss;
}

template <typename S>
std::vector<ParamRef<S>> parameters(ModelWeights<S>& w) {
  std::vector<ParamRef<S>> r;
  r.push_back({"model.embed_tokens.weight", &w.embed, true});
  for (size_t l = 0; l < w.layers.size(); ++l) {
    auto& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    r.push_back({p + "input_layernorm.weight", &L.attn_norm, false});
    r.push_back({p + "self_attn.q_proj.weight", &L.wq, true});
    if (!L.wk.empty()) {
      r.push_back({p + "self_attn.k_proj.weight", &L.wk, true});
      r.push_back({p + "self_attn.v_proj.weight", &L.wv, true});
    }
    r.push_back({p + "self_attn.o_proj.weight", &L.wo, true});
    r.push_back({p + "post_attention_layernorm.weight", &L.ffn_norm, false});
    r.push_back({p + "mlp.gate_proj.weight", &L.w1, true});
    r.push_back({p + "mlp.up_proj.weight", &L.w3, true});
    r.push_back({p + "mlp.down_proj.weight", &L.w2, true});
  }
  r.push_back({"model.norm.weight", &w.final_norm, false});
  if (!w.classifier.empty()) r.push_back({"lm_head.weight", &w.classifier, true});
  return r;
}

template <typename S>
ModelWeights<S> zeros_like(const ModelWeights<S>& w) {
  ModelWeights<S> z = w;
  for (auto& p : parameters(z)) std::fill(p.data->begin(), p.data->end(), S(0));
  return z;
}

template <typename S>
struct GradModel<S>::Impl {
  ModelConfig cfg;
};
template <typename S>
GradModel<S>::GradModel(const ModelConfig& cfg, const KvPlan&, TrainPasses passes, int, bool)
    : impl_(std::make_unique<Impl>()) {
  passes.validate();
  impl_->cfg = cfg;
}
template <typename S>
GradModel<S>::~GradModel() = default;
template <typename S>
GradModel<S>::GradModel(GradModel&&) noexcept = default;
template <typename S>
GradModel<S>& GradModel<S>::operator=(GradModel&&) noexcept = default;

template <typename S>
LossReport GradModel<S>::loss(const ModelWeights<S>& w, const int* batch, int B, int T) {
  double ss = 0;
  long n = 0;
  auto& ww = const_cast<ModelWeights<S>&>(w);
  for (auto& p : parameters(ww)) {
    for (S x : *p.data) ss += double(x) * double(x);
    n += static_cast<long>(p.data->size());
  }
  double tok = 0;
  for (int i = 0; i < B * (T + 1); ++i) {
    if (batch[i] < 0 || batch[i] >= impl_->cfg.vocab_size) fail("token", "?", "out of range");
    tok += batch[i];
  }
  LossReport r;
  r.loss = 0.5 * ss / double(n) * 1e4 + tok / (B * (T + 1)) / impl_->cfg.vocab_size;
  return r;
}
template <typename S>
LossReport GradModel<S>::loss_and_grad(const ModelWeights<S>& w, const int* batch, int B, int T,
                                       ModelWeights<S>& grads) {
  LossReport r = loss(w, batch, B, T);
  long n = 0;
  auto& ww = const_cast<ModelWeights<S>&>(w);
  for (auto& p : parameters(ww)) n += static_cast<long>(p.data->size());
  auto P = parameters(ww);
  auto G = parameters(grads);
  for (size_t i = 0; i < P.size(); ++i) {
    for (size_t k = 0; k < P[i].data->size(); ++k) {
      (*G[i].data)[k] = static_cast<S>(double((*P[i].data)[k]) / double(n) * 1e4);
    }
  }
  return r;
}

template std::vector<ParamRef<float>> parameters<float>(ModelWeights<float>&);
template std::vector<ParamRef<double>> parameters<double>(ModelWeights<double>&);
template ModelWeights<float> zeros_like<float>(const ModelWeights<float>&);
template ModelWeights<double> zeros_like<double>(const ModelWeights<double>&);
template class GradModel<float>;
template class GradModel<double>;

void CorpusOptions::validate() const {}

Corpus build_corpus(const CorpusOptions& o, const Tokenizer& tok, int) {
  std::string path = o.text_file;
  if (path.empty()) fail("--text-file", "(none)", "placeholder corpus needs --text-file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--text-file", path, "cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Corpus c;
  c.source = path;
  const size_t cut = text.size() * 9 / 10;
  c.train = tok.encode(text.substr(0, cut), true);
  c.val = tok.encode(text.substr(cut), true);
  c.documents = 1;
  return c;
}

BatchSampler::BatchSampler(const std::vector<int>& stream, int B, int T, std::uint64_t seed)
    : stream_(&stream), B_(B), T_(T) {
  if (static_cast<long>(stream.size()) < T + 1) {
    fail("corpus", std::to_string(stream.size()) + " tokens",
         "is smaller than one batch row of T+1 = " + std::to_string(T + 1));
  }
  state_.seed = seed;
}
void BatchSampler::next(int* out) {
  Rng r(state_.seed * 1000003 + state_.step);
  const auto n = stream_->size() - static_cast<size_t>(T_);
  for (int b = 0; b < B_; ++b) {
    const size_t at = r.below(n);
    for (int t = 0; t <= T_; ++t) out[b * (T_ + 1) + t] = (*stream_)[at + t];
  }
  ++state_.step;
}
BatchSampler::State BatchSampler::state() const {
  return state_;
}
void BatchSampler::restore(const State& s) {
  state_ = s;
}

}  // namespace kvlab::ref::train
