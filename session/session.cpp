// The Session: loading, options, and the operations that run one engine (prefill, step,
// generate, perplexity). Analysis (squeeze, trace), tasks and benchmarks live beside it.
#include "session/session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "core/error.hpp"
#include "reference/sampling.hpp"
#include "reference/tasks.hpp"
#include "session/model_source.hpp"
#include "session/session_impl.hpp"

namespace kvlab {
namespace {

// RunOptions -> EngineOptions for a model of config `c`, with named errors. The engine checks
// the rest (threads, schedule, plan against the weights, policy against budget).
ref::EngineOptions engine_options(const RunOptions& r, const ModelConfig& c) {
  const int max_pos = c.max_position_embeddings;
  if (r.context < 0 || r.context > max_pos) {
    fail("--context", std::to_string(r.context),
         "must be in [1, " + std::to_string(max_pos) +
             "] (max_position_embeddings), or 0 for the model's");
  }
  ref::EngineOptions eo;
  eo.threads = r.threads;
  eo.context = r.context;
  eo.force_nodiag = r.force_nodiag;
  eo.schedule = r.schedule;
  eo.policy = ref::PolicySpec::parse(r.policy);
  if (r.positions == "cache") {
    eo.policy.positions = ref::PositionMode::cache;
  } else if (r.positions != "absolute") {
    fail("--positions", r.positions, "must be absolute or cache");
  }
  if (!r.budget.empty()) eo.budget = ref::BudgetSpec::parse(r.budget);
  eo.squeeze = r.squeeze;
  if (eo.squeeze.enabled) {
    if ((eo.squeeze.f3 >= 0) == (eo.squeeze.p >= 0)) {
      fail(eo.squeeze.flag.empty() ? "--f3/--p" : eo.squeeze.flag,
           eo.squeeze.f3 >= 0 ? "(both)" : "(none)",
           eo.squeeze.flag.empty() ? "give exactly one of --f3 and --p"
                                   : "give f0,f3 or f0,p=P (f3 = p · f0)");
    }
    if (!eo.budget.unset()) {
      fail("--budget", r.budget,
           "--squeeze sets the budgets (f0 is the uniform fraction): drop --budget");
    }
  }
  if (!r.plan.empty()) eo.plan = KvPlan::parse(r.plan, c.num_hidden_layers);
  if (!r.kv_dtype.empty()) {
    eo.kv_dtype = r.kv_dtype == "f64" ? Dtype::f64 : parse_dtype(r.kv_dtype);  // checked by size
  }
  return eo;
}

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Precision parse_precision(const std::string& text) {
  if (text == "f32") return Precision::f32;
  if (text == "f64") return Precision::f64;
  fail("--precision", text, "must be f32 or f64");
}

const char* precision_name(Precision p) {
  return p == Precision::f64 ? "f64" : "f32";
}

ref::SqueezeSpec parse_squeeze(const std::string& text) {
  ref::SqueezeSpec s;
  if (text.empty()) return s;
  s.flag = "--squeeze";
  const char* form = "give f0,f3 or f0,p=P (fractions of the prompt: 0.4,0.1 or 40%,10%)";
  const auto comma = text.find(',');
  if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) {
    fail("--squeeze", text, form);
  }
  // A fraction "0.4" or a percentage "40%". Each part is parsed while it lives (strtod's end
  // pointer points into it).
  auto number = [&](std::string part) {
    double scale = 1;
    if (!part.empty() && part.back() == '%') {
      part.pop_back();
      scale = 0.01;
    }
    char* end = nullptr;
    const double x = std::strtod(part.c_str(), &end);
    if (part.empty() || *end != '\0') fail("--squeeze", text, form);
    return x * scale;
  };
  s.f0 = number(text.substr(0, comma));
  const std::string second = text.substr(comma + 1);
  if (second.rfind("p=", 0) == 0) {
    s.p = number(second.substr(2));
  } else {
    s.f3 = number(second);
  }
  s.enabled = true;
  s.validate();
  return s;
}

void GenerateOptions::validate() const {
  if (max_new < 0 || max_new > (1 << 20)) {
    fail("--max-new", std::to_string(max_new), "must be in [0, 1048576]");
  }
  if (!(temperature >= 0) || temperature > 100) {
    fail("--temperature", std::to_string(temperature), "must be in [0, 100] (0 = greedy)");
  }
  if (!(top_p > 0) || top_p > 1) fail("--top-p", std::to_string(top_p), "must be in (0, 1]");
  if (seed < 0) fail("--seed", std::to_string(seed), "must be >= 0");
}

double PplResult::perplexity() const {
  return std::exp(mean_nll());
}

double PplResult::bits_per_token() const {
  return mean_nll() / std::log(2.0);
}

// ---- construction ---------------------------------------------------------------------------

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Session Session::load(const SessionOptions& o) {
  auto impl = std::make_unique<Impl>();
  auto take = [&]<typename S>(LoadedModel<S> loaded) {
    impl->tokenizer = std::move(loaded.tokenizer);
    impl->format = std::move(loaded.format);
    impl->model_plan_spec = std::move(loaded.plan_spec);
    impl->model = detail::Model<S>{std::move(loaded.weights), nullptr};
  };
  if (o.precision == Precision::f64) {
    take(load_model<double>(o));
  } else {
    take(load_model<float>(o));
  }
  Session s(std::move(impl));
  s.configure(o.run);
  return s;
}

namespace {

template <typename S>
std::unique_ptr<Session::Impl> from_weights_impl(std::shared_ptr<const ref::ModelWeights<S>> w,
                                                 std::shared_ptr<const Tokenizer> tokenizer) {
  if (!w) fail("model", "(none)", "a session needs weights");
  auto impl = std::make_unique<Session::Impl>();
  impl->tokenizer = checked_tokenizer(std::move(tokenizer), w->config.vocab_size);
  impl->format = "weights";
  impl->model = detail::Model<S>{std::move(w), nullptr};
  return impl;
}

}  // namespace

Session Session::from_weights(std::shared_ptr<const ref::ModelWeights<float>> weights,
                              std::shared_ptr<const Tokenizer> tokenizer, const RunOptions& run) {
  Session s(from_weights_impl(std::move(weights), std::move(tokenizer)));
  s.configure(run);
  return s;
}

Session Session::from_weights(std::shared_ptr<const ref::ModelWeights<double>> weights,
                              std::shared_ptr<const Tokenizer> tokenizer, const RunOptions& run) {
  Session s(from_weights_impl(std::move(weights), std::move(tokenizer)));
  s.configure(run);
  return s;
}

void Session::configure(const RunOptions& run) {
  Impl& im = *impl_;
  im.visit([&](auto& m) {
    using S = typename std::remove_reference_t<decltype(m)>::Scalar;
    ref::EngineOptions eo = engine_options(run, m.weights->config);
    auto engine =
        std::make_unique<ref::Engine<S>>(m.weights, eo, make_backend<S>(run.backend, run.threads));
    for (const auto& [o, kinds] : im.observers) engine->subscribe(o, kinds);
    // Nothing throws past this point: the session switches to the new options whole.
    m.engine = std::move(engine);
    im.engine_options = std::move(eo);
  });
  im.run = run;
}

const RunOptions& Session::run_options() const {
  return impl_->run;
}

// ---- text and tokens ------------------------------------------------------------------------

std::vector<int> Session::encode(std::string_view text, bool add_bos) const {
  return impl_->tokenizer->encode(text, add_bos);
}

std::string Session::decode(const std::vector<int>& ids) const {
  return impl_->tokenizer->decode(ids);
}

std::string Session::token_text(int id) const {
  const Tokenizer& t = *impl_->tokenizer;
  if (id >= t.vocab_size() && id < config().vocab_size) {
    return std::string("<").append(std::to_string(id)).append(">");
  }
  return t.decode_token(id);
}

std::vector<int> Session::tokens_of(const Prompt& p) const {
  const int sources = !p.text.empty() + !p.tokens.empty() + !p.text_file.empty();
  if (sources != 1) {
    fail("--prompt/--tokens/--text-file", sources ? "(several)" : "(none)", "give exactly one");
  }
  if (!p.tokens.empty()) return parse_token_list(p.tokens, config().vocab_size);
  if (!p.text_file.empty()) return encode(read_text_file(p.text_file), true);
  return encode(p.text, true);
}

// ---- running --------------------------------------------------------------------------------

std::vector<double> Session::prefill(const std::vector<int>& tokens, bool all_logits) {
  return impl_->visit(
      [&](auto& m) { return detail::to_double(m.engine->prefill(tokens, all_logits)); });
}

std::vector<double> Session::step(int token) {
  return impl_->visit([&](auto& m) { return detail::to_double(m.engine->decode(token)); });
}

void Session::reset() {
  impl_->visit([](auto& m) { m.engine->reset(); });
}

GenerateResult Session::generate(const std::vector<int>& prompt, const GenerateOptions& o,
                                 const std::function<bool(int)>& on_token) {
  o.validate();
  GenerateResult r;
  r.prompt_tokens = static_cast<int>(prompt.size());
  const int eos = impl_->tokenizer->eos_id();
  ref::Sampler sampler(o.temperature, o.top_p, static_cast<std::uint64_t>(o.seed));
  impl_->visit([&](auto& m) {
    auto& e = *m.engine;
    const auto t0 = Clock::now();
    auto logits = e.prefill(prompt);
    const auto t1 = Clock::now();
    for (int generated = 0; generated < o.max_new; ++generated) {
      const int tok = sampler.next(logits);
      if (tok == eos) break;
      r.tokens.push_back(tok);
      const bool more = !on_token || on_token(tok);
      if (!more || generated + 1 == o.max_new) break;
      if (e.position() >= e.context()) {
        r.context_full = true;
        break;
      }
      logits = e.decode(tok);
    }
    const auto t2 = Clock::now();
    r.prefill_seconds = seconds(t0, t1);
    r.decode_seconds = seconds(t1, t2);
  });
  return r;
}

PplResult Session::ppl(const std::vector<int>& toks, int window) {
  const int max_pos = config().max_position_embeddings;
  PplResult r;
  r.window = window == 0 ? std::min(256, context()) : window;
  if (r.window < 2 || r.window > max_pos) {
    fail("--context", std::to_string(r.window),
         "must be in [2, " + std::to_string(max_pos) + "] (max_position_embeddings)");
  }
  if (r.window > context()) {
    fail("--context", std::to_string(r.window),
         "must be at most the session's context of " + std::to_string(context()) + " tokens");
  }
  if (toks.size() < 2) {
    fail("tokens", std::to_string(toks.size()), "perplexity needs at least 2 tokens");
  }
  impl_->visit([&](auto& m) {
    const long V = m.weights->config.vocab_size;
    const std::size_t w = static_cast<std::size_t>(r.window);
    // Non-overlapping windows; each predicts its tokens 1..n-1 from the ones before them.
    for (std::size_t start = 0; start + 1 < toks.size(); start += w - 1) {
      const std::size_t end = std::min(toks.size(), start + w);
      const std::vector<int> win(toks.begin() + start, toks.begin() + end);
      const auto logits = m.engine->prefill(win, /*all_logits=*/true);
      for (std::size_t t = 0; t + 1 < win.size(); ++t) {
        r.nll += ref::token_nll(logits.data() + t * V, V, win[t + 1]);
        ++r.predicted;
      }
      if (end == toks.size()) break;
    }
  });
  return r;
}

SqueezeReport Session::squeeze(const std::vector<int>& tokens) {
  return impl_->visit(
      [&](auto& m) { return detail::squeeze(*m.engine, impl_->run.squeeze, tokens); });
}

TraceReport Session::trace_prefill(const std::vector<int>& tokens, bool exact) {
  const Impl& im = *impl_;
  return im.visit([&](const auto& m) {
    return detail::trace_prefill(m, im.engine_options, im.run.backend, im.observers, tokens, exact);
  });
}

EvalResult Session::eval(const EvalSetup& setup) {
  return impl_->visit([&](auto& m) { return detail::eval(*m.engine, *impl_->tokenizer, setup); });
}

void Session::check_eval(const EvalSetup& setup) const {
  impl_->visit([&](const auto& m) { detail::check_eval(*m.engine, *impl_->tokenizer, setup); });
}

BenchResult Session::bench(const BenchSetup& setup) {
  return impl_->visit([&](auto& m) { return detail::bench(*m.engine, setup); });
}

// ---- telemetry ------------------------------------------------------------------------------

void Session::add_observer(Observer* o) {
  subscribe(o, kDefaultEvents);
}

void Session::subscribe(Observer* o, EventMask kinds) {
  if (!o) fail("observer", "(null)", "give an observer to subscribe");
  bool known = false;
  for (auto& [obs, k] : impl_->observers) {
    if (obs == o) k |= kinds, known = true;
  }
  if (!known) impl_->observers.emplace_back(o, kinds);
  impl_->visit([&](auto& m) { m.engine->subscribe(o, kinds); });
}

void Session::unsubscribe(Observer* o) {
  std::erase_if(impl_->observers, [o](const Subscription& s) { return s.first == o; });
  impl_->visit([&](auto& m) { m.engine->unsubscribe(o); });
}

// ---- what the session holds -----------------------------------------------------------------

Precision Session::precision() const {
  return impl_->model.index() == 1 ? Precision::f64 : Precision::f32;
}

const ModelConfig& Session::config() const {
  return impl_->visit([](const auto& m) -> const ModelConfig& { return m.weights->config; });
}

const KvPlan& Session::plan() const {
  return impl_->visit([](const auto& m) -> const KvPlan& { return m.engine->plan(); });
}

std::string Session::plan_spec() const {
  if (!impl_->run.plan.empty()) return impl_->run.plan;
  if (!impl_->model_plan_spec.empty()) return impl_->model_plan_spec;
  return plan().to_string();
}

bool Session::random_weights() const {
  return impl_->format == "random";
}

std::string Session::model_format() const {
  return impl_->format;
}

const Tokenizer& Session::tokenizer() const {
  return *impl_->tokenizer;
}

std::shared_ptr<const Tokenizer> Session::shared_tokenizer() const {
  return impl_->tokenizer;
}

std::int64_t Session::weight_bytes() const {
  return impl_->visit([](const auto& m) { return m.weights->bytes(); });
}

int Session::position() const {
  return impl_->visit([](const auto& m) { return m.engine->position(); });
}

int Session::context() const {
  return impl_->visit([](const auto& m) { return m.engine->context(); });
}

BankKv Session::bank_kv(int kv_layer) const {
  const KvPlan& p = plan();
  if (kv_layer < 0 || kv_layer >= p.layers() || !p.is_kv_layer(kv_layer)) {
    std::string layers;
    for (int t : p.kv_layers()) layers += (layers.empty() ? "" : ",") + std::to_string(t);
    fail("kv_layer", std::to_string(kv_layer), "must be one of the plan's KV layers: " + layers);
  }
  return impl_->visit([&](const auto& m) {
    const auto& e = *m.engine;
    const int b = e.kv().bank_of_layer(kv_layer);
    auto held = e.held_kv(b);
    BankKv r;
    r.kv_layer = kv_layer;
    r.cells = held.cells;
    r.kv_heads = e.config().num_key_value_heads;
    r.head_dim = e.config().head_dim;
    r.k.assign(held.k.begin(), held.k.end());
    r.v.assign(held.v.begin(), held.v.end());
    r.positions = e.kv().head_positions(b);
    return r;
  });
}

int Session::num_banks() const {
  return impl_->visit([](const auto& m) { return m.engine->num_banks(); });
}

std::int64_t Session::kv_bytes_held() const {
  return impl_->visit([](const auto& m) { return m.engine->kv().bytes_held(); });
}

std::int64_t Session::kv_bytes_allocated() const {
  return impl_->visit([](const auto& m) { return m.engine->kv().bytes_allocated(); });
}

Dtype Session::kv_dtype() const {
  return impl_->visit([](const auto& m) { return m.engine->kv_dtype(); });
}

std::int64_t Session::kv_memory_bytes() const {
  return impl_->visit([](const auto& m) { return m.engine->kv().memory_bytes(); });
}

std::int64_t Session::h2o_score_bytes() const {
  return impl_->visit([](const auto& m) { return m.engine->kv().score_bytes_held(); });
}

const std::vector<int>& Session::passes_run() const {
  return impl_->visit(
      [](const auto& m) -> const std::vector<int>& { return m.engine->passes_run(); });
}

std::vector<double> Session::layer_importance() const {
  return impl_->visit([](const auto& m) { return m.engine->layer_importance(); });
}

}  // namespace kvlab
