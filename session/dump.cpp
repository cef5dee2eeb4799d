// Session::dump and the dump file (docs/crosscheck.md).
#include "session/dump.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <span>

#include "core/error.hpp"
#include "core/formats/safetensors.hpp"
#include "session/session.hpp"
#include "session/session_impl.hpp"

namespace kvlab {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    parts.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ",") + p;
  return s;
}

// The layer of a `.layerN.` name, or -1.
int layer_of(const std::string& name) {
  const std::size_t at = name.find(".layer");
  if (at == std::string::npos) return -1;
  return std::atoi(name.c_str() + at + 6);
}

// FNV-1a 64 over the config's dimensions and every weight as float64 bits: equal for the f32
// and f64 sessions of one checkpoint (its values are floats either way).
template <typename S>
std::string weights_hash(const ref::ModelWeights<S>& w) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](std::uint64_t x) {
    for (int i = 0; i < 8; ++i) {
      h ^= (x >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  auto array = [&](const auto& a) {
    mix(a.size());
    for (S x : a) mix(std::bit_cast<std::uint64_t>(static_cast<double>(x)));
  };
  const ModelConfig& c = w.config;
  for (int d : {c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                c.num_attention_heads, c.num_key_value_heads, c.head_dim}) {
    mix(static_cast<std::uint64_t>(d));
  }
  array(w.embed);
  for (const auto& L : w.layers) {
    for (const auto* a :
         {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w1, &L.w3, &L.w2}) {
      array(*a);
    }
  }
  array(w.final_norm);
  array(w.classifier);
  char text[32];
  std::snprintf(text, sizeof text, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return text;
}

// Keeps the engine's tensors that the request asks for.
class Collector : public Observer {
 public:
  Collector(const DumpRequest& r, std::vector<NamedTensor>& out) : r_(r), out_(out) {}
  void on_tensor(const TensorEvent& e) override { keep(e); }
  void keep(const TensorEvent& e) {
    const std::string kind = dump_kind(e.name);
    if (kind != "tokens" && !r_.what.empty() &&
        std::find(r_.what.begin(), r_.what.end(), kind) == r_.what.end()) {
      return;
    }
    const int l = layer_of(e.name);
    if (l >= 0 && !r_.layers.empty() &&
        std::find(r_.layers.begin(), r_.layers.end(), l) == r_.layers.end()) {
      return;
    }
    out_.push_back(e);
  }

 private:
  const DumpRequest& r_;
  std::vector<NamedTensor>& out_;
};

TensorEvent int_tensor(std::string name, const std::vector<int>& v) {
  TensorEvent e;
  e.name = std::move(name);
  e.integer = true;
  e.shape = {static_cast<std::int64_t>(v.size())};
  e.ints.assign(v.begin(), v.end());
  return e;
}

TensorEvent float_tensor(std::string name, std::vector<std::int64_t> shape, std::vector<double> v) {
  TensorEvent e;
  e.name = std::move(name);
  e.shape = std::move(shape);
  e.values = std::move(v);
  return e;
}

int argmax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

const char* kvlab_version() {
  return KVLAB_VERSION;
}

const std::vector<std::string>& dump_kinds() {
  static const std::vector<std::string> kinds = {"tokens", "embed", "norm",    "q",     "k",
                                                 "v",      "read",  "scores",  "probs", "attn",
                                                 "resid",  "mlp",   "targets", "cache", "logits"};
  return kinds;
}

std::string dump_kind(const std::string& n) {
  static const std::pair<const char*, const char*> kTails[] = {{".attn.norm_in", "norm"},
                                                               {".mlp.norm_in", "norm"},
                                                               {".attn.q", "q"},
                                                               {".attn.k", "k"},
                                                               {".attn.v", "v"},
                                                               {".attn.read_positions", "read"},
                                                               {".attn.scores", "scores"},
                                                               {".attn.probs", "probs"},
                                                               {".attn.out", "attn"},
                                                               {".attn.resid", "resid"},
                                                               {".mlp.resid", "resid"},
                                                               {".mlp.out", "mlp"},
                                                               {".target_k", "targets"},
                                                               {".target_v", "targets"},
                                                               {".kept_positions", "cache"},
                                                               {".evicted_positions", "cache"},
                                                               {".logits", "logits"},
                                                               {".embed", "embed"},
                                                               {".token", "tokens"}};
  if (n == "inputs.tokens") return "tokens";
  for (const auto& [tail, kind] : kTails) {
    if (ends_with(n, tail)) return kind;
  }
  return "";
}

std::vector<std::string> parse_dump_what(const std::string& text) {
  if (text.empty()) return {};
  std::vector<std::string> what = split(text);
  for (const auto& w : what) {
    if (std::find(dump_kinds().begin(), dump_kinds().end(), w) == dump_kinds().end()) {
      fail("--what", w.empty() ? "(empty item in '" + text + "')" : w,
           "must be a comma-separated list of " + join(dump_kinds()));
    }
  }
  return what;
}

std::vector<int> parse_dump_layers(const std::string& text, int num_layers) {
  if (text.empty()) return {};
  std::vector<int> layers;
  for (const auto& part : split(text)) {
    char* end = nullptr;
    const long l = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || l < 0 || l >= num_layers) {
      fail("--layers", part.empty() ? "(empty item in '" + text + "')" : part,
           "must be a comma-separated list of layers in [0, " + std::to_string(num_layers) + ")");
    }
    layers.push_back(static_cast<int>(l));
  }
  return layers;
}

void write_dump(const std::string& path, const Dump& dump) {
  const auto p = dump.metadata.find("precision");
  const bool f64 = p != dump.metadata.end() && p->second == "f64";
  std::vector<std::vector<float>> floats;  // f32 copies, alive until the write
  floats.reserve(dump.tensors.size());
  std::vector<TensorRef> refs;
  for (const NamedTensor& t : dump.tensors) {
    if (t.integer) {
      refs.emplace_back(t.name, t.shape, std::span<const std::int64_t>(t.ints));
    } else if (f64) {
      refs.emplace_back(t.name, t.shape, std::span<const double>(t.values));
    } else {
      floats.emplace_back(t.values.begin(), t.values.end());
      refs.emplace_back(t.name, t.shape, std::span<const float>(floats.back()));
    }
  }
  write_safetensors(path, refs, dump.metadata);
}

Dump Session::dump(const DumpRequest& r) {
  if (r.tokens.empty()) fail("prompt", "(empty)", "needs at least one token");
  if (r.decode < 0 || r.decode > 4096) {
    fail("--decode", std::to_string(r.decode), "must be in [0, 4096]");
  }
  for (const auto& w : r.what) parse_dump_what(w);
  for (int l : r.layers) parse_dump_layers(std::to_string(l), config().num_hidden_layers);
  if (static_cast<long>(r.tokens.size()) + r.decode > context()) {
    fail("--decode", std::to_string(r.decode),
         "the prompt (" + std::to_string(r.tokens.size()) + " tokens) and the decode steps must " +
             "fit the context, " + std::to_string(context()) + " tokens");
  }

  Dump d;
  Collector collect(r, d.tensors);
  collect.keep(int_tensor("inputs.tokens", r.tokens));
  subscribe(&collect, mask(EventKind::tensors));
  struct Unsubscribe {
    Session* s;
    Observer* o;
    ~Unsubscribe() { s->unsubscribe(o); }
  } guard{this, &collect};

  const long V = config().vocab_size, T = static_cast<long>(r.tokens.size());
  std::vector<double> logits = prefill(r.tokens, /*all_logits=*/true);
  std::vector<double> last(logits.end() - V, logits.end());
  collect.keep(float_tensor("prefill.logits", {T, V}, std::move(logits)));
  std::vector<int> generated;
  for (int i = 1; i <= r.decode; ++i) {
    const int tok = argmax(last);  // greedy: the first of equal maxima
    generated.push_back(tok);
    collect.keep(int_tensor("decode" + std::to_string(i) + ".token", {tok}));
    last = step(tok);
    collect.keep(float_tensor("decode" + std::to_string(i) + ".logits", {1, V}, last));
  }

  const ModelConfig& c = config();
  const RunOptions& run = run_options();
  std::vector<std::string> toks;
  for (int t : r.tokens) toks.push_back(std::to_string(t));
  std::vector<std::string> gen;
  for (int t : generated) gen.push_back(std::to_string(t));
  std::vector<std::string> layers;
  for (int l : r.layers) layers.push_back(std::to_string(l));
  const auto& sched = run.schedule;
  const char* modes[] = {"automatic", "fixed", "converge", "token_by_token"};
  d.metadata = {
      {"format", "kvlab-dump/1"},
      {"kvlab_version", kvlab_version()},
      {"model_hash", impl_->visit([](const auto& m) { return weights_hash(*m.weights); })},
      {"model_format", model_format()},
      {"config", "layers=" + std::to_string(c.num_hidden_layers) +
                     " hidden=" + std::to_string(c.hidden_size) +
                     " heads=" + std::to_string(c.num_attention_heads) +
                     " kv_heads=" + std::to_string(c.num_key_value_heads) + " head_dim=" +
                     std::to_string(c.head_dim) + " ffn=" + std::to_string(c.intermediate_size) +
                     " vocab=" + std::to_string(c.vocab_size)},
      {"plan", plan_spec()},
      {"map", plan().to_string()},
      {"policy", run.policy},
      {"positions", run.positions},
      {"budget", run.budget.empty() ? "none" : run.budget},
      {"squeeze", run.squeeze.enabled
                      ? std::to_string(run.squeeze.f0) + "," + std::to_string(run.squeeze.reduced())
                      : "off"},
      {"schedule", std::string(modes[static_cast<int>(sched.mode)]) + " passes=" +
                       std::to_string(sched.passes) + " eps=" + std::to_string(sched.eps) +
                       " max_passes=" + std::to_string(sched.max_passes)},
      {"passes_run",
       [&] {
         std::vector<std::string> p;
         for (int n : passes_run()) p.push_back(std::to_string(n));
         return p.empty() ? std::string("none") : join(p);
       }()},
      {"force_nodiag", run.force_nodiag ? "true" : "false"},
      {"precision", precision_name(precision())},
      {"prompt_tokens", join(toks)},
      {"decode_steps", std::to_string(r.decode)},
      {"decoded_tokens", gen.empty() ? "none" : join(gen)},
      {"what", r.what.empty() ? "all" : join(r.what)},
      {"layers", r.layers.empty() ? "all" : join(layers)},
  };
  return d;
}

}  // namespace kvlab
