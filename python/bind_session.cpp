// kvlab.Session: the Session the CLI uses (session/session.hpp), with its results as Python
// objects and numpy arrays. Long calls run on a worker thread with the GIL released and stop on
// Ctrl-C (common.hpp, run_interruptible).
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "python/common.hpp"
#include "python/recorder.hpp"
#include "session/dump.hpp"

namespace kvlab::python {
namespace {

using BoxPtr = std::shared_ptr<SessionBox>;

// GenerateResult with its tokens decoded.
struct GenerateOutput : GenerateResult {
  std::string text;
};

py::str utf8(const std::string& bytes) {
  return py::reinterpret_steal<py::str>(
      PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "replace"));
}

// The Python Session object: a box shared with its recorders.
struct PySession {
  BoxPtr box = std::make_shared<SessionBox>();
  Session& get() const { return box->get(); }
  void close() {
    for (const auto& r : box->recorders) r->detach();
    box->recorders.clear();
    box->session.reset();
  }
};

// ---- arguments --------------------------------------------------------------------------------

// Token ids from a list, tuple, range or 1-D integer numpy array. Anything else (floats, strings
// inside, 2-D arrays, ids outside int32) is a kvlab.Error naming `field` and the value; the
// engine itself checks the ids against the vocabulary.
std::vector<int> token_ids(const py::handle& obj, const char* field) {
  std::vector<int> out;
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u') {
      fail(field, "a numpy array of dtype " + std::string(py::str(a.dtype())),
           "token ids must be integers (e.g. dtype int32 or int64)");
    }
    if (a.ndim() != 1) {
      fail(field, "a numpy array of " + std::to_string(a.ndim()) + " dimensions",
           "token ids must be a 1-D array");
    }
    auto as64 = py::array_t<std::int64_t, py::array::forcecast>::ensure(a);
    auto r = as64.unchecked<1>();
    for (py::ssize_t i = 0; i < r.shape(0); ++i) {
      if (r(i) < INT_MIN || r(i) > INT_MAX) {
        fail(field, std::to_string(r(i)) + " (at index " + std::to_string(i) + ")",
             "token ids must be in [0, vocab_size)");
      }
      out.push_back(static_cast<int>(r(i)));
    }
    return out;
  }
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) ||
      !py::isinstance<py::iterable>(obj)) {
    fail(field, std::string(py::repr(obj)), "must be a list of token ids (ints)");
  }
  std::size_t i = 0;
  for (py::handle item : obj) {
    const bool is_int = py::isinstance<py::int_>(item) && !py::isinstance<py::bool_>(item);
    const bool np_int = py::hasattr(item, "dtype") && py::hasattr(item, "__index__") &&
                        !py::isinstance<py::float_>(item);
    if (!is_int && !np_int) {
      fail(field, std::string(py::repr(item)) + " (at index " + std::to_string(i) + ")",
           "token ids must be ints");
    }
    const long long v = py::int_(py::reinterpret_borrow<py::object>(item)).cast<long long>();
    if (v < INT_MIN || v > INT_MAX) {
      fail(field, std::to_string(v) + " (at index " + std::to_string(i) + ")",
           "token ids must be in [0, vocab_size)");
    }
    out.push_back(static_cast<int>(v));
    ++i;
  }
  return out;
}

// A prompt: text (encoded with the session's tokenizer, BOS first) or token ids.
std::vector<int> prompt_tokens(const Session& s, const py::handle& prompt) {
  if (py::isinstance<py::str>(prompt)) return s.encode(prompt.cast<std::string>(), true);
  return token_ids(prompt, "prompt");
}

ref::PrefillSchedule schedule_of(int passes, double converge, int max_passes, bool tbt) {
  const int given = (passes != 0) + (converge != 0) + tbt;
  if (given > 1) {
    fail("passes/converge/token_by_token", "(several)", "choose at most one schedule");
  }
  ref::PrefillSchedule s;
  s.max_passes = max_passes;
  if (passes != 0) {
    s.mode = ref::PrefillMode::fixed;
    s.passes = passes;
  } else if (converge != 0) {
    s.mode = ref::PrefillMode::converge;
    s.eps = converge;
  } else if (tbt) {
    s.mode = ref::PrefillMode::token_by_token;
  }
  s.validate();
  return s;
}

const char* const kRunKeys[] = {
    "plan",       "policy",         "budget",  "positions", "squeeze",      "passes", "converge",
    "max_passes", "token_by_token", "threads", "context",   "force_nodiag", "dtype",  "backend"};

// `base` with the run options among `kw` changed (the CLI's flag names, '-' as '_').
RunOptions apply_run(RunOptions r, const py::dict& kw) {
  for (auto item : kw) {
    const std::string key = py::str(item.first);
    bool known = false;
    for (const char* k : kRunKeys) known |= key == k;
    if (!known) {
      fail(key, std::string(py::repr(item.second)),
           "is not a run option: plan, policy, budget, positions, squeeze, passes, converge, "
           "max_passes, token_by_token, threads, context, force_nodiag, dtype");
    }
  }
  const auto str = [&](const char* k, std::string& dst) {
    if (kw.contains(k)) {
      py::object v = kw[k];
      if (v.is_none()) {
        dst.clear();
      } else if (py::isinstance<py::str>(v)) {
        dst = v.cast<std::string>();
      } else if (py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)) {
        dst = std::string(py::str(v));  // budget=128 (tokens); a fraction is "25%"
      } else {
        fail(k, std::string(py::repr(v)), "must be a string");
      }
    }
  };
  const auto num = [&](const char* k, auto& dst) {
    if (!kw.contains(k)) return;
    py::object v = kw[k];
    using T = std::remove_reference_t<decltype(dst)>;
    try {
      dst = v.cast<T>();
    } catch (const py::cast_error&) {
      fail(k, std::string(py::repr(v)), "must be a number");
    }
  };
  str("plan", r.plan);
  str("policy", r.policy);
  str("budget", r.budget);
  str("positions", r.positions);
  str("dtype", r.kv_dtype);  // K/V storage dtype: None = the precision
  str("backend", r.backend);
  if (r.policy.empty()) r.policy = "full";
  if (r.positions.empty()) r.positions = "absolute";
  if (r.backend.empty()) r.backend = "cpu";
  if (kw.contains("squeeze")) {
    std::string sq;
    str("squeeze", sq);
    r.squeeze = parse_squeeze(sq);
  }
  if (kw.contains("passes") || kw.contains("converge") || kw.contains("max_passes") ||
      kw.contains("token_by_token")) {
    int passes = 0, max_passes = 64;
    double converge = 0;
    bool tbt = false;
    num("passes", passes);
    num("converge", converge);
    num("max_passes", max_passes);
    num("token_by_token", tbt);
    r.schedule = schedule_of(passes, converge, max_passes, tbt);
  }
  num("threads", r.threads);
  num("context", r.context);
  num("force_nodiag", r.force_nodiag);
  return r;
}

py::dict run_dict(const RunOptions& r) {
  py::dict d;
  d["plan"] = r.plan;
  d["policy"] = r.policy;
  d["budget"] = r.budget;
  d["positions"] = r.positions;
  d["squeeze"] =
      r.squeeze.enabled ? py::cast(std::vector<double>{r.squeeze.f0, r.squeeze.f3}) : py::none();
  const char* modes[] = {"automatic", "fixed", "converge", "token_by_token"};
  d["schedule"] = modes[static_cast<int>(r.schedule.mode)];
  d["passes"] = r.schedule.passes;
  d["converge"] = r.schedule.eps;
  d["max_passes"] = r.schedule.max_passes;
  d["threads"] = r.threads;
  d["context"] = r.context;
  d["force_nodiag"] = r.force_nodiag;
  d["dtype"] = r.kv_dtype.empty() ? py::none() : py::cast(r.kv_dtype);
  d["backend"] = r.backend;
  return d;
}

PySession make_session(SessionOptions o) {
  PySession s;
  Session loaded = run_interruptible([&](const std::atomic<bool>&) { return Session::load(o); });
  s.box->session.emplace(std::move(loaded));
  return s;
}

// Runs fn(session) on the worker with a StopObserver subscribed; on Ctrl-C the session's
// sequence is reset (the interrupted step left it mid-way).
template <typename Fn>
auto run_on(PySession& ps, Fn&& fn) {
  Session& s = ps.get();
  return run_interruptible(
      [&](const std::atomic<bool>& stop) {
        StopObserver guard(stop);
        s.subscribe(&guard, mask(EventKind::step_summary) | mask(EventKind::prefill_pass));
        struct Unsub {
          Session& s;
          Observer* o;
          ~Unsub() { s.unsubscribe(o); }
        } unsub{s, &guard};
        return fn(s);
      },
      [&] { s.reset(); });
}

}  // namespace

void bind_session(py::module_& m) {
  py::class_<GenerateOutput>(m, "GenerateResult", "What Session.generate returns.")
      .def_readonly("tokens", &GenerateOutput::tokens, "The new tokens (no EOS).")
      .def_readonly("prompt_tokens", &GenerateOutput::prompt_tokens)
      .def_readonly("context_full", &GenerateOutput::context_full,
                    "Stopped before max_new tokens: the context was full.")
      .def_readonly("prefill_seconds", &GenerateOutput::prefill_seconds)
      .def_readonly("decode_seconds", &GenerateOutput::decode_seconds)
      .def_property_readonly("tokens_per_second", &GenerateOutput::tokens_per_second)
      .def_property_readonly(
          "text", [](const GenerateOutput& r) { return utf8(r.text); },
          "The new tokens decoded (empty when the model has no tokenizer).");
  py::class_<PplResult>(m, "PplResult", "Perplexity over non-overlapping windows.")
      .def_readonly("nll", &PplResult::nll, "Summed over predicted tokens, nats.")
      .def_readonly("predicted", &PplResult::predicted)
      .def_readonly("window", &PplResult::window)
      .def_property_readonly("mean_nll", &PplResult::mean_nll)
      .def_property_readonly("perplexity", &PplResult::perplexity)
      .def_property_readonly("bits_per_token", &PplResult::bits_per_token);
  py::class_<EvalExample>(m, "EvalExample",
                          "One example as the model saw it (eval show=N): the prompt up to "
                          "the first scored token, the expected and the greedy answer tokens.")
      .def_readonly("prompt", &EvalExample::prompt)
      .def_readonly("expected", &EvalExample::expected)
      .def_readonly("produced", &EvalExample::produced)
      .def_readonly("correct", &EvalExample::correct);
  py::class_<EvalResult>(m, "EvalResult", "A task run (as `kvlab eval`).")
      .def_readonly("correct", &EvalResult::correct)
      .def_readonly("scored", &EvalResult::scored)
      .def_property_readonly("accuracy", &EvalResult::accuracy)
      .def_readonly("nll", &EvalResult::nll, "Summed over scored tokens.")
      .def_property_readonly("perplexity", &EvalResult::perplexity)
      .def_readonly("kv_bytes_held", &EvalResult::kv_bytes_held,
                    "Mean over examples when the queries begin.")
      .def_readonly("kv_bytes_full", &EvalResult::kv_bytes_full,
                    "The same context with nothing evicted.")
      .def_readonly("shown", &EvalResult::shown);
  py::class_<SqueezeReport>(m, "SqueezeReport",
                            "SqueezeAttention's analysis of one prompt (as `kvlab squeeze`). "
                            "Per-bank arrays index the evicting banks; per-layer `slot` maps a "
                            "layer to that index (-1: its bank does not evict).")
      .def_readonly("map", &SqueezeReport::map)
      .def_readonly("prompt_tokens", &SqueezeReport::prompt_tokens)
      .def_property_readonly(
          "layer_importance",
          [](py::object self) {
            return view(self.cast<const SqueezeReport&>().result.layer_importance, self);
          },
          "s_l per layer (higher = less important).")
      .def_property_readonly("bank_importance",
                             [](py::object self) {
                               return view(self.cast<const SqueezeReport&>().result.bank_importance,
                                           self);
                             })
      .def_property_readonly(
          "cluster",
          [](py::object self) {
            return view(self.cast<const SqueezeReport&>().result.cluster, self);
          },
          "Per evicting bank: 1 (most important) .. 3.")
      .def_property_readonly("fraction",
                             [](py::object self) {
                               return view(self.cast<const SqueezeReport&>().result.fraction, self);
                             })
      .def_property_readonly(
          "budget",
          [](py::object self) {
            return view(self.cast<const SqueezeReport&>().result.budget, self);
          },
          "Per evicting bank, tokens.")
      .def_property_readonly("a", [](const SqueezeReport& r) { return r.result.a; })
      .def_property_readonly("notes", [](const SqueezeReport& r) { return r.result.notes; })
      .def_readonly("bank", &SqueezeReport::bank, "Per layer: the KV layer whose bank it reads.")
      .def_readonly("slot", &SqueezeReport::slot)
      .def_readonly("evicting_banks", &SqueezeReport::evicting_banks)
      .def_readonly("total_budget", &SqueezeReport::total_budget)
      .def_readonly("uniform_total", &SqueezeReport::uniform_total)
      .def_readonly("kv_bytes_held", &SqueezeReport::kv_bytes_held);
  py::class_<TraceReport>(m, "TraceReport",
                          "LCKV's iterative prefill of one prompt, pass by pass (as `kvlab "
                          "trace-prefill`). kvlab.columns(report.passes) gives numpy columns.")
      .def_readonly("map", &TraceReport::map)
      .def_readonly("tokens", &TraceReport::tokens)
      .def_property_readonly("blocks",
                             [](const TraceReport& r) {
                               std::vector<std::pair<int, int>> b;
                               for (auto c : r.blocks) b.emplace_back(c.first, c.last);
                               return b;
                             })
      .def_readonly("pass_limit", &TraceReport::pass_limit)
      .def_readonly("passes_run", &TraceReport::passes_run)
      .def_property_readonly(
          "passes",
          [](const TraceReport& r) {
            py::list l;
            for (const auto& e : r.passes) l.append(std::make_shared<PrefillPassEvent>(e));
            return l;
          },
          "One PrefillPassEvent per pass and upward target.")
      .def_readonly("logits_rel_error", &TraceReport::logits_rel_error,
                    "Against token by token when exact=True; -1: not computed.");
  py::class_<BankKv>(m, "BankKv",
                     "What one bank holds now: k, v (cells, kv_heads, head_dim) and "
                     "positions (kv_heads, cells), numpy views.")
      .def_readonly("kv_layer", &BankKv::kv_layer)
      .def_readonly("cells", &BankKv::cells)
      .def_readonly("kv_heads", &BankKv::kv_heads)
      .def_readonly("head_dim", &BankKv::head_dim)
      .def_property_readonly("k",
                             [](py::object self) {
                               const auto& b = self.cast<const BankKv&>();
                               return view(b.k.data(), {b.cells, b.kv_heads, b.head_dim}, self);
                             })
      .def_property_readonly("v",
                             [](py::object self) {
                               const auto& b = self.cast<const BankKv&>();
                               return view(b.v.data(), {b.cells, b.kv_heads, b.head_dim}, self);
                             })
      .def_property_readonly("positions", [](py::object self) {
        const auto& b = self.cast<const BankKv&>();
        return view(b.positions.data(), {b.kv_heads, b.cells}, self);
      });
  py::class_<ref::train::LossReport>(m, "LossReport", "A loss and its parts.")
      .def_readonly("loss", &ref::train::LossReport::loss)
      .def_readonly("kv_loss", &ref::train::LossReport::kv_loss)
      .def_readonly("kv_loss_weight", &ref::train::LossReport::kv_loss_weight)
      .def_property_readonly("total", &ref::train::LossReport::total);
  py::class_<GradResult>(m, "GradResult", "Float64 gradients of one sequence (as `kvlab grad`).")
      .def_readonly("loss", &GradResult::loss)
      .def_readonly("iterative", &GradResult::iterative)
      .def_readonly("plan", &GradResult::plan)
      .def_readonly("predictions", &GradResult::predictions)
      .def_property_readonly(
          "grads",
          [](py::object self) {
            const auto& g = self.cast<const GradResult&>();
            py::dict d;
            for (std::size_t i = 0; i < g.specs.size(); ++i) {
              std::vector<py::ssize_t> shape(g.specs[i].shape.begin(), g.specs[i].shape.end());
              d[py::str(g.specs[i].name)] = view(g.grads[i].data(), shape, self);
            }
            return d;
          },
          "{Hugging Face tensor name: numpy gradient}.");

  py::class_<PySession>(
      m, "Session",
      "A model and how it runs: the same Session the `kvlab` CLI uses (session/session.hpp).\n\n"
      "Session(model, *, tokenizer='', precision='f32', random=False, seed=1, **run)\n"
      "  model: a built-in model name ('tiny-standard', see kvlab.models()), a kvlab or Hugging "
      "Face checkpoint directory or a llama2.c .bin; with random=True a preset ('stories15m') "
      "or a config.json: random weights (tests only).\n"
      "  run options (the CLI's flags; also Session.configure): plan, policy ('full', "
      "'window:W', 'streaming:S', 'h2o:R'), budget (tokens: 128, or a percentage of the prompt: "
      "'25%'), positions "
      "('absolute'|'cache'), squeeze ('0.4,0.1'), passes, converge, max_passes, "
      "token_by_token, threads, context, force_nodiag, dtype (the K/V storage dtype: None = "
      "the precision; 'f16' or 'bf16' rounds every K and V value as it is written).\n\n"
      "A prompt is a str (encoded, BOS first) or a list / 1-D integer array of token ids. "
      "Long calls release the GIL and stop on Ctrl-C (KeyboardInterrupt; the sequence is "
      "reset). Use as a context manager or call close(); a closed session raises kvlab.Error "
      "naming 'session'. Not thread-safe: one call at a time.")
      .def(py::init([](const std::string& model, const std::string& tokenizer,
                       const std::string& precision, bool random, std::uint64_t seed,
                       py::kwargs run) {
             SessionOptions o;
             o.model = model;
             o.tokenizer = tokenizer;
             o.precision = parse_precision(precision);
             o.allow_random = random;
             o.seed = seed;
             o.run = apply_run(RunOptions{}, run);
             return make_session(std::move(o));
           }),
           py::arg("model"), py::kw_only(), py::arg("tokenizer") = "", py::arg("precision") = "f32",
           py::arg("random") = false, py::arg("seed") = 1)
      .def(
          "close", [](PySession& s) { s.close(); },
          "Frees the model; later calls raise kvlab.Error naming 'session'.")
      .def_property_readonly("closed",
                             [](const PySession& s) { return !s.box->session.has_value(); })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySession& s, py::args) { s.close(); })
      .def(
          "configure",
          [](PySession& s, py::kwargs run) {
            Session& se = s.get();
            se.configure(apply_run(se.run_options(), run));
          },
          "Runs the same weights under other run options (only those given change); the "
          "sequence starts over. configure(plan='cla:2', policy='window:32').")
      .def_property_readonly(
          "run_options", [](const PySession& s) { return run_dict(s.get().run_options()); },
          "The run options as a dict.")
      // ---- text
      .def(
          "encode",
          [](const PySession& s, const std::string& text, bool bos) {
            return s.get().encode(text, bos);
          },
          py::arg("text"), py::arg("bos") = true, "Token ids of `text` (BOS first when bos).")
      .def(
          "decode",
          [](const PySession& s, py::object ids) {
            return utf8(s.get().decode(token_ids(ids, "ids")));
          },
          py::arg("ids"), "The text the tokens stand for (invalid UTF-8 replaced).")
      .def(
          "token_text", [](const PySession& s, int id) { return utf8(s.get().token_text(id)); },
          py::arg("id"), "The text of one token ('<id>' past the tokenizer's vocabulary).")
      .def(
          "read_tokens",
          [](const PySession& s, const std::string& path) {
            return s.get().tokens_of(Prompt{"", "", path});
          },
          py::arg("path"), "A text file's bytes encoded (BOS first), as --text-file.")
      // ---- running
      .def(
          "prefill",
          [](PySession& s, py::object prompt, bool all_logits) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            const int V = s.get().config().vocab_size;
            std::vector<double> logits =
                run_on(s, [&](Session& se) { return se.prefill(toks, all_logits); });
            if (all_logits) {
              const auto T = static_cast<py::ssize_t>(logits.size() / static_cast<size_t>(V));
              return to_numpy(std::move(logits), {T, V});
            }
            return to_numpy(std::move(logits));
          },
          py::arg("prompt"), py::arg("all_logits") = false,
          "Starts a sequence with the prompt. Returns the last token's logits (V,) float64, or "
          "(T, V) with all_logits=True (an f32 session's logits are its floats, exactly).")
      .def(
          "step",
          [](PySession& s, int token) {
            return to_numpy(run_on(s, [&](Session& se) { return se.step(token); }));
          },
          py::arg("token"), "One decode step: appends `token`, returns its logits (V,).")
      .def(
          "reset", [](PySession& s) { s.get().reset(); }, "An empty sequence.")
      .def(
          "generate",
          [](PySession& s, py::object prompt, int max_new, double temperature, double top_p,
             std::int64_t seed) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            GenerateOptions o;
            o.max_new = max_new;
            o.temperature = temperature;
            o.top_p = top_p;
            o.seed = seed;
            o.validate();
            GenerateOutput r;
            static_cast<GenerateResult&>(r) =
                run_on(s, [&](Session& se) { return se.generate(toks, o); });
            try {
              r.text = s.get().decode(r.tokens);
            } catch (const Error&) {  // a model without a tokenizer: tokens only
            }
            return r;
          },
          py::arg("prompt"), py::arg("max_new") = 64, py::arg("temperature") = 0.0,
          py::arg("top_p") = 1.0, py::arg("seed") = 0,
          "Prefills the prompt, then samples up to max_new tokens (greedy at temperature 0), "
          "stopping at EOS or the context. Returns GenerateResult (tokens, text, timings).")
      .def(
          "ppl",
          [](PySession& s, py::object prompt, int window) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            return run_on(s, [&](Session& se) { return se.ppl(toks, window); });
          },
          py::arg("prompt"), py::arg("window") = 0,
          "Perplexity in non-overlapping windows of `window` tokens (0: min(256, context)).")
      .def(
          "eval",
          [](PySession& s, const std::string& task, int n, int length, int pairs, int queries,
             std::uint64_t seed, int show, const std::string& text_file) {
            EvalSetup e;
            e.task = task;
            e.n = n;
            e.length = length;
            e.pairs = pairs;
            e.queries = queries;
            e.seed = seed;
            e.show = show;
            e.text_file = text_file;
            return run_on(s, [&](Session& se) { return se.eval(e); });
          },
          py::arg("task") = "passkey", py::arg("n") = 4, py::arg("length") = 0,
          py::arg("pairs") = 16, py::arg("queries") = 8, py::arg("seed") = 0, py::arg("show") = 0,
          py::arg("text_file") = "",
          "A task (passkey | mqar | ppl) under the session's plan, policy, budget and squeeze, "
          "as `kvlab eval`.")
      .def(
          "squeeze",
          [](PySession& s, py::object prompt) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            return run_on(s, [&](Session& se) { return se.squeeze(toks); });
          },
          py::arg("prompt"),
          "SqueezeAttention's analysis of a prompt (needs squeeze='f0,f3' and an evicting "
          "policy), as `kvlab squeeze`.")
      .def(
          "trace_prefill",
          [](PySession& s, py::object prompt, bool exact) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            return run_on(s, [&](Session& se) { return se.trace_prefill(toks, exact); });
          },
          py::arg("prompt"), py::arg("exact") = false,
          "LCKV's iterative prefill, pass by pass (as `kvlab trace-prefill`); exact=True also "
          "encodes token by token and reports each pass's error. The sequence is unchanged.")
      .def(
          "grad",
          [](PySession& s, py::object prompt, const std::string& train_passes, double kv_loss) {
            const std::vector<int> toks = prompt_tokens(s.get(), prompt);
            const auto passes = parse_train_passes(train_passes, kv_loss);
            return run_on(s, [&](Session& se) { return se.grad(toks, passes); });
          },
          py::arg("prompt"), py::arg("train_passes") = "7,2", py::arg("kv_loss") = 0.0,
          "Float64 gradients of the mean next-token loss (as `kvlab grad`).")
      .def(
          "dump",
          [](PySession& s, py::object prompt, int decode, const std::string& what,
             const std::string& layers) {
            DumpRequest r;
            r.tokens = prompt_tokens(s.get(), prompt);
            r.decode = decode;
            r.what = parse_dump_what(what);
            r.layers = parse_dump_layers(layers, s.get().config().num_hidden_layers);
            Dump d = run_on(s, [&](Session& se) { return se.dump(r); });
            // name -> numpy array (float64, or int64 for positions and ids), in computation
            // order; the arrays own their buffers (moved, not copied).
            py::dict tensors;
            for (NamedTensor& t : d.tensors) {
              std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
              if (t.integer) {
                tensors[py::str(t.name)] = to_numpy(std::move(t.ints), shape);
              } else {
                tensors[py::str(t.name)] = to_numpy(std::move(t.values), shape);
              }
            }
            py::dict meta;
            for (const auto& [k, v] : d.metadata) meta[py::str(k)] = v;
            return py::make_tuple(tensors, meta);
          },
          py::arg("prompt"), py::arg("decode") = 0, py::arg("what") = "", py::arg("layers") = "",
          "Every intermediate of a prefill of `prompt` (and `decode` greedy steps after it) under "
          "the session's plan, policy and squeeze, as `kvlab dump`: (tensors, metadata), tensors "
          "a dict name -> numpy array named as docs/crosscheck.md says (e.g. "
          "'prefill.layer1.attn.probs'), metadata the file's __metadata__. `what` and `layers` "
          "select, as --what and --layers ('norm,q,probs', '0,3'). The sequence starts over.")
      .def(
          "bank_kv", [](const PySession& s, int kv_layer) { return s.get().bank_kv(kv_layer); },
          py::arg("kv_layer"), "What the bank of KV layer `kv_layer` holds now (BankKv).")
      // ---- telemetry
      .def(
          "record",
          [](PySession& s, py::args kinds) {
            std::vector<std::string> names;
            for (auto k : kinds) {
              if (!py::isinstance<py::str>(k)) {
                fail("kinds", std::string(py::repr(k)), "must be event kind names (str)");
              }
              names.push_back(k.cast<std::string>());
            }
            Session& se = s.get();
            auto rec = std::make_shared<Recorder>(s.box, parse_kinds(names));
            se.subscribe(rec.get(), rec->kinds);
            s.box->recorders.push_back(rec);
            return rec;
          },
          "Subscribes a Recorder to event kinds ('kv_step', 'step_summary', 'prefill_pass', "
          "'squeeze', 'h2o_scores', 'layer_importance', 'attention', 'kept', 'tensors', "
          "'default', 'all'; none: default). 'all' is every kind but 'tensors' (every "
          "intermediate tensor: ask for it by name), as in C++. Costly kinds (attention, "
          "h2o_scores, layer_importance, kept, tensors) are computed only while subscribed. "
          "`with s.record('attention') as rec: s.prefill(...)`.")
      // ---- state
      .def_property_readonly("config", [](const PySession& s) { return s.get().config(); })
      .def_property_readonly(
          "plan", [](const PySession& s) { return s.get().plan(); }, "The plan it runs (Plan).")
      .def_property_readonly("plan_spec", [](const PySession& s) { return s.get().plan_spec(); })
      .def_property_readonly("precision",
                             [](const PySession& s) { return precision_name(s.get().precision()); })
      .def_property_readonly("random_weights",
                             [](const PySession& s) { return s.get().random_weights(); })
      .def_property_readonly("model_format",
                             [](const PySession& s) { return s.get().model_format(); })
      .def_property_readonly("tokenizer_name",
                             [](const PySession& s) { return s.get().tokenizer().name(); })
      .def_property_readonly("vocab_size",
                             [](const PySession& s) { return s.get().config().vocab_size; })
      .def_property_readonly("weight_bytes",
                             [](const PySession& s) { return s.get().weight_bytes(); })
      .def_property_readonly(
          "position", [](const PySession& s) { return s.get().position(); },
          "Tokens in the current sequence.")
      .def_property_readonly("context", [](const PySession& s) { return s.get().context(); })
      .def_property_readonly("num_banks", [](const PySession& s) { return s.get().num_banks(); })
      .def_property_readonly("kv_bytes_held",
                             [](const PySession& s) { return s.get().kv_bytes_held(); })
      .def_property_readonly("kv_bytes_allocated",
                             [](const PySession& s) { return s.get().kv_bytes_allocated(); })
      .def_property_readonly(
          "kv_dtype", [](const PySession& s) { return dtype_name(s.get().kv_dtype()); },
          "The dtype K/V are stored and counted at: the dtype= run option, else the precision.")
      .def_property_readonly("h2o_score_bytes",
                             [](const PySession& s) { return s.get().h2o_score_bytes(); })
      .def_property_readonly(
          "passes_run", [](const PySession& s) { return s.get().passes_run(); },
          "Per cyclic block, by the last prefill.")
      .def_property_readonly(
          "layer_importance",
          [](const PySession& s) { return to_numpy(s.get().layer_importance()); },
          "s_l of the last prompt (measured with squeeze or while recording layer_importance).")
      .def("__repr__", [](const PySession& s) -> std::string {
        if (!s.box->session) return "kvlab.Session(closed)";
        const Session& se = *s.box->session;
        return "kvlab.Session(" + se.model_format() + ", plan " + se.plan_spec() + " = " +
               se.plan().to_string() + ", " + precision_name(se.precision()) + ", position " +
               std::to_string(se.position()) + ")";
      });
}

}  // namespace kvlab::python
