#include "session/zoo.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "core/tokenizers/tokenizer.hpp"
#include "reference/tasks.hpp"
#include "reference/train/corpus.hpp"
#include "reference/train/presets.hpp"
#include "session/session.hpp"

namespace kvlab {
namespace fs = std::filesystem;
using nlohmann::json;
namespace rt = ref::train;

namespace {

constexpr const char* kRowFormat = "kvlab-zoo-entry";
constexpr std::uint64_t kPasskeySeed = 1000;  // passkey examples 1000, 1001, ...
constexpr int kStreamingSinks = 4;

std::string fmt(double v, const char* f = "%g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fnv1a(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// What decides an entry's numbers; stored with each measured entry and compared on a rerun.
json settings_json(const ZooSetup& s, const rt::TrainPreset& preset, std::int64_t steps,
                   double recall, const std::string& tokenizer_id, const ZooEntry& e,
                   const KvPlan& plan) {
  return {
      {"preset", preset.name},
      {"steps", steps},
      {"seed", s.seed.value_or(1)},
      {"recall_fraction", recall},
      {"train_passes", plan.has_upward() ? (s.train_passes.empty() ? "7,2" : s.train_passes) : ""},
      {"text_file", s.text_file.empty() ? "" : fs::absolute(s.text_file).string()},
      {"tokenizer", tokenizer_id},
      {"passkey_examples", s.passkey_examples},
      {"plan", plan.to_string()},
      {"heads", e.heads},
      {"kv_heads", e.kv_heads}};
}

json row_json(const ZooRow& r) {
  return {{"name", r.name},
          {"label", r.label},
          {"plan", r.plan},
          {"plan_map", r.plan_map},
          {"heads", r.heads},
          {"kv_heads", r.kv_heads},
          {"head_dim", r.head_dim},
          {"layers", r.layers},
          {"kv_layers", r.kv_layers},
          {"kv_bytes_per_token", r.kv_bytes_per_token},
          {"parameters", r.parameters},
          {"steps", r.steps},
          {"train_tokens", r.train_tokens},
          {"train_passes", r.train_passes},
          {"val_loss", r.val_loss},
          {"val_ppl", r.val_ppl},
          {"val_step", r.val_step},
          {"train_tokens_per_s", r.train_tokens_per_s},
          {"train_seconds", r.train_seconds},
          {"prefill_passes", r.prefill_passes},
          {"passes_converged", r.passes_converged},
          {"passkey_full", r.passkey_full},
          {"passkey_evict", r.passkey_evict},
          {"passkey_length", r.passkey_length},
          {"evict_budget", r.evict_budget}};
}

ZooRow row_from_json(const json& j) {
  ZooRow r;
  r.name = j.at("name");
  r.label = j.at("label");
  r.plan = j.at("plan");
  r.plan_map = j.at("plan_map");
  r.heads = j.at("heads");
  r.kv_heads = j.at("kv_heads");
  r.head_dim = j.at("head_dim");
  r.layers = j.at("layers");
  r.kv_layers = j.at("kv_layers");
  r.kv_bytes_per_token = j.at("kv_bytes_per_token");
  r.parameters = j.at("parameters");
  r.steps = j.at("steps");
  r.train_tokens = j.at("train_tokens");
  r.train_passes = j.at("train_passes");
  r.val_loss = j.at("val_loss");
  r.val_ppl = j.at("val_ppl");
  r.val_step = j.at("val_step");
  r.train_tokens_per_s = j.at("train_tokens_per_s");
  r.train_seconds = j.at("train_seconds");
  r.prefill_passes = j.at("prefill_passes");
  r.passes_converged = j.at("passes_converged");
  r.passkey_full = j.at("passkey_full");
  r.passkey_evict = j.at("passkey_evict");
  r.passkey_length = j.at("passkey_length");
  r.evict_budget = j.at("evict_budget");
  return r;
}

// An entry measured earlier: its row when its settings equal `want`; nullopt when there is none;
// a named error when it was measured with other settings.
std::optional<ZooRow> stored_row(const fs::path& dir, const json& want, bool strict) {
  const fs::path p = dir / "zoo_row.json";
  if (!fs::exists(p)) return std::nullopt;
  const json j = json::parse(read_all(p), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kRowFormat ||
      !j.contains("settings") || !j.contains("row")) {
    if (!strict) return std::nullopt;
    fail("-o", p.string(), "is not a kvlab zoo entry (remove it to measure the entry again)");
  }
  if (j.at("settings") != want) {
    if (!strict) return std::nullopt;
    std::string diff;
    for (const auto& [k, v] : want.items()) {
      const json had = j.at("settings").value(k, json());
      if (had != v) {
        diff += (diff.empty() ? "" : ", ") + k + " " + had.dump() + " (now " + v.dump() + ")";
      }
    }
    fail("-o", dir.string(),
         "holds this zoo entry measured with other settings: " + diff +
             "; give another -o, or remove the entry's directory");
  }
  try {
    return row_from_json(j.at("row"));
  } catch (const json::exception& e) {
    if (!strict) return std::nullopt;
    fail("-o", p.string(), std::string("is incomplete: ") + e.what());
  }
}

struct LogStats {
  double median_tokens_per_s = 0;
  double seconds = 0;
};

// The training log's steps: median tokens/s and the summed step time.
LogStats log_stats(const fs::path& log, std::int64_t tokens_per_step) {
  std::vector<double> tps;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("tokens_per_s") || j.contains("val_loss")) continue;
    const double v = j.at("tokens_per_s").get<double>();
    if (v > 0) tps.push_back(v);
  }
  LogStats s;
  for (double v : tps) s.seconds += static_cast<double>(tokens_per_step) / v;
  if (!tps.empty()) {
    std::sort(tps.begin(), tps.end());
    const size_t n = tps.size();
    s.median_tokens_per_s = n % 2 ? tps[n / 2] : (tps[n / 2 - 1] + tps[n / 2]) / 2;
  }
  return s;
}

// Everything about the zoo's inputs, resolved and checked before anything is written.
struct Resolved {
  const rt::TrainPreset* preset = nullptr;
  std::int64_t steps = 0;
  double recall = 0;
  std::string tokenizer_id;
  std::vector<ZooEntry> all, selected;
  std::vector<KvPlan> plans;  // of `all`
  std::vector<bool> fits;     // of `all`: the plan and heads fit the preset
  std::shared_ptr<const Tokenizer> tokenizer;
  int passkey_length = 0, evict_budget = 0;
};

Resolved resolve(const ZooSetup& s) {
  Resolved r;
  if (s.out.empty()) fail("-o", "(none)", "give the zoo's output directory");
  {
    std::error_code ec;
    if (fs::exists(s.out, ec) && !fs::is_directory(s.out, ec)) {
      fail("-o", s.out, "is a file: give a directory for the zoo");
    }
  }
  r.preset = &rt::find_train_preset(s.preset);
  const rt::TrainPreset& p = *r.preset;
  const std::int64_t per = static_cast<std::int64_t>(p.batch) * p.seq_len;
  if (s.steps < 0) fail("--steps", std::to_string(s.steps), "must be >= 1");
  if (s.tokens < 0) fail("--tokens", std::to_string(s.tokens), "must be >= 1");
  if (s.steps > 0 && s.tokens > 0) {
    fail("--steps/--tokens", "(both)", "give one of --steps N and --tokens N");
  }
  if (s.tokens > 0 && s.tokens < per) {
    fail("--tokens", std::to_string(s.tokens),
         "is smaller than one batch of preset " + p.name + " (" + std::to_string(p.batch) +
             " rows x " + std::to_string(p.seq_len) + " tokens = " + std::to_string(per) + ")");
  }
  r.steps = s.steps > 0 ? s.steps : s.tokens > 0 ? (s.tokens + per - 1) / per : p.steps;
  if (s.threads < 1 || s.threads > 256) {
    fail("--threads", std::to_string(s.threads), "must be in [1, 256]");
  }
  if (s.passkey_examples < 1 || s.passkey_examples > 10000) {
    fail("--passkey-examples", std::to_string(s.passkey_examples), "must be in [1, 10000]");
  }
  r.recall = s.recall_fraction.value_or(p.recall_fraction);
  {
    rt::CorpusOptions co;
    co.recall_fraction = r.recall;
    co.validate();
  }
  if (!s.train_passes.empty()) (void)parse_train_passes(s.train_passes);
  if (!s.text_file.empty() && !fs::is_regular_file(s.text_file)) {
    fail("--text-file", s.text_file, "does not exist");
  }
  if (s.tokenizer == "byte") {
    r.tokenizer = std::make_shared<ByteTokenizer>();
    r.tokenizer_id = "byte";
  } else {
    if (s.tokenizer.empty()) fail("--tokenizer", "(none)", "give byte or a tokenizer.json");
    if (fs::path(s.tokenizer).extension() != ".json" || !fs::is_regular_file(s.tokenizer)) {
      fail("--tokenizer", s.tokenizer, "must be byte or an existing Hugging Face tokenizer.json");
    }
    r.tokenizer = std::shared_ptr<const Tokenizer>(load_tokenizer(s.tokenizer));
    r.tokenizer_id = "tokenizer.json:" + fnv1a(read_all(s.tokenizer));
  }
  r.all = zoo_entries(p.name);
  std::set<std::string> want;
  for (const auto& n : s.only) {
    const auto it =
        std::find_if(r.all.begin(), r.all.end(), [&](const ZooEntry& e) { return e.name == n; });
    if (it == r.all.end()) {
      std::string names;
      for (const auto& e : r.all) names += (names.empty() ? "" : ", ") + e.name;
      fail("--only", n.empty() ? "(empty)" : n, "is not a zoo entry; the entries are " + names);
    }
    want.insert(n);
  }
  const int L = p.shape.num_hidden_layers;
  for (const auto& e : r.all) {
    const bool selected = want.empty() || want.count(e.name) > 0;
    try {
      r.plans.push_back(KvPlan::parse(e.plan, L));
      (void)rt::train_config(p, r.tokenizer->vocab_size(), e.kv_heads, e.heads);
      r.fits.push_back(true);
    } catch (const Error& err) {
      if (!selected) {
        if (r.plans.size() == r.fits.size()) r.plans.push_back(KvPlan::parse("standard", L));
        r.fits.push_back(false);  // never run
        continue;
      }
      fail(s.only.empty() ? "--preset" : "--only", s.only.empty() ? p.name : e.name,
           "zoo entry " + e.name + " (" + e.plan + ") does not fit preset " + p.name + " (" +
               std::to_string(L) + " layers, " + std::to_string(p.shape.num_attention_heads) +
               " heads): " + err.what() + (s.only.empty() ? "; choose entries with --only" : ""));
    }
    if (selected) r.selected.push_back(e);
  }
  // Passkey prompts: the longest context (at most T - 32 tokens) whose prompt with its question
  // and key stays below T - 15 tokens, the longest the corpus's recall rows train on; none when
  // the needle does not fit.
  for (int length = p.seq_len - 32; length > 0 && length > p.seq_len - 96; --length) {
    try {
      const ref::TaskExample ex = ref::make_passkey(length, kPasskeySeed, *r.tokenizer);
      if (static_cast<int>(ex.context.size() + ex.query.size()) + 1 < p.seq_len - 15) {
        r.passkey_length = length;
        r.evict_budget = length / 4;
        break;
      }
    } catch (const Error&) {
      break;  // the needle does not fit: shorter contexts will not either
    }
  }
  return r;
}

ZooRow measure(const ZooEntry& e, const fs::path& dir, const Resolved& r, const ZooSetup& s,
               const std::vector<int>& val_text) {
  SessionOptions so;
  so.model = (dir / "best").string();
  so.run.threads = s.threads;
  Session session = Session::load(so);
  const ModelConfig& cfg = session.config();
  const KvPlan plan = session.plan();
  ZooRow row;
  row.name = e.name;
  row.label = e.label;
  row.plan = e.plan;
  row.plan_map = plan.to_string();
  row.heads = cfg.num_attention_heads;
  row.kv_heads = cfg.num_key_value_heads;
  row.head_dim = cfg.head_dim;
  row.layers = cfg.num_hidden_layers;
  row.kv_layers = plan.num_kv_layers();
  row.kv_bytes_per_token =
      kv_bytes_per_token(plan, cfg.num_key_value_heads, cfg.head_dim, Dtype::f32);
  row.parameters = cfg.parameter_count(row.kv_layers);
  const json best = json::parse(read_all(dir / "best" / "train_state.json"));
  const json& run = best.at("run");
  row.steps = run.at("steps").get<std::int64_t>();
  const std::int64_t per = static_cast<std::int64_t>(r.preset->batch) * r.preset->seq_len;
  row.train_tokens = row.steps * per;
  if (plan.has_upward()) {
    row.train_passes = std::to_string(run.at("train_passes").at(0).get<int>()) + "," +
                       std::to_string(run.at("train_passes").at(1).get<int>());
  }
  row.val_loss = best.at("best_val_loss").get<double>();
  row.val_ppl = std::exp(row.val_loss);
  row.val_step = best.at("best_val_step").get<std::int64_t>();
  const LogStats ls = log_stats(dir / "log.jsonl", per);
  row.train_tokens_per_s = ls.median_tokens_per_s;
  row.train_seconds = ls.seconds;

  // LCKV: iterate the prefill of a validation text until the targets' K/V stop changing (the
  // cap, T + 1 passes, is past the T passes that make every token exact).
  if (plan.has_upward()) {
    RunOptions ro;
    ro.threads = s.threads;
    ro.schedule.mode = ref::PrefillMode::converge;
    ro.schedule.max_passes = static_cast<int>(val_text.size()) + 1;
    session.configure(ro);
    const TraceReport t = session.trace_prefill(val_text, false);
    row.prefill_passes = 0;
    for (int p : t.passes_run) row.prefill_passes = std::max(row.prefill_passes, p);
    row.passes_converged = row.prefill_passes < ro.schedule.max_passes;
  }
  if (r.passkey_length > 0) {
    EvalSetup es;
    es.task = "passkey";
    es.n = s.passkey_examples;
    es.length = r.passkey_length;
    es.seed = kPasskeySeed;
    RunOptions full;
    full.threads = s.threads;
    session.configure(full);
    row.passkey_full = session.eval(es).accuracy();
    RunOptions evict = full;
    evict.policy = "streaming:" + std::to_string(kStreamingSinks);
    evict.budget = std::to_string(r.evict_budget);
    session.configure(evict);
    row.passkey_evict = session.eval(es).accuracy();
    row.passkey_length = r.passkey_length;
    row.evict_budget = r.evict_budget;
  }
  return row;
}

std::string cell(double v, const char* f) {
  return v < 0 ? "" : fmt(v, f);
}

}  // namespace

std::vector<ZooEntry> zoo_entries(const std::string& preset) {
  const rt::TrainPreset& p = rt::find_train_preset(preset);
  const int H = p.shape.num_attention_heads;
  const std::string h = std::to_string(H);
  return {
      {"mha", "MHA", "standard multi-head attention: the baseline", "standard", 0, H},
      {"gqa", "GQA (H_kv = H/2)", "grouped-query attention, half the KV heads", "standard", 0,
       std::max(1, H / 2)},
      {"mqa", "MQA", "multi-query attention, one KV head", "standard", 0, 1},
      {"mqa-cla2", "MQA + CLA2", "MQA, adjacent layer pairs share one K/V (CLA paper)", "cla:2", 0,
       1},
      {"mqa-half-d", "MQA, half head size",
       "MQA with " + std::to_string(2 * H) +
           " query heads of half the head size: the K/V bytes of MQA + CLA2 (the CLA paper's "
           "baseline at equal memory)",
       "standard", 2 * H, 1},
      {"mha-cla3", "CLA3 (MHA)", "MHA, groups of three layers share one K/V", "cla:3", 0, H},
      {"lckv-warmup", "LCKV, 2 warm-up (lckv:2)",
       "LCKV: the bottom and top layers keep their own K/V, the rest read the top middle layer",
       "lckv:2", 0, H},
      {"lckv-alltop", "LCKV all-top (lckv:0)",
       "LCKV without warm-up layers: every layer reads the top layer's K/V", "lckv:0", 0, H},
      {"sandwich-middle", "sandwich-middle:3",
       "the bottom and top layers keep their own K/V, the rest read the middle one (Wu et al.)",
       "sandwich-middle:3", 0, H},
  };
}

ZooResult run_zoo(const ZooSetup& s, const std::function<void(const ZooEvent&)>& on_event) {
  const auto t0 = std::chrono::steady_clock::now();
  const Resolved r = resolve(s);
  const rt::TrainPreset& p = *r.preset;
  const fs::path out = s.out;
  auto settings_of = [&](size_t i) {
    return settings_json(s, p, r.steps, r.recall, r.tokenizer_id, r.all[i], r.plans[i]);
  };
  auto index_of = [&](const ZooEntry& e) {
    for (size_t i = 0; i < r.all.size(); ++i) {
      if (r.all[i].name == e.name) return i;
    }
    return size_t{0};
  };
  // Entries measured earlier with other settings are refused before any training.
  for (const auto& e : r.selected) (void)stored_row(out / e.name, settings_of(index_of(e)), true);

  // A validation text for LCKV's prefill passes: the first T tokens of the validation split.
  std::vector<int> val_text;
  {
    rt::CorpusOptions co;
    co.text_file = s.text_file;
    co.seed = s.seed.value_or(1);
    co.recall_fraction = r.recall;
    const rt::Corpus corpus = rt::build_corpus(co, *r.tokenizer, p.seq_len);
    const size_t n = std::min<size_t>(corpus.val.size(), static_cast<size_t>(p.seq_len));
    if (n < 2) {
      fail(s.text_file.empty() ? "corpus" : "--text-file",
           "a validation split of " + std::to_string(corpus.val.size()) + " tokens",
           "is too short for the zoo's measurements: give a longer text");
    }
    val_text.assign(corpus.val.begin(), corpus.val.begin() + static_cast<std::ptrdiff_t>(n));
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out)) fail("-o", s.out, "cannot create the output directory");

  const int count = static_cast<int>(r.selected.size());
  for (int k = 0; k < count; ++k) {
    const ZooEntry& e = r.selected[static_cast<size_t>(k)];
    const json want = settings_of(index_of(e));
    const fs::path dir = out / e.name;
    ZooEvent ev;
    ev.index = k;
    ev.count = count;
    ev.entry = &e;
    if (const auto row = stored_row(dir, want, true)) {
      ev.kind = ZooEvent::Kind::entry_skipped;
      ev.row = &*row;
      if (on_event) on_event(ev);
      continue;
    }
    TrainSetup ts;
    ts.preset = p.name;
    ts.plan = e.plan;
    ts.heads = e.heads;
    ts.kv_heads = e.kv_heads;
    ts.steps = r.steps;
    ts.seed = s.seed.value_or(1);
    ts.recall_fraction = r.recall;
    ts.threads = s.threads;
    if (r.plans[index_of(e)].has_upward()) ts.train_passes = s.train_passes;
    ts.text_file = s.text_file;
    ts.tokenizer = s.tokenizer;
    ts.out = dir.string();
    ev.resumed = fs::exists(dir / "last" / "train_state.json");
    if (ev.resumed) ts.resume = dir.string();
    ev.kind = ZooEvent::Kind::entry_start;
    if (on_event) on_event(ev);
    ev.resumed = false;
    (void)train(
        ts,
        [&](const TrainInfo& info) {
          ZooEvent x = ev;
          x.kind = ZooEvent::Kind::train_start;
          x.info = &info;
          if (on_event) on_event(x);
        },
        [&](const TrainProgress& pr) {
          ZooEvent x = ev;
          x.kind = ZooEvent::Kind::train;
          x.progress = &pr;
          if (on_event) on_event(x);
        });
    ev.kind = ZooEvent::Kind::evaluating;
    if (on_event) on_event(ev);
    const ZooRow row = measure(e, dir, r, s, val_text);
    const json j = {{"format", kRowFormat}, {"settings", want}, {"row", row_json(row)}};
    write_file_atomic((dir / "zoo_row.json").string(),
                      [&](std::ostream& o) { o << j.dump(2) << "\n"; });
    ev.kind = ZooEvent::Kind::entry_done;
    ev.row = &row;
    if (on_event) on_event(ev);
  }

  // The table: every entry the directory holds with these settings, in table order.
  ZooResult res;
  res.dir = out.string();
  for (size_t i = 0; i < r.all.size(); ++i) {
    if (!r.fits[i]) continue;
    if (auto row = stored_row(out / r.all[i].name, settings_of(i), false)) {
      res.rows.push_back(*row);
    }
  }
  res.csv = (out / "zoo.csv").string();
  res.markdown = (out / "zoo.md").string();
  write_file_atomic(res.csv, [&](std::ostream& o) { o << zoo_csv(res.rows); });
  write_file_atomic(res.markdown, [&](std::ostream& o) { o << zoo_markdown(res.rows, p.name); });
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::string zoo_csv(const std::vector<ZooRow>& rows) {
  std::string s =
      "name,label,plan,plan_map,heads,kv_heads,head_dim,layers,kv_layers,kv_bytes_per_token,"
      "parameters,steps,train_tokens,train_passes,val_loss,val_ppl,val_step,train_tokens_per_s,"
      "train_seconds,prefill_passes,passes_converged,passkey_full,passkey_evict,passkey_length,"
      "evict_budget\n";
  auto q = [](const std::string& t) {
    if (t.find_first_of(",\"") == std::string::npos) return t;
    std::string o = "\"";
    for (char c : t) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
  };
  for (const ZooRow& r : rows) {
    s += q(r.name) + "," + q(r.label) + "," + q(r.plan) + "," + r.plan_map + "," +
         std::to_string(r.heads) + "," + std::to_string(r.kv_heads) + "," +
         std::to_string(r.head_dim) + "," + std::to_string(r.layers) + "," +
         std::to_string(r.kv_layers) + "," + std::to_string(r.kv_bytes_per_token) + "," +
         std::to_string(r.parameters) + "," + std::to_string(r.steps) + "," +
         std::to_string(r.train_tokens) + "," + q(r.train_passes) + "," + cell(r.val_loss, "%.6f") +
         "," + cell(r.val_ppl, "%.4f") + "," + std::to_string(r.val_step) + "," +
         fmt(r.train_tokens_per_s, "%.0f") + "," + fmt(r.train_seconds, "%.1f") + "," +
         std::to_string(r.prefill_passes) + "," + (r.passes_converged ? "true" : "false") + "," +
         cell(r.passkey_full, "%.4f") + "," + cell(r.passkey_evict, "%.4f") + "," +
         std::to_string(r.passkey_length) + "," + std::to_string(r.evict_budget) + "\n";
  }
  return s;
}

std::string zoo_markdown(const std::vector<ZooRow>& rows, const std::string& preset) {
  std::string s;
  if (rows.empty()) return "No zoo entry is measured yet.\n";
  const ZooRow& f = rows.front();
  s += "Preset `" + preset + "`, " + std::to_string(f.steps) + " steps (" +
       std::to_string(f.train_tokens) + " training tokens) per entry, f32.";
  if (f.passkey_length > 0) {
    s += " Passkey: share of the key's tokens predicted on prompts of " +
         std::to_string(f.passkey_length) + " context tokens, with the full cache and with " +
         "StreamingLLM keeping " + std::to_string(f.evict_budget) + " tokens per bank (" +
         std::to_string(kStreamingSinks) + " sinks + the most recent).";
  }
  s += "\n\n";
  s += "| entry | plan | heads × head_dim (KV heads) | KV layers | KV bytes/token (f32) | "
       "parameters | val loss | val ppl | train tok/s | prefill passes | passkey full | "
       "passkey evicting |\n";
  s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  auto pct = [](double v) { return v < 0 ? std::string("n/a") : fmt(v, "%.2f"); };
  for (const ZooRow& r : rows) {
    std::string plan = "`" + r.plan + "`";
    if (!r.train_passes.empty()) plan += " (trained " + r.train_passes + ")";
    s += "| " + r.label + " | " + plan + " | " + std::to_string(r.heads) + " × " +
         std::to_string(r.head_dim) + " (" + std::to_string(r.kv_heads) + ") | " +
         std::to_string(r.kv_layers) + " of " + std::to_string(r.layers) + " | " +
         std::to_string(r.kv_bytes_per_token) + " | " + std::to_string(r.parameters) + " | " +
         fmt(r.val_loss, "%.4f") + " | " + fmt(r.val_ppl, "%.2f") + " | " +
         fmt(r.train_tokens_per_s, "%.0f") + " | " + std::to_string(r.prefill_passes) +
         (r.passes_converged ? "" : "+") + " | " + pct(r.passkey_full) + " | " +
         pct(r.passkey_evict) + " |\n";
  }
  return s;
}

}  // namespace kvlab
