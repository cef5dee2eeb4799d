#include "visualizer/worker.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "core/error.hpp"

namespace kvlab::viz {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int argmax(const std::vector<double>& logits) {
  return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// The telemetry the panels draw: the cheap kinds and the per-layer cosines (Squeeze's panel);
// the attention probabilities too while the Attention panel records them (Worker::kinds).
// H2O's scores too: the cache map tells heavy hitters from sinks with them (emitted only under
// an h2o policy).
constexpr EventMask kVizEvents =
    kDefaultEvents | EventKind::layer_importance | EventKind::h2o_scores;

}  // namespace

void ScoresObserver::on_tensor(const TensorEvent& e) {
  // "prefill.layer3.attn.scores", "prefill.pass2.layer1.attn.scores", "decode4.layer0.attn.scores"
  static const std::string tail = ".attn.scores";
  if (e.name.size() <= tail.size() ||
      e.name.compare(e.name.size() - tail.size(), tail.size(), tail) != 0 || e.shape.size() != 3) {
    return;
  }
  const std::size_t at = e.name.rfind(".layer", e.name.size() - tail.size());
  if (at == std::string::npos) return;
  int layer = -1;
  try {
    layer = std::stoi(e.name.substr(at + 6));
  } catch (const std::exception&) {
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  by_layer_[layer] = e;  // a later pass of the same step replaces an earlier one
  version_.fetch_add(1, std::memory_order_acq_rel);
}

std::map<int, TensorEvent> ScoresObserver::latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_layer_;
}

Worker::Worker() : thread_([this] { loop(); }) {}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (session_ && telemetry_) session_->unsubscribe(telemetry_.get());
  if (session_ && attn_scores_) session_->unsubscribe(attn_scores_.get());
}

void Worker::post(WorkerCommand c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c.kind == WorkerCommand::pause) {
      running_ = false;  // at once: the run stops before its next token
      state_.running = false;
    }
    queue_.push_back(std::move(c));
    ++posted_;
  }
  cv_.notify_all();
}

WorkerState Worker::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

bool Worker::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && !busy_;
}

std::uint64_t Worker::posted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return posted_;
}

void Worker::set_speed(double tokens_per_second) {
  std::lock_guard<std::mutex> lock(mu_);
  speed_ = std::max(0.0, tokens_per_second);
}

void Worker::loop() {
  // A lower priority than the UI thread's keeps the frames smooth while the model runs (Linux:
  // the nice value of this thread only).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  for (;;) {
    WorkerCommand c;
    bool have = false, run_step = false;
    double speed = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || running_; });
      if (stop_) return;
      if (!queue_.empty()) {
        c = std::move(queue_.front());
        queue_.pop_front();
        have = true;
      } else {
        run_step = running_;
      }
      busy_ = true;
      state_.busy = true;
      speed = speed_;
    }
    const auto t0 = Clock::now();
    if (have) execute(c);
    if (run_step) {
      try {
        decode_one();
        publish("");
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu_);
        running_ = false;
        state_.error = e.what();
      }
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      busy_ = false;
      state_.busy = false;
      state_.running = running_;
      if (have) ++state_.finished;
      if (run_step && speed > 0) {
        // Pace the run; a command posted meanwhile wakes the worker at once.
        const auto wait = std::chrono::duration<double>(1.0 / speed) - (Clock::now() - t0);
        if (wait.count() > 0) {
          cv_.wait_for(lock, wait, [&] { return stop_ || !queue_.empty(); });
        }
      }
    }
  }
}

void Worker::execute(const WorkerCommand& c) {
  try {
    switch (c.kind) {
      case WorkerCommand::load:
        do_load(c.options);
        break;
      case WorkerCommand::configure: {
        if (!session_) fail("model", "(none)", "load a model first");
        const auto t0 = Clock::now();
        session_->configure(c.run_options);
        fresh_telemetry();
        next_token_ = -1;
        prompt_pieces_.clear();
        generated_pieces_.clear();
        sequence_.clear();
        if (!last_prompt_.empty()) {
          do_prefill(last_prompt_);
        } else {
          publish("");
        }
        publish("plan " + session_->plan_spec() + " applied in " +
                std::to_string(static_cast<int>(seconds_since(t0) * 1000)) + " ms");
        break;
      }
      case WorkerCommand::prefill:
        do_prefill(c.prompt);
        break;
      case WorkerCommand::score: {
        if (!session_) fail("model", "(none)", "load a model first");
        if (c.tokens.size() < 2) fail("score", "(fewer than 2 tokens)", "prefill a prompt first");
        const auto t0 = Clock::now();
        RunOptions r = session_->run_options();
        std::vector<PlanScore> out;
        for (const std::string& plan : c.plans) {
          r.plan = plan;
          session_->configure(r);
          const PplResult p = session_->ppl(c.tokens, static_cast<int>(c.tokens.size()));
          out.push_back({plan, p.perplexity(), p.mean_nll(), static_cast<int>(c.tokens.size())});
        }
        fresh_telemetry();
        next_token_ = -1;
        prompt_pieces_.clear();
        generated_pieces_.clear();
        sequence_.clear();
        scores_ = std::move(out);
        publish("scored " + std::to_string(c.tokens.size()) + " tokens under " +
                std::to_string(c.plans.size()) + " plans in " +
                std::to_string(static_cast<int>(seconds_since(t0) * 1000)) + " ms");
        break;
      }
      case WorkerCommand::step: {
        for (int i = 0; i < c.count; ++i) {
          decode_one();
          publish("");
        }
        publish("decoded " + std::to_string(c.count) + (c.count == 1 ? " token" : " tokens"));
        break;
      }
      case WorkerCommand::run: {
        if (!session_) fail("model", "(none)", "load a model first");
        if (next_token_ < 0) do_prefill(c.prompt.empty() ? last_prompt_ : c.prompt);
        std::lock_guard<std::mutex> lock(mu_);
        running_ = true;
        state_.running = true;
        state_.error.clear();
        break;
      }
      case WorkerCommand::pause:
        publish("paused");
        break;
      case WorkerCommand::attention:
        attention_ = c.count != 0;
        if (session_ && telemetry_) {
          session_->unsubscribe(telemetry_.get());
          session_->subscribe(telemetry_.get(), kinds());
          subscribe_scores(attention_);
        }
        publish(attention_ ? "recording attention from the next step"
                           : "attention no longer recorded");
        break;
      case WorkerCommand::reset: {
        if (!session_) break;
        {
          std::lock_guard<std::mutex> lock(mu_);
          running_ = false;
        }
        session_->reset();
        fresh_telemetry();
        next_token_ = -1;
        prompt_pieces_.clear();
        generated_pieces_.clear();
        sequence_.clear();
        publish("reset: an empty sequence");
        break;
      }
      case WorkerCommand::trace: {
        if (!session_) fail("model", "(none)", "load a model first");
        const std::vector<int> tokens = session_->encode(c.prompt);
        const auto t0 = Clock::now();
        // The trace runs engines of its own: only its passes reach the panels, so the footprint
        // keeps showing the session's own sequence.
        session_->unsubscribe(telemetry_.get());
        session_->subscribe(telemetry_.get(), mask(EventKind::prefill_pass));
        subscribe_scores(false);
        TraceReport r;
        try {
          r = session_->trace_prefill(tokens, true);
        } catch (...) {
          session_->unsubscribe(telemetry_.get());
          session_->subscribe(telemetry_.get(), kinds());
          subscribe_scores(attention_);
          throw;
        }
        session_->unsubscribe(telemetry_.get());
        session_->subscribe(telemetry_.get(), kinds());
        subscribe_scores(attention_);
        std::string note = "trace: " + std::to_string(r.passes.size()) + " pass events over " +
                           std::to_string(tokens.size()) + " tokens";
        if (r.blocks.empty()) note = "trace: plan " + r.map + " has no cyclic block (no passes)";
        publish(note + " in " + std::to_string(static_cast<int>(seconds_since(t0) * 1000)) + " ms");
        break;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    state_.error.clear();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    // Without a session, the load's error (the cause) stays: "load a model first" would hide it.
    if (session_ || state_.error.empty()) state_.error = e.what();
    if (c.kind == WorkerCommand::step || c.kind == WorkerCommand::run) running_ = false;
  }
}

void Worker::do_load(const SessionOptions& o) {
  const auto t0 = Clock::now();
  Session s = Session::load(o);  // throws before anything changes
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
  }
  if (session_ && telemetry_) session_->unsubscribe(telemetry_.get());
  if (session_ && attn_scores_) session_->unsubscribe(attn_scores_.get());
  session_.emplace(std::move(s));
  fresh_telemetry();
  next_token_ = -1;
  last_prompt_.clear();
  prompt_pieces_.clear();
  generated_pieces_.clear();
  sequence_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.model = o.model;
    state_.loaded_with = o;
    ++state_.loads;
  }
  publish("loaded " + o.model + " in " +
          std::to_string(static_cast<int>(seconds_since(t0) * 1000)) + " ms");
}

void Worker::fresh_telemetry() {
  // A new observer per plan and sequence: the panels never mix banks of two plans.
  if (telemetry_) session_->unsubscribe(telemetry_.get());
  telemetry_ = std::make_shared<SnapshotObserver>(512);
  session_->subscribe(telemetry_.get(), kinds());
  if (attn_scores_) session_->unsubscribe(attn_scores_.get());
  attn_scores_ = std::make_shared<ScoresObserver>();
  subscribe_scores(attention_);
  decode_seconds_ = 0;
  decoded_ = 0;
}

void Worker::subscribe_scores(bool on) {
  if (!session_ || !attn_scores_) return;
  session_->unsubscribe(attn_scores_.get());
  if (on) session_->subscribe(attn_scores_.get(), mask(EventKind::tensors));
}

EventMask Worker::kinds() const {
  return attention_ ? kVizEvents | EventKind::attention : kVizEvents;
}

void Worker::do_prefill(const std::string& prompt) {
  if (!session_) fail("model", "(none)", "load a model first");
  const std::vector<int> tokens = session_->encode(prompt);
  if (static_cast<int>(tokens.size()) > session_->context()) {
    fail("prompt", std::to_string(tokens.size()) + " tokens",
         "at most the context, " + std::to_string(session_->context()) + " tokens");
  }
  const auto t0 = Clock::now();
  const std::vector<double> logits = session_->prefill(tokens);
  const double dt = seconds_since(t0);
  last_prompt_ = prompt;
  next_token_ = argmax(logits);
  prompt_pieces_.clear();
  generated_pieces_.clear();
  sequence_.clear();
  sequence_ = tokens;
  for (int t : tokens) prompt_pieces_.push_back(session_->token_text(t));
  decode_seconds_ = 0;
  decoded_ = 0;
  publish("prefill: " + std::to_string(tokens.size()) + " tokens in " +
          std::to_string(static_cast<int>(dt * 1000)) + " ms");
}

void Worker::decode_one() {
  if (!session_) fail("model", "(none)", "load a model first");
  if (next_token_ < 0) fail("step", "(no prompt)", "prefill a prompt first");
  if (session_->position() >= session_->context()) {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    state_.note = "the context (" + std::to_string(session_->context()) + " tokens) is full";
    return;
  }
  const int token = next_token_;
  const auto t0 = Clock::now();
  const std::vector<double> logits = session_->step(token);
  decode_seconds_ += seconds_since(t0);
  ++decoded_;
  generated_pieces_.push_back(session_->token_text(token));
  sequence_.push_back(token);
  next_token_ = argmax(logits);
}

void Worker::publish(const std::string& note) {
  WorkerState s;
  if (session_) {
    const Session& ss = *session_;
    s.loaded = true;
    s.format = ss.model_format();
    s.plan_spec = ss.plan_spec();
    s.plan_text = ss.plan().to_string();
    s.config = ss.config();
    s.diagram = plan_diagram(ss.plan());
    s.run = ss.run_options();
    s.position = ss.position();
    s.context = ss.context();
    s.weight_bytes = ss.weight_bytes();
    s.kv_bytes_held = ss.kv_bytes_held();
    s.kv_bytes_allocated = ss.kv_bytes_allocated();
  }
  s.prompt_pieces = prompt_pieces_;
  s.generated_pieces = generated_pieces_;
  s.sequence = sequence_;
  s.scores = scores_;
  s.tokens_per_second = decode_seconds_ > 0 ? decoded_ / decode_seconds_ : 0;
  s.telemetry = telemetry_;
  s.attn_scores = attn_scores_;
  std::lock_guard<std::mutex> lock(mu_);
  s.model = state_.model;
  s.loaded_with = state_.loaded_with;
  s.error = state_.error;
  s.note = note.empty() ? state_.note : note;
  s.busy = busy_;
  s.running = running_;
  s.finished = state_.finished;
  s.loads = state_.loads;
  s.attention = attention_;
  state_ = std::move(s);
}

}  // namespace kvlab::viz
