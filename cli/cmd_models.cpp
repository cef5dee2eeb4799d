// kvlab models: the trained models kvlab ships (models/, docs/training.md), what each is and how
// it was made. Any command takes their names: `kvlab generate --model tiny-standard ...`.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/accounting.hpp"
#include "session/builtin_models.hpp"
#include "session/session.hpp"

namespace kvlab::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// models/<name>/train.json: how the model was trained (written when it was shipped). Absent or
// unreadable: an empty object (the model still runs; the listing says "-").
json read_train_record(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "train.json");
  if (!in) return json::object();
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json::object();
}

json describe(const BuiltinModel& m) {
  SessionOptions so;
  so.model = m.path;
  const Session s = Session::load(so);
  const ModelConfig& c = s.config();
  const json rec = read_train_record(m.path);
  json j = {{"name", m.name},
            {"path", m.path},
            {"plan", s.plan_spec()},
            {"layers", c.num_hidden_layers},
            {"hidden", c.hidden_size},
            {"heads", c.num_attention_heads},
            {"kv_heads", c.num_key_value_heads},
            {"head_dim", c.head_dim},
            {"context", c.max_position_embeddings},
            {"vocab", c.vocab_size},
            {"parameters", s.weight_bytes() / static_cast<std::int64_t>(sizeof(float))},
            {"kv_bytes_per_token_f32",
             kv_bytes_per_token(s.plan(), c.num_key_value_heads, c.head_dim, Dtype::f32)}};
  for (const char* key : {"val_loss", "val_ppl", "steps", "seed", "command"}) {
    if (rec.contains(key)) j[key] = rec[key];
  }
  return j;
}

void run_models(bool as_json) {
  const std::string dir = models_dir();
  const auto models = builtin_models();
  json all = json::array();
  for (const auto& m : models) all.push_back(describe(m));
  if (as_json) {
    std::printf("%s\n", json{{"models_dir", dir}, {"models", all}}.dump(2).c_str());
    return;
  }
  if (models.empty()) {
    std::printf(
        "No built-in models in %s.\nSet KVLAB_MODELS to a directory of model folders, or train "
        "one: kvlab train --preset tiny -o DIR (docs/training.md).\n",
        dir.empty() ? "(no models directory)" : dir.c_str());
    return;
  }
  std::printf("Built-in models (%s); any command takes the name as --model:\n\n", dir.c_str());
  std::printf("%-16s %-10s %6s %12s %14s %15s  %s\n", "name", "plan", "layers", "parameters",
              "KV B/token f32", "val loss", "shape");
  for (const json& m : all) {
    std::string loss = "-";
    if (m.contains("val_loss")) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3f (ppl %.0f)", m["val_loss"].get<double>(),
                    m.value("val_ppl", 0.0));
      loss = buf;
    }
    std::printf("%-16s %-10s %6d %12lld %14lld %15s  C=%d H=%d KV heads=%d D=%d T=%d vocab=%d\n",
                m["name"].get<std::string>().c_str(), m["plan"].get<std::string>().c_str(),
                m["layers"].get<int>(), m["parameters"].get<long long>(),
                m["kv_bytes_per_token_f32"].get<long long>(), loss.c_str(), m["hidden"].get<int>(),
                m["heads"].get<int>(), m["kv_heads"].get<int>(), m["head_dim"].get<int>(),
                m["context"].get<int>(), m["vocab"].get<int>());
  }
  std::printf(
      "\nKV bytes per token are for f32 K/V, as generate holds them (half at f16: kvlab plan's "
      "default, generate --dtype f16). How each was trained:\n");
  for (const json& m : all) {
    std::printf(
        "  %-16s %s\n", m["name"].get<std::string>().c_str(),
        m.contains("command") ? m["command"].get<std::string>().c_str() : "(no train.json)");
  }
}

}  // namespace

void add_models_command(CLI::App& app) {
  auto as_json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "models", "List the trained models kvlab ships (use a name as --model anywhere)");
  cmd->add_flag("--json", *as_json, "Print JSON");
  cmd->callback([as_json] { run_models(*as_json); });
}

}  // namespace kvlab::cli
