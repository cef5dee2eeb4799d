// kvlab plan SPEC: expand a KV plan, show who reads whom, the derived facts and the bytes.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/formats/config_json.hpp"
#include "core/plan.hpp"
#include "core/plan_diagram.hpp"

namespace kvlab::cli {
namespace {

struct PlanOptions {
  std::string spec;
  std::string model;
  std::string config;
  int layers = 0;
  std::optional<int> kv_heads;  // unset: from the model (or 1 with --layers)
  std::optional<int> head_dim;  // unset: from the model (or 128 with --layers)
  std::string dtype = "f16";
  int prompt = 512;
  int m = 7;
  int b = 2;
  bool json = false;
};

ModelConfig config_for(const PlanOptions& o) {
  const int sources = !o.model.empty() + !o.config.empty() + (o.layers != 0);
  if (sources != 1) {
    fail("model", sources == 0 ? "(none)" : "(several)",
         "give exactly one of --model PRESET|DIR, --config FILE, --layers N");
  }
  ModelConfig c;
  if (!o.model.empty()) {
    c = resolve_model_config(o.model);
  } else if (!o.config.empty()) {
    c = load_config(o.config);
  } else {
    if (o.layers < 1 || o.layers > 1024) {
      fail("--layers", std::to_string(o.layers), "must be in [1, 1024]");
    }
    // A synthetic shape: only L, H_kv and D matter for the plan and its bytes.
    c.num_hidden_layers = o.layers;
    c.num_key_value_heads = o.kv_heads.value_or(1);
    c.head_dim = o.head_dim.value_or(128);
    c.num_attention_heads = c.num_key_value_heads;
    c.hidden_size = c.num_attention_heads * c.head_dim;
    c.intermediate_size = 4 * c.hidden_size;
    c.vocab_size = 32000;
  }
  // A value given is checked as given: --kv-heads 0 is an error, not "the model's".
  if (o.kv_heads) {
    const int kv = *o.kv_heads;
    if (kv < 1) fail("--kv-heads", std::to_string(kv), "must be >= 1");
    if (c.num_attention_heads % kv != 0) {
      fail(
          "--kv-heads", std::to_string(kv),
          "must divide the model's num_attention_heads = " + std::to_string(c.num_attention_heads));
    }
    c.num_key_value_heads = kv;
  }
  if (o.head_dim) {
    if (o.layers == 0) {
      fail("--head-dim", std::to_string(*o.head_dim),
           "is fixed by the model; use it only with --layers");
    }
    if (*o.head_dim < 1) fail("--head-dim", std::to_string(*o.head_dim), "must be >= 1");
  }
  c.validate();
  return c;
}

// One row per layer, top layer first: '#' = the layer reads itself (KV layer), '^' = it reads the
// layer above marked in that column, 'v' = a layer below; '.' elsewhere.
void draw(const PlanDiagram& d) {
  const int L = d.layers;
  if (L > 64) {
    std::printf("(drawing omitted for %d layers; see the table)\n", L);
    return;
  }
  std::printf("who reads whom (row = layer, column = the layer whose K/V it reads):\n");
  std::printf("       # reads itself (KV layer)   ^ reads a layer above   v reads a layer below\n");
  for (int l = L - 1; l >= 0; --l) {
    const PlanDiagramNode& n = d.nodes[static_cast<size_t>(l)];
    std::string row(L, '.');
    row[n.reads] = n.kv_layer ? '#' : (n.upward ? '^' : 'v');
    std::printf("  %4d %s%s\n", l, row.c_str(), n.sliding ? "  (sliding)" : "");
  }
  std::string axis(L, ' ');
  for (int c = 0; c < L; c += 5) axis[c] = '|';
  std::printf("       %s\n       0 (columns: layers 0..%d)\n", axis.c_str(), L - 1);
}

// The diagram for --json: nodes, read edges [reader, KV layer], upward edges, cyclic blocks.
nlohmann::json diagram_json(const PlanDiagram& d) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const PlanDiagramNode& n : d.nodes) {
    nodes.push_back({{"layer", n.layer},
                     {"reads", n.reads},
                     {"kv_layer", n.kv_layer},
                     {"upward", n.upward},
                     {"sliding", n.sliding},
                     {"cyclic_block", n.cyclic_block >= 0 ? nlohmann::json(n.cyclic_block)
                                                          : nlohmann::json(nullptr)}});
  }
  const auto edges = [](const std::vector<PlanDiagramEdge>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const PlanDiagramEdge& e : v) a.push_back({e.reader, e.kv_layer});
    return a;
  };
  nlohmann::json blocks = nlohmann::json::array();
  for (const CyclicBlock& b : d.cyclic_blocks) blocks.push_back({b.first, b.last});
  return {{"layers", d.layers},
          {"nodes", nodes},
          {"read_edges", edges(d.read_edges)},
          {"upward_edges", edges(d.upward_edges)},
          {"cyclic_blocks", blocks},
          {"kv_layers", d.kv_layers}};
}

std::string list(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// "1..19" for runs, "0,2,4" otherwise.
std::string ranges(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + std::to_string(v[i]);
    if (j > i) s += ".." + std::to_string(v[j]);
    i = j + 1;
  }
  return s;
}

void run_plan(const PlanOptions& o) {
  const ModelConfig c = config_for(o);
  const Dtype dtype = parse_dtype(o.dtype);
  if (o.prompt < 1) fail("--prompt", std::to_string(o.prompt), "must be >= 1");
  const KvPlan plan = KvPlan::parse(o.spec, c.num_hidden_layers);
  const KvPlan standard = KvPlan::parse("standard", c.num_hidden_layers);
  const auto bpt = kv_bytes_per_token(plan, c.num_key_value_heads, c.head_dim, dtype);
  const auto bpt_std = kv_bytes_per_token(standard, c.num_key_value_heads, c.head_dim, dtype);
  const auto blocks = plan.cyclic_blocks();
  const PassSchedule sched = pass_schedule(o.prompt, o.m, o.b);

  if (o.json) {
    nlohmann::json j;
    j["spec"] = o.spec;
    j["map"] = plan.to_string();
    j["layers"] = plan.layers();
    j["kv_heads"] = c.num_key_value_heads;
    j["head_dim"] = c.head_dim;
    j["dtype"] = dtype_name(dtype);
    j["kv_layers"] = plan.kv_layers();
    nlohmann::json readers = nlohmann::json::object();
    for (int t : plan.kv_layers()) readers[std::to_string(t)] = plan.readers(t);
    j["readers"] = readers;
    nlohmann::json up = nlohmann::json::array();
    for (auto [r, t] : plan.upward_edges()) up.push_back({r, t});
    j["upward_edges"] = up;
    nlohmann::json cb = nlohmann::json::array();
    for (auto b : blocks) cb.push_back({b.first, b.last});
    j["cyclic_blocks"] = cb;
    std::vector<int> sliding;
    for (int l = 0; l < plan.layers(); ++l) {
      if (plan.sliding(l)) sliding.push_back(l);
    }
    j["sliding_layers"] = sliding;
    j["sliding_window"] = c.sliding_window;
    j["bytes_per_token"] = bpt;
    j["bytes_per_token_standard"] = bpt_std;
    j["ratio_to_standard"] = static_cast<double>(bpt) / static_cast<double>(bpt_std);
    j["pass_schedule"] = {{"prompt_tokens", o.prompt},
                          {"m", sched.m},
                          {"b", sched.b},
                          {"token_by_token", blocks.empty() ? false : sched.token_by_token},
                          {"passes", blocks.empty() ? 1 : sched.passes}};
    j["diagram"] = diagram_json(plan_diagram(plan));
    std::cout << j.dump(2) << "\n";
    return;
  }

  std::printf("plan          %s\n", o.spec.c_str());
  std::printf("map           %s\n", plan.to_string().c_str());
  std::printf("shape         %d layers, H_kv = %d, D = %d, dtype %s\n", plan.layers(),
              c.num_key_value_heads, c.head_dim, dtype_name(dtype).c_str());
  std::printf("KV layers     %s  (%d of %d)\n", list(plan.kv_layers()).c_str(),
              plan.num_kv_layers(), plan.layers());
  std::string bs;
  for (auto b : blocks) {
    bs += (bs.empty() ? "" : ", ") + std::string("[") + std::to_string(b.first) + ", " +
          std::to_string(b.last) + "]";
  }
  std::printf("cyclic blocks %s\n", blocks.empty() ? "none (one pass)" : bs.c_str());
  if (!blocks.empty()) {
    if (sched.token_by_token) {
      std::printf("prefill       a %d-token prompt is encoded token by token (<= m + b = %d)\n",
                  o.prompt, sched.m + sched.b);
    } else {
      std::printf(
          "prefill       %d passes over each cyclic block for a %d-token prompt (m = %d, "
          "b = %d)\n",
          sched.passes, o.prompt, sched.m, sched.b);
    }
  }
  std::printf("\n layer  reads  KV layer  upward  sliding  block  read by\n");
  for (int l = 0; l < plan.layers(); ++l) {
    const int blk = plan.cyclic_block_of(l);
    std::printf(" %5d  %5d  %-8s  %-6s  %-7s  %-5s  %s\n", l, plan.kv_of(l),
                plan.is_kv_layer(l) ? "yes" : "-", plan.is_upward(l) ? "yes" : "-",
                plan.sliding(l) ? "yes" : "-", blk >= 0 ? std::to_string(blk).c_str() : "-",
                plan.is_kv_layer(l) ? ranges(plan.readers(l)).c_str() : "");
  }
  std::printf("\n");
  draw(plan_diagram(plan));
  const std::string dt = dtype_name(dtype);
  std::printf(
      "\nKV bytes per token  %s B at %s  (standard: %s B at %s, ratio %.4f = %d/%d KV layers)\n",
      group_digits(bpt).c_str(), dt.c_str(), group_digits(bpt_std).c_str(), dt.c_str(),
      static_cast<double>(bpt) / static_cast<double>(bpt_std), plan.num_kv_layers(),
      standard.num_kv_layers());
  bool any_sliding_bank = false;
  for (int t : plan.kv_layers()) any_sliding_bank |= plan.bank_is_sliding(t);
  const auto seq = kv_sequence_bytes(plan, c, o.prompt, dtype);
  std::printf("KV bytes for %d tokens  %s B (%s) at %s%s\n", o.prompt, group_digits(seq).c_str(),
              human_bytes(static_cast<double>(seq)).c_str(), dt.c_str(),
              any_sliding_bank ? "  (sliding banks hold at most the window)" : "");
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  auto* cmd = app.add_subcommand("plan", "Expand a KV plan: map, KV layers, cyclic blocks, bytes");
  cmd->add_option("spec", o->spec,
                  "Plan: standard, cla:K, mlkv:M, lckv:W, {pizza|sandwich|lasagna}-"
                  "{bottom|top|middle}:N, yoco, or a text form like 0_0_2_2 (s = sliding)")
      ->required();
  cmd->add_option("--model", o->model,
                  "Model shape: a preset (e.g. tinyllama-1.1b), a built-in trained model, a "
                  "kvlab or Hugging Face directory, a config.json or a llama2.c .bin");
  cmd->add_option("--config", o->config, "A Hugging Face config.json (as --model FILE)");
  cmd->add_option("--layers", o->layers, "Number of layers of a synthetic shape");
  cmd->add_option("--kv-heads", o->kv_heads,
                  "KV heads H_kv (default: the model's; 1 with --layers)");
  cmd->add_option("--head-dim", o->head_dim, "Head dim D with --layers (default 128)");
  cmd->add_option("--dtype", o->dtype,
                  "K/V dtype the byte figures count: f32, f16 (an inference server's usual), "
                  "bf16, fp8, int8 (generate holds its precision unless given --dtype)")
      ->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "Prompt length for the pass schedule and sequence bytes")
      ->capture_default_str();
  cmd->add_option("--m", o->m, "LCKV passes m (first passes)")->capture_default_str();
  cmd->add_option("--b", o->b, "LCKV passes b (last passes)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON object instead of the report");
  cmd->callback([o] { run_plan(*o); });
}

}  // namespace kvlab::cli
