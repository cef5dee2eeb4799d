// The commands that run a model (init, generate, forward, ppl, bench) end to end, as a user would:
// each test in a fresh temporary directory with a tiny checkpoint. Every class of bad input gives
// exit status 2, a message naming the field and the value, and no output file (nor a temporary
// sibling of one) left behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/formats/npy.hpp"
#include "core/formats/safetensors.hpp"
#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// 4 layers, 4 heads of 16, 2 KV heads: with plan cla:2 the KV layers are 0 and 2, and a token
// holds 2 KV layers x (K, V) x 2 heads x 16 dims x 4 bytes = 512 bytes.
const json kTinyConfig = {{"hidden_size", 64},
                          {"num_hidden_layers", 4},
                          {"num_attention_heads", 4},
                          {"num_key_value_heads", 2},
                          {"intermediate_size", 96},
                          {"vocab_size", 300},
                          {"max_position_embeddings", 64},
                          {"rope_theta", 10000.0},
                          {"rms_norm_eps", 1e-5}};

std::string q(const fs::path& p) {
  return shell_quote(p.string());
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << p;
}

json read_json(const fs::path& p) {
  return json::parse(read_file(p));
}
void write_json(const fs::path& p, const json& j) {
  write_file(p, j.dump(2) + "\n");
}

// Stdout alone (the timing line on stderr differs from run to run).
std::string run_stdout(const std::string& args, int* status) {
  const std::string cmd = std::string(KVLAB_BINARY) + " " + args + " 2>/dev/null";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Neither `path` nor a temporary sibling `<name>.tmp.*` exists.
void expect_no_partial(const fs::path& path) {
  std::error_code ec;
  EXPECT_FALSE(fs::exists(path, ec)) << path << " was left behind";
  const fs::path parent = path.parent_path();
  if (!fs::is_directory(parent, ec)) return;
  const std::string prefix = path.filename().string() + ".tmp.";
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    EXPECT_NE(e.path().filename().string().rfind(prefix, 0), 0u)
        << e.path() << ": a temporary file was left behind";
  }
}

// Exit status 2 (a kvlab::Error, reported by main), every fragment in the message, no outputs.
void expect_rejected(const std::string& args, std::initializer_list<std::string> fragments,
                     std::initializer_list<fs::path> outputs = {}) {
  const RunResult r = run_kvlab(args);
  EXPECT_EQ(r.status, 2) << "kvlab " << args << "\n" << r.output;
  EXPECT_NE(r.output.find("kvlab: error: "), std::string::npos) << r.output;
  for (const auto& f : fragments) {
    EXPECT_NE(r.output.find(f), std::string::npos) << "kvlab " << args << "\n---\n"
                                                   << r.output << "---\nexpected: " << f;
  }
  for (const auto& p : outputs) expect_no_partial(p);
}

// Overwrites element `index` of the F32 tensor `name` in a safetensors file, in place.
void patch_f32(const fs::path& file, const std::string& name, std::int64_t index, float value) {
  std::string bytes = read_file(file);
  ASSERT_GE(bytes.size(), 8u);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const json header = json::parse(bytes.substr(8, n));
  ASSERT_TRUE(header.contains(name)) << name;
  ASSERT_EQ(header[name]["dtype"], "F32");
  const std::uint64_t begin = header[name]["data_offsets"][0];
  const std::uint64_t end = header[name]["data_offsets"][1];
  const std::uint64_t at = 8 + n + begin + 4 * static_cast<std::uint64_t>(index);
  ASSERT_LE(at + 4, 8 + n + end);
  std::memcpy(&bytes[at], &value, 4);
  write_file(file, bytes);
}

class CliRun : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kvlab_cli_" + std::to_string(::getpid()) + "_" +
                                        t->test_suite_name() + "_" + t->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_json(dir_ / "tiny.json", kTinyConfig);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path path(const std::string& name) const { return dir_ / name; }

  // `kvlab init` of the tiny config under `plan` into dir_/name.
  fs::path init(const std::string& plan = "standard", const std::string& name = "ckpt") {
    const fs::path out = path(name);
    const RunResult r = run_kvlab("init --config " + q(path("tiny.json")) + " --plan " + plan +
                                  " --seed 7 -o " + q(out));
    EXPECT_EQ(r.status, 0) << r.output;
    return out;
  }

  // A checkpoint that every loading command must reject with `fragments`.
  void expect_unloadable(const fs::path& ckpt, std::initializer_list<std::string> fragments) {
    const fs::path npy = path("logits.npy"), tele = path("t.jsonl");
    const fs::path text = path("text.txt");
    write_file(text, "some text to score");
    expect_rejected("forward --model " + q(ckpt) + " --tokens 1,2,3 --out " + q(npy), fragments,
                    {npy});
    expect_rejected(
        "forward --model " + q(ckpt) + " --tokens 1,2,3 --precision f64 --out " + q(npy), fragments,
        {npy});
    expect_rejected(
        "generate --model " + q(ckpt) + " --prompt hi --max-new 2 --telemetry " + q(tele),
        fragments, {tele});
    expect_rejected("ppl --model " + q(ckpt) + " --text-file " + q(text) + " --context 8",
                    fragments);
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_F(CliRun, TruncatedSafetensors) {
  const fs::path ck = init();
  const fs::path st = ck / "model.safetensors";
  fs::resize_file(st, fs::file_size(st) / 2);
  expect_unloadable(ck, {"model.safetensors", "data_offsets", "truncated"});
}

TEST_F(CliRun, CorruptSafetensorsHeader) {
  const fs::path ck = init();
  const fs::path st = ck / "model.safetensors";
  std::string bytes = read_file(st);
  bytes.replace(8, 12, "#garbage!@#$");
  write_file(st, bytes);
  expect_unloadable(ck, {"model.safetensors: header = ", "must be valid JSON"});
  // A header length past the end of the file.
  bytes[7] = '\x7f';
  write_file(st, bytes);
  expect_unloadable(ck, {"model.safetensors", "header"});
  // Shorter than the 8-byte length field.
  write_file(st, "abc");
  expect_unloadable(ck, {"model.safetensors"});
}

TEST_F(CliRun, ConfigShapesDisagreeWithWeights) {
  const fs::path ck = init();
  json cfg = read_json(ck / "config.json");
  json j = cfg;
  j["intermediate_size"] = 128;
  write_json(ck / "config.json", j);
  expect_unloadable(ck, {"model.layers.0.mlp.gate_proj.weight.shape = [96, 64] is invalid",
                         "config.json implies [128, 64]"});
  j = cfg;
  j["hidden_size"] = 128;
  j["head_dim"] = 32;
  write_json(ck / "config.json", j);
  expect_unloadable(ck, {"model.embed_tokens.weight.shape = [300, 64] is invalid",
                         "config.json implies [300, 128]"});
  j = cfg;
  j["vocab_size"] = 320;
  write_json(ck / "config.json", j);
  expect_unloadable(ck, {"model.embed_tokens.weight.shape = [300, 64]", "[320, 64]"});
  // A config that is not a valid model at all names its own field.
  j = cfg;
  j["hidden_size"] = 128;  // head_dim 16 x 4 heads != 128
  write_json(ck / "config.json", j);
  expect_unloadable(ck, {"config.json", "head_dim = 16"});
  write_file(ck / "config.json", "{not json");
  expect_unloadable(ck, {"config.json", "(not JSON)"});
}

TEST_F(CliRun, MissingTensor) {
  // Initialised under cla:2 (layers 1 and 3 have no k_proj/v_proj), then relabelled standard.
  const fs::path ck = init("cla:2");
  json cfg = read_json(ck / "config.json");
  cfg["kvlab"]["plan"] = "standard";
  write_json(ck / "config.json", cfg);
  expect_unloadable(ck, {"tensor = model.layers.1.self_attn.k_proj.weight is invalid: is missing"});
}

TEST_F(CliRun, UnexpectedTensor) {
  // The other way round: a standard checkpoint relabelled cla:2 has k_proj where none belongs.
  const fs::path ck = init("standard");
  json cfg = read_json(ck / "config.json");
  cfg["kvlab"]["plan"] = "cla:2";
  write_json(ck / "config.json", cfg);
  expect_unloadable(ck, {"tensor = model.layers.1.self_attn.k_proj.weight", "not part of"});
}

TEST_F(CliRun, NanWeights) {
  const fs::path ck = init();
  patch_f32(ck / "model.safetensors", "model.norm.weight", 3,
            std::numeric_limits<float>::quiet_NaN());
  expect_unloadable(ck,
                    {"model.norm.weight = element 3 = nan is invalid", "weights must be finite"});
  const fs::path ck2 = init("standard", "ckpt2");
  patch_f32(ck2 / "model.safetensors", "model.layers.2.self_attn.q_proj.weight", 100,
            std::numeric_limits<float>::infinity());
  expect_unloadable(ck2, {"model.layers.2.self_attn.q_proj.weight = element 100 = inf",
                          "weights must be finite"});
}

TEST_F(CliRun, TokenIdsOutsideTheVocabulary) {
  const fs::path ck = init();
  const fs::path npy = path("x.npy");
  const std::string base = "forward --model " + q(ck) + " --out " + q(npy) + " --tokens ";
  expect_rejected(base + "1,2,300", {"--tokens = 300 is invalid: token ids must be in [0, 300)"},
                  {npy});
  expect_rejected(base + "1,2,-5", {"--tokens = -5 is invalid", "[0, 300)"}, {npy});
  expect_rejected(base + "99999999999999999999", {"--tokens = 99999999999999999999"}, {npy});
}

TEST_F(CliRun, MalformedTokenList) {
  const fs::path ck = init();
  const fs::path npy = path("x.npy");
  const std::string base = "forward --model " + q(ck) + " --out " + q(npy) + " --tokens ";
  expect_rejected(base + "1,,2", {"--tokens = \"1,,2\" is invalid: item 2 is empty"}, {npy});
  expect_rejected(base + "1,x", {"--tokens = x is invalid: item 2 is not an integer"}, {npy});
  expect_rejected(base + "'1 2'", {"--tokens = 1 2 is invalid: item 1 is not an integer"}, {npy});
  expect_rejected(base + "' , '", {"--tokens", "is empty"}, {npy});
  expect_rejected("forward --model " + q(ck) + " --out " + q(npy),
                  {"--prompt/--tokens = (none)", "give exactly one of"}, {npy});
  expect_rejected("forward --model " + q(ck) + " --out " + q(npy) + " --tokens 1 --prompt hi",
                  {"--prompt/--tokens = (both)"}, {npy});
}

TEST_F(CliRun, PromptLongerThanTheContext) {
  const fs::path ck = init("cla:2");
  const fs::path tele = path("t.jsonl"), npy = path("x.npy");
  // 20 bytes + BOS = 21 tokens into a context of 8.
  expect_rejected("generate --model " + q(ck) +
                      " --context 8 --prompt abcdefghijklmnopqrst --telemetry " + q(tele),
                  {"prompt = 21 tokens is invalid", "at most 8 tokens (the context)"}, {tele});
  // 65 tokens; max_position_embeddings is 64.
  std::string toks;
  for (int i = 0; i < 65; ++i) toks += (i ? "," : "") + std::to_string(i + 1);
  expect_rejected("forward --model " + q(ck) + " --tokens " + toks + " --out " + q(npy),
                  {"prompt = 65 tokens is invalid", "at most 64 tokens"}, {npy});
  // Exactly the context is fine.
  toks = toks.substr(0, toks.rfind(','));
  const RunResult ok =
      run_kvlab("forward --model " + q(ck) + " --tokens " + toks + " --out " + q(npy));
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(kvlab::read_npy(npy.string()).shape, (std::vector<int64_t>{64, 300}));
  // A context the model cannot hold (and that must not be allocated) is rejected up front.
  for (const char* c : {"65", "16777216", "-3"}) {
    expect_rejected(
        "generate --model " + q(ck) + " --prompt hi --context " + c + " --telemetry " + q(tele),
        {std::string("--context = ") + c + " is invalid"}, {tele});
  }
  const fs::path text = path("text.txt");
  write_file(text, "hello there");
  expect_rejected("ppl --model " + q(ck) + " --text-file " + q(text) + " --context 65",
                  {"--context = 65 is invalid", "max_position_embeddings"});
}

TEST_F(CliRun, UnwritableOutputPath) {
  const fs::path ck = init();
  expect_rejected("forward --model " + q(ck) + " --tokens 1,2 --out /proc/kvlab_nope/x.npy",
                  {"/proc/kvlab_nope/x.npy is invalid", "cannot create"},
                  {"/proc/kvlab_nope/x.npy"});
  expect_rejected("init --config " + q(path("tiny.json")) + " -o /proc/kvlab_nope",
                  {"-o = /proc/kvlab_nope is invalid", "cannot create the output directory"},
                  {"/proc/kvlab_nope"});
  expect_rejected("generate --model " + q(ck) + " --prompt hi --telemetry /proc/kvlab_nope/t.jsonl",
                  {"--telemetry = /proc/kvlab_nope/t.jsonl is invalid", "cannot open"},
                  {"/proc/kvlab_nope/t.jsonl"});
  // An existing directory in the way of the output file: the rename fails, the temporary goes.
  const fs::path in_the_way = path("in_the_way.npy");
  fs::create_directories(in_the_way / "child");
  const RunResult r =
      run_kvlab("forward --model " + q(ck) + " --tokens 1,2 --out " + q(in_the_way));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(in_the_way.string() + " is invalid"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_directory(in_the_way / "child"));
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  // A file where init wants a directory.
  write_file(path("a_file"), "x");
  expect_rejected("init --config " + q(path("tiny.json")) + " -o " + q(path("a_file")),
                  {"-o = " + path("a_file").string() + " is invalid"});
}

TEST_F(CliRun, BadFlags) {
  const fs::path ck = init("cla:2");
  const fs::path tele = path("t.jsonl"), npy = path("x.npy");
  const std::string gen = "generate --model " + q(ck) + " --prompt hi --telemetry " + q(tele) + " ";
  expect_rejected(gen + "--temperature -1", {"--temperature = -1", "must be in [0, 100]"}, {tele});
  expect_rejected(gen + "--top-p 0", {"--top-p = 0", "must be in (0, 1]"}, {tele});
  expect_rejected(gen + "--top-p 1.5", {"--top-p = 1.5"}, {tele});
  expect_rejected(gen + "--max-new -1", {"--max-new = -1"}, {tele});
  expect_rejected(gen + "--seed -2", {"--seed = -2"}, {tele});
  expect_rejected(gen + "--threads 0", {"--threads = 0 is invalid: must be in [1, 256]"}, {tele});
  // The checkpoint has W_K/W_V only for layers 0 and 2.
  expect_rejected(
      gen + "--plan standard",
      {"--plan = 0_1_2_3 is invalid: layer 1 would be a KV layer", "checkpoint has no W_K/W_V"},
      {tele});
  expect_rejected(gen + "--plan clx:2", {"plan = clx:2 is invalid: unknown generator"}, {tele});
  expect_rejected(gen + "--plan cla:2:3", {"plan = cla:2:3 is invalid"}, {tele});
  expect_rejected(gen + "--plan 0_0_2", {"plan = 0_0_2 is invalid", "the model has 4 layers"},
                  {tele});

  const std::string fwd = "forward --model " + q(ck) + " --tokens 1,2 --out " + q(npy) + " ";
  expect_rejected(fwd + "--precision f16", {"--precision = f16 is invalid: must be f32 or f64"},
                  {npy});
  expect_rejected(fwd + "--threads 0", {"--threads = 0"}, {npy});
  expect_rejected(fwd + "--plan standard", {"layer 1 would be a KV layer"}, {npy});
  expect_rejected(fwd + "--plan nope", {"plan = nope is invalid"}, {npy});

  const fs::path text = path("text.txt");
  write_file(text, "hello there");
  const std::string ppl = "ppl --model " + q(ck) + " --text-file " + q(text) + " ";
  expect_rejected(ppl + "--context 1", {"--context = 1 is invalid"});
  expect_rejected(ppl + "--threads 0", {"--threads = 0"});
  expect_rejected("ppl --model " + q(ck) + " --text-file " + q(path("absent.txt")),
                  {"--text-file = " + path("absent.txt").string() + " is invalid"});

  expect_rejected("bench nope --model stories15m", {"mode = nope is invalid"});
  expect_rejected("bench decode --model stories15m --threads 0", {"--threads = 0"});
  expect_rejected("bench decode --model stories15m --repeat 0", {"--repeat = 0"});
  expect_rejected("bench prefill --model stories15m --context 0", {"--context = 0"});
  expect_rejected("bench decode --model gpt-9", {"--model = gpt-9 is invalid: unknown preset"});
  expect_rejected("bench decode --model stories15m --plan clx:2", {"plan = clx:2 is invalid"});

  const fs::path out = path("new_ckpt");
  const std::string init_base = "init --config " + q(path("tiny.json")) + " -o " + q(out) + " ";
  expect_rejected(init_base + "--plan clx:2", {"plan = clx:2 is invalid"}, {out});
  expect_rejected(init_base + "--seed -1", {"--seed = -1"}, {out});
  expect_rejected(init_base + "--vocab-size 100", {"vocab_size = 100 is invalid", "258"}, {out});
  expect_rejected("init --model stories15m --config " + q(path("tiny.json")) + " -o " + q(out),
                  {"--model/--config = (both)"}, {out});
  expect_rejected("generate --model " + q(path("absent")) + " --prompt hi",
                  {"--model = " + path("absent").string() + " is invalid"});
}

// ---------------------------------------------------------------------------------------------
// What works

TEST_F(CliRun, InitThenGreedyGenerateIsDeterministic) {
  const fs::path ck = init();
  EXPECT_TRUE(fs::is_regular_file(ck / "config.json"));
  EXPECT_TRUE(fs::is_regular_file(ck / "model.safetensors"));
  const json cfg = read_json(ck / "config.json");
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["kvlab"]["tokenizer"], "byte");
  const std::string args = "generate --model " + q(ck) + " --prompt 'Once upon' --max-new 12";
  int s1 = -1, s2 = -1;
  const std::string a = run_stdout(args, &s1);
  const std::string b = run_stdout(args, &s2);
  EXPECT_EQ(s1, 0);
  EXPECT_EQ(s2, 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.rfind("Once upon", 0), 0u) << a;
  EXPECT_GT(a.size(), std::string("Once upon\n").size()) << a;
  // Same seed, same samples; the checkpoint's seed makes the weights.
  const std::string sampled = "generate --model " + q(ck) +
                              " --prompt 'Once upon' --max-new 12 --temperature 0.8 --top-p 0.9 "
                              "--seed 3";
  EXPECT_EQ(run_stdout(sampled, &s1), run_stdout(sampled, &s2));
  EXPECT_EQ(s1, 0);
  EXPECT_EQ(s2, 0);
}

TEST_F(CliRun, GenerateWithIdsPastTheTokenizer) {
  // vocab_size 300 > the byte tokenizer's 258: ids 258..299 have no text and print as <id>.
  const fs::path ck = init();
  int status = -1;
  const std::string out = run_stdout(
      "generate --model " + q(ck) + " --prompt hi --max-new 40 --temperature 1 --seed 1", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("<2"), std::string::npos) << out;
}

TEST_F(CliRun, TelemetryJsonLines) {
  const fs::path ck = init("cla:2");
  const fs::path tele = path("t.jsonl");
  const RunResult r =
      run_kvlab("generate --model " + q(ck) + " --prompt hello --max-new 5 --telemetry " + q(tele));
  ASSERT_EQ(r.status, 0) << r.output;
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  std::istringstream lines(read_file(tele));
  const std::set<std::string> kv_fields = {"event",  "step",   "phase",       "layer",
                                           "bank",   "writes", "tokens_held", "bytes_held",
                                           "budget", "evicted"};
  const std::set<std::string> step_fields = {"event",
                                             "step",
                                             "phase",
                                             "tokens_in_step",
                                             "position",
                                             "kv_bytes_held",
                                             "kv_bytes_allocated",
                                             "h2o_score_bytes"};
  const int map[4] = {0, 0, 2, 2};                 // cla:2 on 4 layers
  const std::int64_t bank_bytes = 2 * 2 * 16 * 4;  // per token per bank: (K, V) x H_kv x D x f32
  const std::int64_t per_token = 2 * bank_bytes;   // 2 KV layers
  std::vector<json> kv_events, steps;
  std::string line;
  int expected_step = 0;
  std::int64_t tokens_so_far = 0;
  while (std::getline(lines, line)) {
    const json j = json::parse(line);  // throws (and fails the test) on a bad line
    ASSERT_TRUE(j.is_object()) << line;
    std::set<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
    if (j["event"] == "kv_step") {
      EXPECT_EQ(keys, kv_fields) << line;
      for (const char* k :
           {"step", "layer", "bank", "tokens_held", "bytes_held", "budget", "evicted"}) {
        EXPECT_TRUE(j[k].is_number_integer()) << k << ": " << line;
      }
      EXPECT_TRUE(j["phase"].is_string()) << line;
      EXPECT_TRUE(j["writes"].is_boolean()) << line;
      kv_events.push_back(j);
    } else {
      ASSERT_EQ(j["event"], "step") << line;
      EXPECT_EQ(keys, step_fields) << line;
      for (const char* k :
           {"step", "tokens_in_step", "position", "kv_bytes_held", "kv_bytes_allocated"}) {
        EXPECT_TRUE(j[k].is_number_integer()) << k << ": " << line;
      }
      // One kv_step per layer, layers in order, then the step's summary.
      EXPECT_EQ(j["step"], expected_step);
      EXPECT_EQ(j["phase"], expected_step == 0 ? "prefill" : "decode");
      ASSERT_EQ(kv_events.size(), 4u * (expected_step + 1)) << line;
      tokens_so_far += j["tokens_in_step"].get<std::int64_t>();
      EXPECT_EQ(j["position"].get<std::int64_t>(), tokens_so_far - 1);
      EXPECT_EQ(j["kv_bytes_held"].get<std::int64_t>(), tokens_so_far * per_token);
      EXPECT_EQ(j["kv_bytes_allocated"].get<std::int64_t>(), 64 * per_token);
      for (int l = 0; l < 4; ++l) {
        const json& e = kv_events[4 * expected_step + l];
        EXPECT_EQ(e["step"], expected_step);
        EXPECT_EQ(e["phase"], j["phase"]);
        EXPECT_EQ(e["layer"], l);
        EXPECT_EQ(e["bank"], map[l]);
        EXPECT_EQ(e["writes"], map[l] == l);
        EXPECT_EQ(e["tokens_held"].get<std::int64_t>(), tokens_so_far);
        EXPECT_EQ(e["bytes_held"].get<std::int64_t>(), tokens_so_far * bank_bytes);
        EXPECT_EQ(e["budget"], 64);
        EXPECT_EQ(e["evicted"], 0);
      }
      steps.push_back(j);
      ++expected_step;
    }
  }
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front()["tokens_in_step"], 6);  // BOS + "hello"
  EXPECT_LE(steps.size(), 5u);                    // the prefill, then one step per token fed back
  const json& last = steps.back();
  const std::int64_t tokens = last["position"].get<std::int64_t>() + 1;
  EXPECT_EQ(tokens, 6 + static_cast<std::int64_t>(steps.size()) - 1);
  EXPECT_EQ(last["kv_bytes_held"].get<std::int64_t>(), tokens * 2 * 2 * 2 * 16 * 4);
  EXPECT_EQ(kv_events.size(), 4 * steps.size());
}

TEST_F(CliRun, ForwardWritesFiniteLogits) {
  const fs::path ck = init("cla:2");
  const fs::path f32 = path("l32.npy"), f64 = path("l64.npy");
  RunResult r = run_kvlab("forward --model " + q(ck) + " --prompt hello --out " + q(f32));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_kvlab("forward --model " + q(ck) + " --prompt hello --precision f64 --out " + q(f64));
  ASSERT_EQ(r.status, 0) << r.output;
  const kvlab::NpyArray a = kvlab::read_npy(f32.string());
  const kvlab::NpyArray b = kvlab::read_npy(f64.string());
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(b.descr, "<f8");
  ASSERT_EQ(a.shape, (std::vector<int64_t>{6, 300}));  // [T, V]: BOS + 5 bytes
  ASSERT_EQ(b.shape, a.shape);
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < a.values.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a.values[i])) << i;
    ASSERT_TRUE(std::isfinite(b.values[i])) << i;
    max_abs = std::max(max_abs, std::abs(b.values[i]));
    max_diff = std::max(max_diff, std::abs(a.values[i] - b.values[i]));
  }
  EXPECT_GT(max_abs, 0.0);
  EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_abs));
  // --tokens gives the same rows as the prompt's bytes (BOS = 256).
  const fs::path t = path("lt.npy");
  r = run_kvlab("forward --model " + q(ck) + " --tokens 256,104,101,108,108,111 --out " + q(t));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(kvlab::read_npy(t.string()).values, a.values);
}

TEST_F(CliRun, PerplexityIsFinite) {
  const fs::path ck = init();
  const fs::path text = path("text.txt");
  write_file(text, "Once upon a time there was a little robot who liked to count the stars.\n");
  const RunResult r =
      run_kvlab("ppl --model " + q(ck) + " --text-file " + q(text) + " --context 16");
  ASSERT_EQ(r.status, 0) << r.output;
  const size_t at = r.output.find("perplexity ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const double ppl = std::stod(r.output.substr(at + 11));
  EXPECT_TRUE(std::isfinite(ppl)) << r.output;
  EXPECT_GT(ppl, 1.0) << r.output;
  EXPECT_NE(r.output.find("72 tokens predicted, context 16"), std::string::npos) << r.output;
  // Without --context the window is 256 tokens, or the model's 64 positions when fewer.
  const RunResult d = run_kvlab("ppl --model " + q(ck) + " --text-file " + q(text));
  ASSERT_EQ(d.status, 0) << d.output;
  EXPECT_NE(d.output.find("72 tokens predicted, context 64"), std::string::npos) << d.output;
}

// kvlab grad: an F64 file with the run plan's tensors under Hugging Face names, the loss and the
// plan in its metadata, and the same bytes for any thread count.
TEST_F(CliRun, GradWritesTheRunPlansTensors) {
  const fs::path ck = init("standard");
  const fs::path g1 = path("g1.safetensors"), g2 = path("g2.safetensors");
  const std::string args = "grad --model " + q(ck) + " --tokens 5,17,3,250,9,9,41 --plan cla:2";
  const RunResult r = run_kvlab(args + " --out " + q(g1));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("6 predictions, plan 0_0_2_2, passes 1"), std::string::npos) << r.output;
  const RunResult r2 = run_kvlab(args + " --threads 2 --out " + q(g2));
  ASSERT_EQ(r2.status, 0) << r2.output;
  EXPECT_EQ(read_file(g1), read_file(g2));
  const kvlab::SafetensorsFile f = kvlab::open_safetensors(g1.string());
  EXPECT_EQ(f.names().size(), 1u + 4 * 7 + 2 * 2 + 2);  // embed, layers, 2 KV layers, norm, head
  EXPECT_TRUE(f.has("model.layers.2.self_attn.k_proj.weight"));
  EXPECT_FALSE(f.has("model.layers.1.self_attn.k_proj.weight"));
  EXPECT_EQ(f.dtype("lm_head.weight"), kvlab::TensorDtype::F64);
  EXPECT_EQ(f.shape("model.layers.3.mlp.down_proj.weight"), (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(f.metadata().at("plan"), "0_0_2_2");
  EXPECT_EQ(f.metadata().at("passes"), "1");
  const double loss = std::stod(f.metadata().at("loss"));
  EXPECT_NEAR(loss, std::log(300.0), 1.5) << "random weights: about log V";
  EXPECT_NE(r.output.find("loss "), std::string::npos);
  // LCKV's schedule and KV loss reach the metadata.
  const RunResult l = run_kvlab("grad --model " + q(ck) +
                                " --tokens 5,17,3,250,9,9,41 --plan lckv:2 --train-passes 3,2 "
                                "--kv-loss 0.5 --out " +
                                q(g1));
  ASSERT_EQ(l.status, 0) << l.output;
  const kvlab::SafetensorsFile fl = kvlab::open_safetensors(g1.string());
  EXPECT_EQ(fl.metadata().at("passes"), "3,2");
  EXPECT_GT(std::stod(fl.metadata().at("kv_loss")), 0.0);
}

TEST_F(CliRun, BenchJson) {
  for (const char* args : {"bench decode --model stories15m --tokens 2 --repeat 1 --json",
                           "bench prefill --model stories15m --context 16 --repeat 1 --json"}) {
    const RunResult r = run_kvlab(args);
    ASSERT_EQ(r.status, 0) << args << "\n" << r.output;
    const json j = json::parse(r.output);
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0) << r.output;
    EXPECT_EQ(j["model"], "stories15m");
    EXPECT_EQ(j["threads"], 1);
  }
}

}  // namespace
