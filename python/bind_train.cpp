// kvlab.train: training a tiny model (session/train.hpp, as `kvlab train`), on a worker thread
// that Ctrl-C stops between steps; progress goes to an optional Python callback and to the
// summary's history.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "python/common.hpp"
#include "session/builtin_models.hpp"
#include "session/train.hpp"

namespace kvlab::python {
namespace {

struct TrainOutput : TrainSummary {
  std::vector<TrainProgress> history;  // every step, validation and checkpoint
};

const char* kind_name(TrainProgress::Kind k) {
  switch (k) {
    case TrainProgress::Kind::step:
      return "step";
    case TrainProgress::Kind::validation:
      return "validation";
    case TrainProgress::Kind::checkpoint:
      return "checkpoint";
  }
  return "?";
}

}  // namespace

void bind_train(py::module_& m) {
  py::class_<TrainProgress>(m, "TrainProgress", "One training step, validation or checkpoint.")
      .def_property_readonly(
          "kind", [](const TrainProgress& p) { return kind_name(p.kind); },
          "'step' | 'validation' | 'checkpoint'")
      .def_readonly("step", &TrainProgress::step)
      .def_readonly("total_steps", &TrainProgress::total_steps)
      .def_readonly("loss", &TrainProgress::loss)
      .def_readonly("lr", &TrainProgress::lr)
      .def_readonly("grad_norm", &TrainProgress::grad_norm)
      .def_readonly("tokens_per_second", &TrainProgress::tokens_per_second)
      .def_readonly("elapsed_seconds", &TrainProgress::elapsed_seconds)
      .def_readonly("eta_seconds", &TrainProgress::eta_seconds)
      .def_readonly("val_loss", &TrainProgress::val_loss, "The latest validation, -1 before.")
      .def_readonly("best_val_loss", &TrainProgress::best_val_loss)
      .def_readonly("checkpoint", &TrainProgress::checkpoint);
  py::class_<TrainInfo>(m, "TrainInfo", "A training run as set up.")
      .def_readonly("preset", &TrainInfo::preset)
      .def_readonly("plan", &TrainInfo::plan)
      .def_readonly("plan_map", &TrainInfo::plan_map)
      .def_readonly("precision", &TrainInfo::precision)
      .def_readonly("tokenizer", &TrainInfo::tokenizer)
      .def_readonly("corpus_source", &TrainInfo::corpus_source)
      .def_readonly("layers", &TrainInfo::layers)
      .def_readonly("kv_layers", &TrainInfo::kv_layers)
      .def_readonly("batch", &TrainInfo::batch)
      .def_readonly("seq_len", &TrainInfo::seq_len)
      .def_readonly("vocab", &TrainInfo::vocab)
      .def_readonly("heads", &TrainInfo::heads)
      .def_readonly("kv_heads", &TrainInfo::kv_heads)
      .def_readonly("head_dim", &TrainInfo::head_dim)
      .def_readonly("total_steps", &TrainInfo::total_steps)
      .def_readonly("start_step", &TrainInfo::start_step)
      .def_readonly("train_tokens", &TrainInfo::train_tokens)
      .def_readonly("val_tokens", &TrainInfo::val_tokens)
      .def_readonly("parameters", &TrainInfo::parameters)
      .def_readonly("kv_bytes_per_token", &TrainInfo::kv_bytes_per_token);
  py::class_<TrainOutput>(m, "TrainSummary", "What kvlab.train returns.")
      .def_readonly("info", &TrainOutput::info)
      .def_readonly("steps_done", &TrainOutput::steps_done)
      .def_readonly("stopped_early", &TrainOutput::stopped_early)
      .def_readonly("final_loss", &TrainOutput::final_loss)
      .def_readonly("best_val_loss", &TrainOutput::best_val_loss)
      .def_readonly("best_val_perplexity", &TrainOutput::best_val_perplexity)
      .def_readonly("best_val_step", &TrainOutput::best_val_step)
      .def_readonly("seconds", &TrainOutput::seconds)
      .def_readonly("tokens_per_second", &TrainOutput::tokens_per_second)
      .def_readonly("out", &TrainOutput::out, "The run's directory (best/ and last/ inside).")
      .def_readonly("history", &TrainOutput::history, "Every TrainProgress, in order.");

  m.def(
      "train",
      [](const std::string& out, const std::string& preset, const std::string& plan, int heads,
         int kv_heads, std::int64_t steps, std::int64_t tokens, double lr,
         std::optional<std::uint64_t> seed, int threads, std::optional<std::string> precision,
         const std::string& train_passes, std::optional<double> kv_loss, int val_every,
         int checkpoint_every, const std::string& text_file, std::optional<double> recall_fraction,
         const std::string& tokenizer, const std::string& resume, std::int64_t stop_at,
         py::object on_progress) {
        TrainSetup t;
        t.out = out;
        t.preset = preset;
        t.plan = plan;
        t.heads = heads;
        t.kv_heads = kv_heads;
        t.steps = steps;
        t.tokens = tokens;
        t.lr = lr;
        t.seed = seed;
        t.threads = threads;
        if (precision) t.precision = parse_precision(*precision);
        t.train_passes = train_passes;
        t.kv_loss = kv_loss;
        t.val_every = val_every;
        t.checkpoint_every = checkpoint_every;
        t.text_file = text_file;
        t.recall_fraction = recall_fraction;
        t.tokenizer = tokenizer;
        if (t.tokenizer.empty() && resume.empty()) {  // as `kvlab train`: the committed one
          const std::string committed = models_dir() + "/tokenizer.json";
          if (std::filesystem::exists(committed)) t.tokenizer = committed;
        }
        t.resume = resume;
        t.stop_at = stop_at;
        TrainOutput result;
        std::exception_ptr callback_error;
        const bool call = !on_progress.is_none();
        try {
          static_cast<TrainSummary&>(result) =
              run_interruptible([&](const std::atomic<bool>& stop) {
                return train(t, {}, [&](const TrainProgress& p) {
                  result.history.push_back(p);
                  if (call) {
                    py::gil_scoped_acquire acquire;
                    try {
                      on_progress(p);
                    } catch (py::error_already_set&) {
                      callback_error = std::current_exception();
                      throw Cancelled{};
                    }
                  }
                  if (stop.load()) throw Cancelled{};
                });
              });
        } catch (const Error&) {
          if (callback_error) std::rethrow_exception(callback_error);
          throw;
        }
        return result;
      },
      py::arg("out"), py::kw_only(), py::arg("preset") = "", py::arg("plan") = "",
      py::arg("heads") = 0, py::arg("kv_heads") = 0, py::arg("steps") = 0, py::arg("tokens") = 0,
      py::arg("lr") = 0.0, py::arg("seed") = py::none(), py::arg("threads") = 1,
      py::arg("precision") = py::none(), py::arg("train_passes") = "",
      py::arg("kv_loss") = py::none(), py::arg("val_every") = 0, py::arg("checkpoint_every") = 0,
      py::arg("text_file") = "", py::arg("recall_fraction") = py::none(), py::arg("tokenizer") = "",
      py::arg("resume") = "", py::arg("stop_at") = 0, py::arg("on_progress") = py::none(),
      "Trains (or resumes) a preset model under a KV plan, as `kvlab train`: AdamW on the "
      "fortunes (or text_file), validating every val_every steps, writing out/last and "
      "out/best checkpoints (load them with kvlab.Session(out + '/best')). on_progress(p) sees "
      "every TrainProgress (called with the GIL; raising stops the run). tokenizer '': the "
      "committed models/tokenizer.json for new runs. Ctrl-C stops between steps.");
}

}  // namespace kvlab::python
