// Plans, model shapes, byte accounting and the simulator: what `kvlab plan` and `kvlab simulate`
// compute, as Python objects.
#include <filesystem>
#include <string>
#include <vector>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/formats/config_json.hpp"
#include "core/plan.hpp"
#include "core/plan_diagram.hpp"
#include "core/simulator.hpp"
#include "python/common.hpp"
#include "session/builtin_models.hpp"
#include "session/sim_policy.hpp"

namespace kvlab::python {
namespace {

// As `kvlab plan --model`: a directory holding config.json, a config.json file, a built-in
// model's name, or a preset.
ModelConfig model_config(const std::string& model) {
  namespace fs = std::filesystem;
  const std::string path = resolve_model(model);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path cfg = fs::path(path) / "config.json";
    if (!fs::exists(cfg, ec)) fail("model", path, "directory has no config.json");
    return load_config(cfg.string());
  }
  if (fs::is_regular_file(path, ec)) return load_config(path);
  return find_model_preset(model).config;
}

std::vector<std::pair<int, int>> block_pairs(const std::vector<CyclicBlock>& blocks) {
  std::vector<std::pair<int, int>> out;
  for (const CyclicBlock& b : blocks) out.emplace_back(b.first, b.last);
  return out;
}

std::vector<std::pair<int, int>> edge_pairs(const std::vector<PlanDiagramEdge>& edges) {
  std::vector<std::pair<int, int>> out;
  for (const PlanDiagramEdge& e : edges) out.emplace_back(e.reader, e.kv_layer);
  return out;
}

void check_layer(const KvPlan& p, int layer, const char* field) {
  if (layer < 0 || layer >= p.layers()) {
    fail(field, std::to_string(layer), "must be in [0, " + std::to_string(p.layers()) + ")");
  }
}

}  // namespace

void bind_plan(py::module_& m) {
  py::class_<ModelConfig>(m, "ModelConfig",
                          "A model's shape, with Hugging Face Llama field names (config.json).")
      .def_readonly("hidden_size", &ModelConfig::hidden_size, "C")
      .def_readonly("num_hidden_layers", &ModelConfig::num_hidden_layers, "L")
      .def_readonly("num_attention_heads", &ModelConfig::num_attention_heads, "H")
      .def_readonly("num_key_value_heads", &ModelConfig::num_key_value_heads, "H_kv")
      .def_readonly("head_dim", &ModelConfig::head_dim, "D (H * D == C)")
      .def_readonly("intermediate_size", &ModelConfig::intermediate_size, "F (SwiGLU width)")
      .def_readonly("vocab_size", &ModelConfig::vocab_size, "V")
      .def_readonly("rope_theta", &ModelConfig::rope_theta)
      .def_readonly("rms_norm_eps", &ModelConfig::rms_norm_eps)
      .def_readonly("max_position_embeddings", &ModelConfig::max_position_embeddings)
      .def_readonly("tie_word_embeddings", &ModelConfig::tie_word_embeddings)
      .def_readonly("sliding_window", &ModelConfig::sliding_window)
      .def("parameter_count", &ModelConfig::parameter_count, py::arg("kv_layers") = -1,
           "Parameters with `kv_layers` layers holding W_K, W_V (-1: every layer).");
  m.def(
      "model_presets",
      [] {
        std::vector<std::string> names;
        for (const ModelPreset& p : model_presets()) names.push_back(p.name);
        return names;
      },
      "Names of the model shape presets (tinyllama-1.1b, llama-2-7b, ..., stories15m).");
  m.def("model_config", &model_config, py::arg("model"),
        "A model's shape: a preset name ('llama-2-7b'), a built-in model ('tiny-standard'), a "
        "checkpoint directory or a config.json file (as `kvlab plan --model`).");
  m.def("plan_generators", &plan_generator_names,
        "Names of the plan generators (standard, cla, mlkv, lckv, ...).");

  py::class_<PlanDiagramNode>(m, "PlanDiagramNode", "One layer of a plan's diagram.")
      .def_readonly("layer", &PlanDiagramNode::layer)
      .def_readonly("reads", &PlanDiagramNode::reads, "The KV layer whose K/V it reads.")
      .def_readonly("kv_layer", &PlanDiagramNode::kv_layer, "Reads its own K/V.")
      .def_readonly("upward", &PlanDiagramNode::upward, "Reads a layer above.")
      .def_readonly("sliding", &PlanDiagramNode::sliding, "Attends within the sliding window.")
      .def_property_readonly(
          "cyclic_block",
          [](const PlanDiagramNode& n) -> py::object {
            return n.cyclic_block >= 0 ? py::object(py::int_(n.cyclic_block)) : py::none();
          },
          "Index into the cyclic blocks, or None.");
  py::class_<PlanDiagram>(m, "PlanDiagram",
                          "A plan's picture as data (what `kvlab plan` draws and the visualizer "
                          "shows): a node per layer, read and upward edges, cyclic blocks.")
      .def_readonly("layers", &PlanDiagram::layers)
      .def_readonly("nodes", &PlanDiagram::nodes, "nodes[l] is layer l (bottom layer first).")
      .def_property_readonly(
          "read_edges", [](const PlanDiagram& d) { return edge_pairs(d.read_edges); },
          "(reader, kv_layer) for every layer that reads another layer's K/V.")
      .def_property_readonly(
          "upward_edges", [](const PlanDiagram& d) { return edge_pairs(d.upward_edges); },
          "The read edges to a layer above: (reader, kv_layer).")
      .def_property_readonly(
          "cyclic_blocks", [](const PlanDiagram& d) { return block_pairs(d.cyclic_blocks); },
          "(first, last) layer ranges encoded iteratively.")
      .def_readonly("kv_layers", &PlanDiagram::kv_layers);

  py::class_<KvPlan>(m, "Plan",
                     "A KV plan: which layer reads which layer's K/V (techniques.md §2).\n\n"
                     "Plan(spec, layers): a generator ('standard', 'cla:2', 'lckv:2', "
                     "'sandwich-middle:4', 'yoco', ...) or a text form ('0_0_2_2', '0s_1s_2_2'; "
                     "s = sliding) for `layers` layers. Raises kvlab.Error for a bad spec.")
      .def(py::init(&KvPlan::parse), py::arg("spec"), py::arg("layers"))
      .def_static(
          "from_map",
          [](std::vector<int> kv, std::optional<std::vector<bool>> sliding) {
            std::vector<bool> s = sliding ? *sliding : std::vector<bool>(kv.size(), false);
            if (s.size() != kv.size()) {
              fail("sliding", std::to_string(s.size()) + " entries",
                   "must have one entry per layer (" + std::to_string(kv.size()) + ")");
            }
            return KvPlan(std::move(kv), std::move(s));
          },
          py::arg("kv"), py::arg("sliding") = py::none(),
          "A plan from its map: kv[l] = the layer whose K/V layer l reads.")
      .def_property_readonly("layers", &KvPlan::layers)
      .def_property_readonly("map", &KvPlan::map, "kv[l] for every layer l.")
      .def_property_readonly("text", &KvPlan::to_string, "The text form, e.g. '0_0_2_2'.")
      .def_property_readonly("kv_layers", &KvPlan::kv_layers, "The KV layers, ascending.")
      .def_property_readonly("num_kv_layers", &KvPlan::num_kv_layers)
      .def_property_readonly(
          "sliding",
          [](const KvPlan& p) {
            std::vector<bool> s;
            for (int l = 0; l < p.layers(); ++l) s.push_back(p.sliding(l));
            return s;
          },
          "Per layer: attends within the sliding window.")
      .def_property_readonly(
          "sliding_layers",
          [](const KvPlan& p) {
            std::vector<int> s;
            for (int l = 0; l < p.layers(); ++l) {
              if (p.sliding(l)) s.push_back(l);
            }
            return s;
          },
          "The sliding layers, ascending.")
      .def_property_readonly("upward_edges", &KvPlan::upward_edges,
                             "(reader, target) pairs where a layer reads a layer above.")
      .def_property_readonly(
          "cyclic_blocks", [](const KvPlan& p) { return block_pairs(p.cyclic_blocks()); },
          "(first, last) layer ranges that LCKV encodes iteratively.")
      .def_property_readonly("has_upward", &KvPlan::has_upward)
      .def_property_readonly(
          "readers_map",
          [](const KvPlan& p) {
            py::dict d;
            for (int t : p.kv_layers()) d[py::int_(t)] = p.readers(t);
            return d;
          },
          "{kv_layer: [layers reading it]} (each list includes the KV layer itself).")
      .def(
          "kv_of",
          [](const KvPlan& p, int l) {
            check_layer(p, l, "layer");
            return p.kv_of(l);
          },
          py::arg("layer"), "The KV layer whose K/V `layer` reads.")
      .def(
          "readers",
          [](const KvPlan& p, int t) {
            check_layer(p, t, "kv_layer");
            if (!p.is_kv_layer(t)) fail("kv_layer", std::to_string(t), "is not a KV layer");
            return p.readers(t);
          },
          py::arg("kv_layer"), "The layers reading KV layer `kv_layer` (itself included).")
      .def(
          "is_kv_layer",
          [](const KvPlan& p, int l) {
            check_layer(p, l, "layer");
            return p.is_kv_layer(l);
          },
          py::arg("layer"))
      .def(
          "is_upward",
          [](const KvPlan& p, int l) {
            check_layer(p, l, "layer");
            return p.is_upward(l);
          },
          py::arg("layer"))
      .def(
          "cyclic_block_of",
          [](const KvPlan& p, int l) {
            check_layer(p, l, "layer");
            return p.cyclic_block_of(l);
          },
          py::arg("layer"), "Index into cyclic_blocks, or -1.")
      .def(
          "bank_is_sliding",
          [](const KvPlan& p, int t) {
            check_layer(p, t, "kv_layer");
            return p.bank_is_sliding(t);
          },
          py::arg("kv_layer"), "Every reader of the bank is sliding: it keeps only the window.")
      .def("diagram", &plan_diagram, "The plan's picture as data (PlanDiagram).")
      .def(
          "bytes_per_token",
          [](const KvPlan& p, int kv_heads, int head_dim, const std::string& dtype) {
            if (kv_heads < 1) fail("kv_heads", std::to_string(kv_heads), "must be >= 1");
            if (head_dim < 1) fail("head_dim", std::to_string(head_dim), "must be >= 1");
            return kv_bytes_per_token(p, kv_heads, head_dim, parse_dtype(dtype));
          },
          py::arg("kv_heads"), py::arg("head_dim"), py::arg("dtype") = "f16",
          "K and V bytes of one token in every bank: 2 * KV layers * H_kv * D * bytes(dtype).")
      .def(
          "sequence_bytes",
          [](const KvPlan& p, const ModelConfig& c, std::int64_t tokens, const std::string& dtype) {
            if (c.num_hidden_layers != p.layers()) {
              fail("config", std::to_string(c.num_hidden_layers) + " layers",
                   "must match the plan's " + std::to_string(p.layers()));
            }
            if (tokens < 0) fail("tokens", std::to_string(tokens), "must be >= 0");
            return kv_sequence_bytes(p, c, tokens, parse_dtype(dtype));
          },
          py::arg("config"), py::arg("tokens"), py::arg("dtype") = "f16",
          "K/V bytes of one sequence of `tokens` tokens (sliding banks hold at most the window).")
      .def(
          "bank_bytes",
          [](const KvPlan& p, const ModelConfig& c, std::int64_t tokens, const std::string& dtype) {
            if (c.num_hidden_layers != p.layers()) {
              fail("config", std::to_string(c.num_hidden_layers) + " layers",
                   "must match the plan's " + std::to_string(p.layers()));
            }
            if (tokens < 0) fail("tokens", std::to_string(tokens), "must be >= 0");
            std::vector<std::tuple<int, std::int64_t, std::int64_t>> out;
            for (const BankBytes& b : kv_sequence_banks(p, c, tokens, parse_dtype(dtype))) {
              out.emplace_back(b.kv_layer, b.tokens, b.bytes);
            }
            return out;
          },
          py::arg("config"), py::arg("tokens"), py::arg("dtype") = "f16",
          "Per bank: (kv_layer, tokens held, bytes) for one sequence of `tokens` tokens.")
      .def(
          "pass_schedule",
          [](const KvPlan& p, int prompt, int mm, int b) {
            if (prompt < 1) fail("prompt", std::to_string(prompt), "must be >= 1");
            if (mm < 0 || b < 0 || mm + b < 1) {
              fail("m,b", std::to_string(mm) + "," + std::to_string(b),
                   "need m >= 0, b >= 0, m + b >= 1");
            }
            const PassSchedule s = pass_schedule(prompt, mm, b);
            const bool blocks = p.has_upward();
            py::dict d;
            d["prompt_tokens"] = prompt;
            d["m"] = s.m;
            d["b"] = s.b;
            d["token_by_token"] = blocks ? s.token_by_token : false;
            d["passes"] = blocks ? s.passes : 1;
            return d;
          },
          py::arg("prompt"), py::arg("m") = 7, py::arg("b") = 2,
          "How LCKV's prefill runs a `prompt`-token prompt: passes over each cyclic block, or "
          "token by token (as `kvlab plan --json`'s pass_schedule).")
      .def("__eq__", [](const KvPlan& a, const KvPlan& b) { return a == b; })
      .def("__str__", &KvPlan::to_string)
      .def("__repr__", [](const KvPlan& p) { return "kvlab.Plan('" + p.to_string() + "')"; });

  // ---- the simulator (`kvlab simulate`, docs/simulator.md)
  py::class_<GpuSpec>(m, "GpuSpec", "One GPU as the roofline sees it.")
      .def_readonly("name", &GpuSpec::name)
      .def_readonly("description", &GpuSpec::description)
      .def_readonly("source", &GpuSpec::source)
      .def_readonly("memory_gib", &GpuSpec::memory_gib)
      .def_readonly("bandwidth_gb_s", &GpuSpec::bandwidth_gb_s)
      .def_readonly("tflops", &GpuSpec::tflops, "Dense 16-bit TFLOPS.");
  m.def("gpus", &gpu_presets, "The GPU presets of `kvlab simulate --gpu`.");
  m.def("gpu", &parse_gpu, py::arg("spec"),
        "A GPU preset by name, or 'custom(MEM_GiB,BANDWIDTH_GB/s,TFLOPS)'.");
  py::class_<SimOptions>(m, "SimOptions", "The inputs of a simulation.")
      .def_readonly("prompt", &SimOptions::prompt)
      .def_readonly("gen", &SimOptions::gen)
      .def_property_readonly("batch",
                             [](const SimOptions& o) -> py::object {
                               return o.batch ? py::object(py::int_(*o.batch)) : py::none();
                             })
      .def_property_readonly("kv_dtype", [](const SimOptions& o) { return dtype_name(o.kv_dtype); })
      .def_property_readonly("weight_dtype",
                             [](const SimOptions& o) { return dtype_name(o.weight_dtype); })
      .def_readonly("m", &SimOptions::m)
      .def_readonly("b", &SimOptions::b)
      .def_readonly("reserve_fraction", &SimOptions::reserve_fraction)
      .def_readonly("ideal", &SimOptions::ideal)
      .def_property_readonly("policy", [](const SimOptions& o) { return o.policy.name; })
      .def_property_readonly("budget",
                             [](const SimOptions& o) -> py::object {
                               return o.policy.budget > 0 ? py::object(py::int_(o.policy.budget))
                                                          : py::none();
                             })
      .def_property_readonly("attention",
                             [](const SimOptions& o) { return to_string(o.activations.attention); })
      .def_property_readonly("logits",
                             [](const SimOptions& o) { return to_string(o.activations.logits); })
      .def_property_readonly(
          "logits_dtype",
          [](const SimOptions& o) { return dtype_name(o.activations.logits_dtype); })
      .def_property_readonly("prefill_chunk",
                             [](const SimOptions& o) { return o.activations.prefill_chunk; })
      .def_property_readonly(
          "cache_growth", [](const SimOptions& o) { return to_string(o.activations.cache_growth); })
      .def_property_readonly("overhead_gib",
                             [](const SimOptions& o) { return o.activations.overhead_gib; });
  py::class_<DecodeFigures>(m, "DecodeFigures", "Decode figures (docs/simulator.md).")
      .def_readonly("weight_bytes_read_per_step", &DecodeFigures::weight_bytes_read_per_step)
      .def_readonly("kv_bytes_read_per_step_first", &DecodeFigures::kv_bytes_read_per_step_first)
      .def_readonly("kv_bytes_read_per_step_last", &DecodeFigures::kv_bytes_read_per_step_last)
      .def_readonly("flops_per_token_first", &DecodeFigures::flops_per_token_first)
      .def_readonly("flops_per_token_last", &DecodeFigures::flops_per_token_last)
      .def_readonly("bytes_per_step_mean", &DecodeFigures::bytes_per_step_mean)
      .def_readonly("flops_per_step_mean", &DecodeFigures::flops_per_step_mean)
      .def_readonly("memory_time_s", &DecodeFigures::memory_time_s)
      .def_readonly("compute_time_s", &DecodeFigures::compute_time_s)
      .def_readonly("time_s", &DecodeFigures::time_s)
      .def_readonly("step_time_mean_s", &DecodeFigures::step_time_mean_s)
      .def_readonly("step_time_first_s", &DecodeFigures::step_time_first_s)
      .def_readonly("step_time_last_s", &DecodeFigures::step_time_last_s)
      .def_readonly("tokens_per_s", &DecodeFigures::tokens_per_s)
      .def_readonly("tokens_per_s_per_sequence", &DecodeFigures::tokens_per_s_per_sequence)
      .def_readonly("memory_bound", &DecodeFigures::memory_bound);
  py::class_<PrefillFigures>(m, "PrefillFigures", "Prefill figures (docs/simulator.md).")
      .def_readonly("iterative", &PrefillFigures::iterative)
      .def_readonly("token_by_token", &PrefillFigures::token_by_token)
      .def_readonly("passes", &PrefillFigures::passes)
      .def_readonly("layer_passes", &PrefillFigures::layer_passes)
      .def_readonly("chunks", &PrefillFigures::chunks)
      .def_readonly("flops", &PrefillFigures::flops)
      .def_readonly("bytes", &PrefillFigures::bytes)
      .def_readonly("flops_per_sequence", &PrefillFigures::flops_per_sequence)
      .def_readonly("time_s", &PrefillFigures::time_s)
      .def_readonly("time_per_sequence_s", &PrefillFigures::time_per_sequence_s)
      .def_readonly("tokens_per_s", &PrefillFigures::tokens_per_s);
  py::class_<PlanSimulation>(m, "PlanSimulation", "One plan's simulated figures.")
      .def_readonly("spec", &PlanSimulation::spec)
      .def_readonly("map", &PlanSimulation::map)
      .def_readonly("num_kv_layers", &PlanSimulation::num_kv_layers)
      .def_readonly("sliding_kv_layers", &PlanSimulation::sliding_kv_layers)
      .def_readonly("window", &PlanSimulation::window)
      .def_readonly("weight_params", &PlanSimulation::weight_params)
      .def_readonly("weight_bytes", &PlanSimulation::weight_bytes)
      .def_readonly("kv_bytes_per_token", &PlanSimulation::kv_bytes_per_token)
      .def_readonly("kv_bytes_per_sequence", &PlanSimulation::kv_bytes_per_sequence)
      .def_readonly("policy_bytes_per_sequence", &PlanSimulation::policy_bytes_per_sequence)
      .def_readonly("activation_bytes_per_sequence", &PlanSimulation::activation_bytes_per_sequence)
      .def_readonly("sequence_bytes", &PlanSimulation::sequence_bytes)
      .def_readonly("memory_bytes", &PlanSimulation::memory_bytes)
      .def_readonly("reserve_bytes", &PlanSimulation::reserve_bytes)
      .def_readonly("overhead_bytes", &PlanSimulation::overhead_bytes)
      .def_readonly("kv_budget_bytes", &PlanSimulation::kv_budget_bytes)
      .def_readonly("max_batch", &PlanSimulation::max_batch)
      .def_readonly("batch", &PlanSimulation::batch)
      .def_readonly("fits", &PlanSimulation::fits)
      .def_readonly("memory_used_bytes", &PlanSimulation::memory_used_bytes)
      .def_readonly("decode", &PlanSimulation::decode)
      .def_readonly("prefill", &PlanSimulation::prefill)
      .def_readonly("total_time_s", &PlanSimulation::total_time_s)
      .def_readonly("end_to_end_tokens_per_s", &PlanSimulation::end_to_end_tokens_per_s)
      .def_readonly("end_to_end_tokens_per_s_per_sequence",
                    &PlanSimulation::end_to_end_tokens_per_s_per_sequence);
  py::class_<Simulation>(m, "Simulation",
                         "What `kvlab simulate` reports: the plans, in order, and standard.")
      .def_readonly("gpu", &Simulation::gpu)
      .def_readonly("options", &Simulation::options)
      .def_readonly("plans", &Simulation::plans)
      .def_property_readonly(
          "plan", [](const Simulation& s) { return s.plans.front(); }, "The first plan.")
      .def_readonly("standard", &Simulation::standard)
      .def_readonly("notes", &Simulation::notes);
  m.def(
      "simulate",
      [](const std::string& model, const py::object& plan, const std::string& gpu, int prompt,
         int gen, std::optional<std::int64_t> batch, const std::string& dtype,
         const std::string& weight_dtype, int mm, int b, double reserve,
         std::optional<int> kv_heads, std::optional<int> window, const std::string& policy,
         const std::string& budget, const std::string& attention, const std::string& logits,
         const std::string& logits_dtype, int prefill_chunk, const std::string& cache_growth,
         double overhead, bool ideal) {
        const ModelConfig c = model_config(model);
        std::vector<std::string> specs;
        if (py::isinstance<py::str>(plan)) {
          specs.push_back(plan.cast<std::string>());
        } else {
          specs = plan.cast<std::vector<std::string>>();
        }
        std::vector<std::pair<KvPlan, std::string>> plans;
        for (std::string spec : specs) {
          if (spec.empty()) spec = "standard";
          plans.emplace_back(KvPlan::parse(spec, c.num_hidden_layers), spec);
        }
        SimOptions o;
        o.prompt = prompt;
        o.gen = gen;
        o.batch = batch;
        o.kv_dtype = parse_dtype(dtype);
        o.weight_dtype = weight_dtype.empty() ? o.kv_dtype : parse_dtype(weight_dtype);
        o.m = mm;
        o.b = b;
        o.reserve_fraction = reserve;
        o.kv_heads = kv_heads;
        o.window = window;
        if (prompt >= 1) o.policy = sim_policy(policy, budget, prompt);
        o.activations.attention = parse_attention(attention);
        o.activations.logits = parse_logits(logits);
        o.activations.logits_dtype = parse_logits_dtype(logits_dtype);
        o.activations.prefill_chunk = prefill_chunk;
        o.activations.cache_growth = parse_cache_growth(cache_growth);
        o.activations.overhead_gib = overhead;
        o.ideal = ideal;
        return simulate(c, plans, parse_gpu(gpu), o);
      },
      py::arg("model"), py::arg("plan") = "standard", py::arg("gpu") = "a100-80gb",
      py::arg("prompt") = 2048, py::arg("gen") = 256, py::arg("batch") = py::none(),
      py::arg("dtype") = "f16", py::arg("weight_dtype") = "", py::arg("m") = 7, py::arg("b") = 2,
      py::arg("reserve") = 0.10, py::arg("kv_heads") = py::none(), py::arg("window") = py::none(),
      py::arg("policy") = "full", py::arg("budget") = "", py::arg("attention") = "flash",
      py::arg("logits") = "last", py::arg("logits_dtype") = "f32", py::arg("prefill_chunk") = 0,
      py::arg("cache_growth") = "preallocated", py::arg("overhead") = 0.0, py::arg("ideal") = false,
      "As `kvlab simulate`: memory fit, decode and prefill times of `model` (a preset, a "
      "built-in model or a checkpoint) under `plan` (a spec, or a list of specs side by side) on "
      "`gpu`, beside the standard plan. batch None: each plan at its largest batch that fits. "
      "policy/budget as --policy/--budget ('25%' or '64'); attention, logits, logits_dtype, "
      "prefill_chunk, cache_growth, overhead: the activation model; ideal: the pure roofline "
      "(docs/simulator.md).");
}

}  // namespace kvlab::python
