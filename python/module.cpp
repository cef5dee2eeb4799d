// The `_kvlab` extension (re-exported by the pure-Python package kvlab/): the error class, the
// shipped models, and the bindings of each area (bind_*.cpp). docs/python.md is the guide.
#include <string>
#include <vector>

#include "python/common.hpp"
#include "session/builtin_models.hpp"

namespace kvlab::python {

EventMask parse_kinds(const std::vector<std::string>& names) {
  struct Named {
    const char* name;
    EventMask mask;
  };
  static const Named known[] = {
      {"kv_step", mask(EventKind::kv_step)},
      {"step_summary", mask(EventKind::step_summary)},
      {"prefill_pass", mask(EventKind::prefill_pass)},
      {"squeeze", mask(EventKind::squeeze)},
      {"h2o_scores", mask(EventKind::h2o_scores)},
      {"layer_importance", mask(EventKind::layer_importance)},
      {"attention", mask(EventKind::attention)},
      {"kept", mask(EventKind::kept)},
      {"tensors", mask(EventKind::tensors)},
      {"default", kDefaultEvents},
      {"all", kAllEvents},  // as in C++: every kind but tensors (ask for it by name)
  };
  EventMask m = 0;
  for (const std::string& n : names) {
    bool found = false;
    for (const Named& k : known) {
      if (n == k.name) m |= k.mask, found = true;
    }
    if (!found) {
      fail("kinds", n,
           "must be kv_step, step_summary, prefill_pass, squeeze, h2o_scores, "
           "layer_importance, attention, kept, tensors, default or all");
    }
  }
  return m ? m : kDefaultEvents;
}

}  // namespace kvlab::python

PYBIND11_MODULE(_kvlab, m) {
  namespace py = pybind11;
  using namespace kvlab;
  using namespace kvlab::python;
  m.doc() =
      "kvlab's engine: the Session the kvlab CLI uses, plans, the simulator and training "
      "(docs/python.md). Import the package `kvlab`, not this extension.";

  // kvlab::Error -> kvlab.Error, a ValueError: bad input (a plan, a flag's value, a file, token
  // ids) named by field and value, the same text the CLI prints after "kvlab: error: ".
  static PyObject* error = PyErr_NewExceptionWithDoc(
      "kvlab.Error",
      "Raised for every rejection by the engine: the message names the field (the CLI's flag), "
      "the value and what is allowed, exactly as `kvlab` prints it after 'kvlab: error: '. A "
      "subclass of ValueError.",
      PyExc_ValueError, nullptr);
  m.add_object("Error", py::handle(error));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error, e.what());
    }
  });

  py::class_<BuiltinModel>(m, "BuiltinModel", "A trained model kvlab ships (models/<name>/).")
      .def_readonly("name", &BuiltinModel::name, "Its name, e.g. 'tiny-standard'.")
      .def_readonly("path", &BuiltinModel::path, "Its checkpoint directory.");
  m.def("models", &builtin_models,
        "The shipped trained models (as `kvlab models`), sorted by name: BuiltinModel(name, "
        "path). Load one with kvlab.Session(name).");
  m.def("models_dir", &models_dir,
        "Where the shipped models are looked for: $KVLAB_MODELS, else the source tree's models/, "
        "else <binary>/../share/kvlab/models (the pip-installed package sets $KVLAB_MODELS to its "
        "own kvlab/models when unset).");
  m.def("resolve_model", &resolve_model, py::arg("model"),
        "The path a --model value names: a file or directory as given, else a built-in model's "
        "directory, else the value unchanged (a preset).");

  bind_plan(m);
  bind_telemetry(m);
  bind_session(m);
  bind_train(m);
}
