// Telemetry as Python objects: the event structs of core/telemetry.hpp (fields read-only, vector
// fields as numpy views that keep their event alive), and the Recorder that collects them.
#include <mutex>
#include <string>
#include <vector>

#include "python/common.hpp"
#include "python/recorder.hpp"

namespace kvlab::python {

void Recorder::on_kv_step(const KvStepEvent& e) {
  std::lock_guard lock(mu_);
  kv_steps.push_back(std::make_shared<KvStepEvent>(e));
}
void Recorder::on_step_summary(const StepSummaryEvent& e) {
  std::lock_guard lock(mu_);
  summaries.push_back(std::make_shared<StepSummaryEvent>(e));
}
void Recorder::on_prefill_pass(const PrefillPassEvent& e) {
  std::lock_guard lock(mu_);
  passes.push_back(std::make_shared<PrefillPassEvent>(e));
}
void Recorder::on_squeeze(const SqueezeEvent& e) {
  std::lock_guard lock(mu_);
  squeezes.push_back(std::make_shared<SqueezeEvent>(e));
}
void Recorder::on_h2o_scores(const H2oScoresEvent& e) {
  std::lock_guard lock(mu_);
  h2o_scores.push_back(std::make_shared<H2oScoresEvent>(e));
}
void Recorder::on_layer_importance(const LayerImportanceEvent& e) {
  std::lock_guard lock(mu_);
  importance.push_back(std::make_shared<LayerImportanceEvent>(e));
}
void Recorder::on_attention(const AttentionEvent& e) {
  std::lock_guard lock(mu_);
  attention.push_back(std::make_shared<AttentionEvent>(e));
}
void Recorder::on_kept(const KeptEvent& e) {
  std::lock_guard lock(mu_);
  kept.push_back(std::make_shared<KeptEvent>(e));
}
void Recorder::on_tensor(const TensorEvent& e) {
  std::lock_guard lock(mu_);
  tensors.push_back(std::make_shared<TensorEvent>(e));
}
void Recorder::clear() {
  std::lock_guard lock(mu_);
  kept.clear();
  tensors.clear();
  kv_steps.clear();
  summaries.clear();
  passes.clear();
  squeezes.clear();
  h2o_scores.clear();
  importance.clear();
  attention.clear();
}
void Recorder::close() {
  if (auto box = box_.lock()) {
    if (box->session) box->session->unsubscribe(this);
    std::erase_if(box->recorders, [this](const auto& r) { return r.get() == this; });
  }
  box_.reset();
}

namespace {

template <typename E>
py::list snapshot(std::mutex& mu, const std::vector<std::shared_ptr<E>>& v) {
  std::lock_guard lock(mu);
  py::list out;
  for (const auto& e : v) out.append(py::cast(e));
  return out;
}

// A vector field of an event as a read-only numpy view (the event stays alive while it is used).
template <typename E, typename T>
auto vec(std::vector<T> E::*field) {
  return [field](py::object self) {
    const E& e = self.cast<const E&>();
    return view((e.*field), self);
  };
}

}  // namespace

void bind_telemetry(py::module_& m) {
  using std::shared_ptr;
  py::class_<KvStepEvent, shared_ptr<KvStepEvent>>(
      m, "KvStepEvent",
      "After each forward step, one per layer: the bank it reads and what that bank holds.")
      .def_readonly("step", &KvStepEvent::step, "0 = prefill, then 1, 2, ... per decoded token.")
      .def_readonly("phase", &KvStepEvent::phase, "'prefill' | 'decode'")
      .def_readonly("layer", &KvStepEvent::layer, "The reading layer.")
      .def_readonly("bank", &KvStepEvent::bank, "The KV layer whose bank it reads.")
      .def_readonly("writes", &KvStepEvent::writes, "The layer is the bank's KV layer.")
      .def_readonly("tokens_held", &KvStepEvent::tokens_held)
      .def_readonly("bytes_held", &KvStepEvent::bytes_held)
      .def_readonly("budget", &KvStepEvent::budget, "The bank's capacity in tokens.")
      .def_readonly("evicted", &KvStepEvent::evicted, "Cells evicted during this step.");
  py::class_<StepSummaryEvent, shared_ptr<StepSummaryEvent>>(m, "StepSummaryEvent",
                                                             "Once per step: the whole cache.")
      .def_readonly("step", &StepSummaryEvent::step)
      .def_readonly("phase", &StepSummaryEvent::phase)
      .def_readonly("tokens_in_step", &StepSummaryEvent::tokens_in_step)
      .def_readonly("position", &StepSummaryEvent::position)
      .def_readonly("kv_bytes_held", &StepSummaryEvent::kv_bytes_held)
      .def_readonly("kv_bytes_allocated", &StepSummaryEvent::kv_bytes_allocated)
      .def_readonly("h2o_score_bytes", &StepSummaryEvent::h2o_score_bytes);
  py::class_<PrefillPassEvent, shared_ptr<PrefillPassEvent>>(
      m, "PrefillPassEvent",
      "LCKV's iterative prefill: after each pass, one per upward target, the change of the "
      "target's K/V against the previous pass (docs/lckv.md).")
      .def_readonly("block", &PrefillPassEvent::block)
      .def_readonly("first_layer", &PrefillPassEvent::first_layer)
      .def_readonly("last_layer", &PrefillPassEvent::last_layer)
      .def_readonly("pass_", &PrefillPassEvent::pass, "The pass, 1, 2, ... (`pass` in JSON).")
      .def_readonly("target_layer", &PrefillPassEvent::target_layer)
      .def_readonly("tokens", &PrefillPassEvent::tokens)
      .def_readonly("tokens_exact", &PrefillPassEvent::tokens_exact,
                    "min(pass, T): tokens whose K/V are provably exact.")
      .def_readonly("max_abs_dk", &PrefillPassEvent::max_abs_dk)
      .def_readonly("mean_abs_dk", &PrefillPassEvent::mean_abs_dk)
      .def_readonly("max_abs_dv", &PrefillPassEvent::max_abs_dv)
      .def_readonly("mean_abs_dv", &PrefillPassEvent::mean_abs_dv)
      .def_readonly("rel_dk", &PrefillPassEvent::rel_dk, "max |dK| / max |K|")
      .def_readonly("rel_dv", &PrefillPassEvent::rel_dv, "max |dV| / max |V|")
      .def_readonly("rel_mean_dk", &PrefillPassEvent::rel_mean_dk)
      .def_readonly("rel_mean_dv", &PrefillPassEvent::rel_mean_dv)
      .def_readonly("err_k", &PrefillPassEvent::err_k,
                    "max |K - K_exact| / max |K_exact| (exact runs; -1 otherwise).")
      .def_readonly("err_v", &PrefillPassEvent::err_v)
      .def_readonly("converged", &PrefillPassEvent::converged);
  py::class_<SqueezeEvent, shared_ptr<SqueezeEvent>>(
      m, "SqueezeEvent", "SqueezeAttention, once per prompt (techniques.md §6).")
      .def_readonly("prompt_tokens", &SqueezeEvent::prompt_tokens)
      .def_property_readonly("layer_importance", vec(&SqueezeEvent::layer_importance),
                             "s_l per layer (numpy).")
      .def_property_readonly("bank_layer", vec(&SqueezeEvent::bank_layer),
                             "The KV layer of each evicting bank.")
      .def_property_readonly("bank_importance", vec(&SqueezeEvent::bank_importance))
      .def_property_readonly("cluster", vec(&SqueezeEvent::cluster), "Per bank: 1 .. 3.")
      .def_property_readonly("budget", vec(&SqueezeEvent::budget), "Per bank, tokens.")
      .def_readonly("a", &SqueezeEvent::a)
      .def_readonly("notes", &SqueezeEvent::notes);
  py::class_<H2oScoresEvent, shared_ptr<H2oScoresEvent>>(
      m, "H2oScoresEvent",
      "H2O's accumulated scores after a step, per evicting bank and KV head (kind h2o_scores).")
      .def_readonly("step", &H2oScoresEvent::step)
      .def_readonly("bank", &H2oScoresEvent::bank, "The KV layer.")
      .def_readonly("kv_head", &H2oScoresEvent::kv_head)
      .def_property_readonly("positions", vec(&H2oScoresEvent::positions))
      .def_property_readonly("scores", vec(&H2oScoresEvent::scores))
      .def_property_readonly("counts", vec(&H2oScoresEvent::counts));
  py::class_<LayerImportanceEvent, shared_ptr<LayerImportanceEvent>>(
      m, "LayerImportanceEvent",
      "Per prompt: s_l = mean_t cos(x_t, x_t + attn_l) per layer; higher = less important "
      "(kind layer_importance).")
      .def_readonly("prompt_tokens", &LayerImportanceEvent::prompt_tokens)
      .def_property_readonly("cos_sim", vec(&LayerImportanceEvent::cos_sim));
  py::class_<AttentionEvent, shared_ptr<AttentionEvent>>(
      m, "AttentionEvent",
      "Attention probabilities of one layer in one step (kind attention): probs[h, i, j] is "
      "query row i (position query_pos[i]) on cell j of the bank; key_pos[g, j] the position "
      "of cell j for KV head g.")
      .def_readonly("step", &AttentionEvent::step)
      .def_readonly("phase", &AttentionEvent::phase)
      .def_readonly("layer", &AttentionEvent::layer)
      .def_readonly("bank", &AttentionEvent::bank, "The KV layer read.")
      .def_readonly("heads", &AttentionEvent::heads)
      .def_readonly("kv_heads", &AttentionEvent::kv_heads)
      .def_readonly("rows", &AttentionEvent::rows)
      .def_readonly("cells", &AttentionEvent::cells)
      .def_readonly("pass_", &AttentionEvent::pass, "LCKV pass (1, 2, ...); 0 otherwise.")
      .def_property_readonly("query_pos", vec(&AttentionEvent::query_pos), "(rows,)")
      .def_property_readonly(
          "key_pos",
          [](py::object self) {
            const auto& e = self.cast<const AttentionEvent&>();
            return view(e.key_pos.data(), {e.kv_heads, e.cells}, self);
          },
          "(kv_heads, cells)")
      .def_property_readonly(
          "probs",
          [](py::object self) {
            const auto& e = self.cast<const AttentionEvent&>();
            return view(e.probs.data(), {e.heads, e.rows, e.cells}, self);
          },
          "(heads, rows, cells) float32, a view (no copy).");

  py::class_<KeptEvent, shared_ptr<KeptEvent>>(
      m, "KeptEvent",
      "Which positions a bank kept (kind kept): after the prefill and after each decode step, "
      "one per bank and KV head, for every policy (full keeps every position).")
      .def_readonly("step", &KeptEvent::step, "0 = prefill, then 1, 2, ... per decoded token.")
      .def_readonly("bank", &KeptEvent::bank, "The KV layer.")
      .def_readonly("kv_head", &KeptEvent::kv_head)
      .def_readonly("policy", &KeptEvent::policy,
                    "The bank's policy ('h2o', 'window:16', 'sliding' for a sliding layer).")
      .def_readonly("budget", &KeptEvent::budget, "Tokens; 0: none (full).")
      .def_property_readonly("positions", vec(&KeptEvent::positions), "Held, in cache order.");
  py::class_<TensorEvent, shared_ptr<TensorEvent>>(
      m, "TensorEvent",
      "One named intermediate tensor of a forward step (kind tensors; names as in "
      "docs/crosscheck.md, e.g. 'prefill.layer0.attn.k'). `array` is shaped: float64 values, or "
      "int64 for integer tensors (token ids, positions).")
      .def_readonly("name", &TensorEvent::name)
      .def_readonly("shape", &TensorEvent::shape)
      .def_readonly("integer", &TensorEvent::integer)
      .def_property_readonly(
          "array",
          [](py::object self) -> py::object {
            const auto& e = self.cast<const TensorEvent&>();
            const std::vector<py::ssize_t> shape(e.shape.begin(), e.shape.end());
            if (e.integer) return view(e.ints.data(), shape, self);
            return view(e.values.data(), shape, self);
          },
          "The tensor, shaped, a read-only view (no copy).");

  py::class_<Recorder, shared_ptr<Recorder>>(
      m, "Recorder",
      "Collects a session's telemetry events (Session.record(kinds)). Lists of events: "
      "kv_steps, summaries, passes, squeezes, h2o_scores, importance, attention, kept, tensors. "
      "Use as a context manager, or call close() to unsubscribe.")
      .def_property_readonly(
          "kinds", [](const Recorder& r) { return r.kinds; }, "The event mask subscribed to.")
      .def_property_readonly("kv_steps", [](Recorder& r) { return snapshot(r.mu(), r.kv_steps); })
      .def_property_readonly("summaries", [](Recorder& r) { return snapshot(r.mu(), r.summaries); })
      .def_property_readonly("passes", [](Recorder& r) { return snapshot(r.mu(), r.passes); })
      .def_property_readonly("squeezes", [](Recorder& r) { return snapshot(r.mu(), r.squeezes); })
      .def_property_readonly("h2o_scores",
                             [](Recorder& r) { return snapshot(r.mu(), r.h2o_scores); })
      .def_property_readonly("importance",
                             [](Recorder& r) { return snapshot(r.mu(), r.importance); })
      .def_property_readonly("attention", [](Recorder& r) { return snapshot(r.mu(), r.attention); })
      .def_property_readonly("kept", [](Recorder& r) { return snapshot(r.mu(), r.kept); })
      .def_property_readonly("tensors", [](Recorder& r) { return snapshot(r.mu(), r.tensors); })
      .def("clear", &Recorder::clear, "Forgets the events recorded so far.")
      .def("close", &Recorder::close, "Unsubscribes from the session (events stay readable).")
      .def_property_readonly("active", &Recorder::active, "Still subscribed.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Recorder& r, py::args) { r.close(); });
}

}  // namespace kvlab::python
