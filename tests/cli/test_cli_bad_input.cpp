// The bad-input matrix (docs/bad-input.md): one row per rejected input, across every command.
// Each row must end with exit status 2, exactly one line of output that names the field and the
// value (the row's expected substring), and, for rows that write a file, no file left behind:
// neither the path nor any `<path>.tmp.*`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Row {
  const char* args;      // after `kvlab`; {D} is the fixture directory
  const char* expected;  // substring of the one error line; {D} likewise
  const char* out;       // the output path the command was asked to write ("" if none)
};

// {D}/s: a 4-layer checkpoint (GQA 4/2, vocab 300, context 64); the broken copies beside it.
const Row kRows[] = {
    // plan
    {"plan 0_0_1_3 --layers 4", "kv(2) = 1 is invalid: layer 1 is not a KV layer", ""},
    {"plan 0_1_9_3 --layers 4", "kv(2) = 9 is invalid: must be a layer index in [0, 3]", ""},
    {"plan clx:2 --layers 4", "plan = clx:2 is invalid: unknown generator", ""},
    {"plan standard --model tinyllama-1.1b --kv-heads 5",
     "--kv-heads = 5 is invalid: must divide the model's num_attention_heads = 32", ""},
    {"plan standard --layers 4 --prompt -1", "--prompt = -1 is invalid", ""},
    {"plan standard --config {D}/badjson/config.json",
     "--config = {D}/badjson/config.json is invalid: is not valid JSON", ""},
    // simulate
    {"simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt 128 --gen 16 --reserve nan",
     "--reserve = nan is invalid", ""},
    {"simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt 0 --gen 16",
     "--prompt = 0 is invalid", ""},
    {"simulate --model llama-2-7b --plan cla:2 --gpu h200 --prompt 128 --gen 16 --m -1",
     "--m = -1 is invalid", ""},
    {"simulate --model {D}/badjson/config.json --plan cla:2 --gpu h200 --prompt 8 --gen 4",
     "= {D}/badjson/config.json is invalid: is not valid JSON", ""},
    // init
    {"init --config {D}/badjson/config.json -o {D}/out_init",
     "--config = {D}/badjson/config.json is invalid: is not valid JSON", "{D}/out_init"},
    {"init --config {D}/cfg.json --vocab-size 100 -o {D}/out_init", "vocab_size = 100 is invalid",
     "{D}/out_init"},
    {"init --model stories15m --plan cla:0 -o {D}/out_init", "plan = cla:0 is invalid",
     "{D}/out_init"},
    {"init --model stories15m --seed -1 -o {D}/out_init", "--seed = -1 is invalid", "{D}/out_init"},
    {"init --config {D}/cfg.json -o {D}/text.txt/out", "-o = {D}/text.txt/out is invalid",
     "{D}/text.txt/out"},
    {"init --config {D}/cfg.json -o {D}/s",
     "-o = {D}/s is invalid: already exists (give --force to replace it)", ""},
    {"init --config {D}/cfg.json --force -o {D}/trained",
     "-o = {D}/trained is invalid: is a directory that holds no checkpoint", ""},
    // forward: broken files
    {"forward --model {D}/trunc --tokens 1,2,3 --out {D}/o.npy", "is the file truncated?",
     "{D}/o.npy"},
    {"forward --model {D}/dtype --tokens 1,2,3 --out {D}/o.npy",
     "tensor 'model.norm.weight' dtype = \"I32\" is invalid", "{D}/o.npy"},
    {"forward --model {D}/shape --tokens 1,2,3 --out {D}/o.npy",
     "model.layers.0.mlp.gate_proj.weight.shape = [96, 64] is invalid: config.json implies "
     "[128, 64]",
     "{D}/o.npy"},
    {"forward --model {D}/badjson --tokens 1,2,3 --out {D}/o.npy",
     "config.json = (not JSON) is invalid", "{D}/o.npy"},
    {"forward --model {D}/s --tokenizer {D}/tok.bin --prompt hello --out {D}/o.npy",
     "--tokenizer = {D}/tok.bin is invalid: has 320 tokens, more than the model's vocab_size = 300",
     "{D}/o.npy"},
    // forward: flags
    {"forward --model {D}/s --tokens 1,2,3 --backend tpu --out {D}/o.npy",
     "--backend = tpu is invalid: must be cpu or cuda", "{D}/o.npy"},
    {"generate --model {D}/s --prompt hi --backend CPU", "--backend = CPU is invalid", ""},
    {"forward --model {D}/s --tokens 1,2,300 --out {D}/o.npy",
     "--tokens = 300 is invalid: token ids must be in [0, 300)", "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --plan lckv:1 --passes 3 --converge 0.01 --out "
     "{D}/o.npy",
     "--passes/--converge/--token-by-token = (several) is invalid", "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --plan lckv:1 --converge nan --out {D}/o.npy",
     "--converge = nan is invalid", "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --threads 0 --out {D}/o.npy", "--threads = 0 is invalid",
     "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --precision f16 --out {D}/o.npy",
     "--precision = f16 is invalid", "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --plan cla:0 --out {D}/o.npy", "plan = cla:0 is invalid",
     "{D}/o.npy"},
    {"forward --model {D}/s --tokens 1,2,3 --out {D}/nodir/o.npy",
     "output file = {D}/nodir/o.npy is invalid", "{D}/nodir/o.npy"},
    // generate
    {"generate --model {D}/s --prompt hi --max-new -1", "--max-new = -1 is invalid", ""},
    {"generate --model {D}/s --prompt hi --temperature nan", "--temperature = nan is invalid", ""},
    {"generate --model {D}/s --prompt hi --top-p 0", "--top-p = 0", ""},
    {"generate --model {D}/s --prompt hi --policy h2o --telemetry {D}/t.jsonl",
     "--budget = (none) is invalid: h2o evicts down to a budget", "{D}/t.jsonl"},
    {"generate --model {D}/s --prompt hi --policy window:8 --budget 4 --telemetry {D}/t.jsonl",
     "--budget = 4 is invalid: window:8 already sets the budget", "{D}/t.jsonl"},
    {"generate --model {D}/s --prompt hi --policy window --budget 100",
     "--budget = 100 tokens is invalid: must be at most the context, 64 tokens", ""},
    {"generate --model {D}/s --prompt hi --policy streaming:4 --budget 4",
     "--budget = 4 is invalid: must exceed the 4 sinks", ""},
    {"generate --model {D}/s --prompt hi --policy window:0", "window:W = 0 is invalid", ""},
    {"generate --model {D}/s --prompt hi --context 1000", "--context = 1000 is invalid", ""},
    {"generate --model {D}/s --prompt hi --passes -2 --plan lckv:1", "--passes = -2 is invalid",
     ""},
    {"generate --model {D}/s --prompt hi --telemetry {D}/nodir/t.jsonl",
     "--telemetry = {D}/nodir/t.jsonl is invalid", "{D}/nodir/t.jsonl"},
    // ppl
    {"ppl --model {D}/s --text-file {D}/nope.txt", "--text-file = {D}/nope.txt is invalid", ""},
    {"ppl --model {D}/s --text-file {D}/text.txt --context 1", "--context = 1 is invalid", ""},
    {"ppl --model {D}/trunc --text-file {D}/text.txt", "is the file truncated?", ""},
    // bench
    {"bench decode --model {D}/s --repeat 0", "--repeat = 0 is invalid", ""},
    {"bench decode --model {D}/s --tokens -3", "--tokens = -3 is invalid", ""},
    {"bench decode --model {D}/s --context -1", "--context = -1 is invalid", ""},
    {"bench warp --model {D}/s", "mode = warp is invalid", ""},
    {"bench prefill --model {D}/s --context 100000", "--context = 100000 is invalid", ""},
    // trace-prefill
    {"trace-prefill --model {D}/s", "--prompt/--tokens/--text-file = (none) is invalid", ""},
    {"trace-prefill --model {D}/s --tokens 1,x,3", "--tokens = x is invalid", ""},
    {"trace-prefill --model {D}/s --tokens 1,2,3 --plan lckv:1 --converge 2", "--converge = 2", ""},
    // squeeze
    {"squeeze --model {D}/s --prompt hi --f0 0.5 --f3 0.1 --policy window:8",
     "--policy = window:8 is invalid: SqueezeAttention sets each bank's budget", ""},
    {"squeeze --model {D}/s --prompt hi --f0 nan --f3 0.1", "--f0 = nan is invalid", ""},
    {"squeeze --model {D}/s --prompt hi --f0 0.5 --f3 0.1 --p 0.2", "--f3/--p = (both) is invalid",
     ""},
    {"squeeze --model {D}/s --prompt hi --f0 0.5 --p -1", "--p = -1 is invalid", ""},
    {"squeeze --model {D}/s --prompt hi --f0 0.5 --f3 0.1 --policy full",
     "--policy = full is invalid", ""},
    {"squeeze --model {D}/s --text-file {D}/text.txt --f0 0.5 --f3 0.1",
     "prompt = 721 tokens is invalid: the sequence may hold at most 64 tokens", ""},
    // eval
    {"eval --model {D}/s --task passkey --length 1000", "--length = 1000 is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --policy h2o", "--budget = (none) is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --policy window:8 --squeeze 0.4,0.1",
     "--policy = window:8 is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --policy h2o --budget nan",
     "--budget = nan is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --n 0", "--n = 0 is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --queries 100",
     "--pairs/--queries = 16/100 is invalid", ""},
    {"eval --model {D}/s --task ppl", "--text-file = (none) is invalid", ""},
    {"eval --model {D}/s --task chess", "--task = chess is invalid", ""},
    {"eval --model {D}/s --task mqar --length 40 --n 2 --show 3",
     "--show = 3 is invalid: must be in [0, --n = 2]", ""},
    // sweep
    {"sweep --model {D}/s --task mqar --length 40 --n 1 --policies window,lru --budgets 50% "
     "--out {D}/sw.csv",
     "--policy = lru is invalid", "{D}/sw.csv"},
    {"sweep --model {D}/s --task mqar --length 40 --n 1 --budgets 50%,nan --out {D}/sw.csv",
     "--budget = nan is invalid", "{D}/sw.csv"},
    {"sweep --model {D}/s --budgets 50% --length 1000 --out {D}/sw.csv",
     "--length = 1000 is invalid", "{D}/sw.csv"},
    {"sweep --model {D}/s --task mqar --length 40 --n 1 --budgets 50% --out {D}/nodir/sw.csv",
     "--out = {D}/nodir/sw.csv is invalid: its directory {D}/nodir does not exist",
     "{D}/nodir/sw.csv"},
    // grad
    {"grad --model {D}/s --tokens 1,2,3", "--out = (none) is invalid", ""},
    {"grad --model {D}/s --tokens 1,2,300 --out {D}/g.safetensors",
     "--tokens = 300 is invalid: token ids must be in [0, 300)", "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 7 --out {D}/g.safetensors",
     "--tokens = 1 tokens is invalid: the loss needs at least 2", "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 1,2,3 --train-passes 3 --out {D}/g.safetensors",
     "--train-passes = 3 is invalid: give m,b", "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 1,2,3 --train-passes 0,0 --out {D}/g.safetensors",
     "--train-passes = 0,0 is invalid: b (passes with gradient) must be >= 1", "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 1,2,3 --train-passes -1,2 --out {D}/g.safetensors",
     "--train-passes = -1,2 is invalid: m (passes without gradient) must be >= 0",
     "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 1,2,3 --kv-loss -0.5 --out {D}/g.safetensors",
     "--kv-loss = -0.5 is invalid: must be a finite number >= 0", "{D}/g.safetensors"},
    {"grad --model {D}/c --tokens 1,2,3 --plan standard --out {D}/g.safetensors",
     "--plan = 0_1_2_3 is invalid: layer 1 would be a KV layer but the checkpoint has no W_K/W_V",
     "{D}/g.safetensors"},
    {"grad --model {D}/s --tokens 1,2,3 --out {D}/nodir/g.safetensors",
     "{D}/nodir/g.safetensors is invalid", "{D}/nodir/g.safetensors"},
    // convert
    {"convert --model {D}/s --to onnx -o {D}/conv", "--to = onnx is invalid", "{D}/conv"},
    {"convert --model {D}/trunc --to hf -o {D}/conv", "is the file truncated?", "{D}/conv"},
    {"convert --model {D}/s --to hf --plan cla:3x -o {D}/conv", "plan = cla:3x is invalid",
     "{D}/conv"},
    {"convert --model {D}/s --to hf -o {D}/nodir/conv",
     "-o = {D}/nodir/conv is invalid: its directory {D}/nodir does not exist", "{D}/nodir/conv"},
    {"convert --model {D}/s --to hf -o {D}/text.txt/conv", "-o = {D}/text.txt/conv is invalid",
     "{D}/text.txt/conv"},
    {"convert --model {D}/s --to hf -o {D}/c",
     "-o = {D}/c is invalid: already exists (give --force to replace it)", ""},
    // train ({D}/trained: a 1-step micro run on {D}/para.txt; {D}/hi.txt: one short line)
    {"train --preset huge --plan standard --tokenizer byte -o {D}/tr",
     "--preset = huge is invalid: must be one of tiny, small", "{D}/tr"},
    {"train --preset micro --plan 0_0_1 --tokenizer byte --text-file {D}/para.txt -o {D}/tr",
     "--plan = 0_0_1 is invalid: does not fit preset micro (2 layers)", "{D}/tr"},
    {"train --preset micro --plan standard --steps 3 --tokens 100 --tokenizer byte --text-file "
     "{D}/para.txt -o {D}/tr",
     "--steps/--tokens = (both) is invalid", "{D}/tr"},
    {"train --preset micro --plan standard --tokenizer byte --text-file {D}/hi.txt -o {D}/tr",
     "has 11 tokens, fewer than one row of seq_len + 1 = 17", "{D}/tr"},
    {"train --preset micro --plan standard --tokenizer byte --text-file {D}/none.txt -o {D}/tr",
     "--text-file = {D}/none.txt is invalid", "{D}/tr"},
    {"train --preset micro --plan standard --kv-heads 3 --tokenizer byte --text-file "
     "{D}/para.txt -o {D}/tr",
     "--kv-heads = 3 is invalid: must divide the preset's num_attention_heads = 2", "{D}/tr"},
    {"train --preset micro --plan standard --train-passes 7 --tokenizer byte --text-file "
     "{D}/para.txt -o {D}/tr",
     "--train-passes = 7 is invalid", "{D}/tr"},
    {"train --preset micro --plan standard --precision f16 --tokenizer byte -o {D}/tr",
     "--precision = f16 is invalid", "{D}/tr"},
    {"train --preset micro --plan standard --tokenizer {D}/tok.bin --text-file {D}/para.txt -o "
     "{D}/tr",
     "--tokenizer = {D}/tok.bin is invalid: must be byte or a Hugging Face tokenizer.json",
     "{D}/tr"},
    {"train --preset micro --plan standard --tokenizer byte --text-file {D}/para.txt -o "
     "{D}/trained",
     "-o = {D}/trained is invalid: already holds a training run", ""},
    {"train --resume {D}/trained --plan cla:2 -o {D}/trained",
     "--resume = {D}/trained is invalid: was trained with --plan standard (0_1), not cla:2 (0_0)",
     ""},
    {"train --resume {D}/trained --preset tiny -o {D}/trained",
     "was trained with --preset micro, not tiny", ""},
    {"train --resume {D}/trained --precision f64 -o {D}/trained",
     "was trained with --precision f32, not f64", ""},
    {"train --resume {D}/s -o {D}/tr", "--resume = {D}/s is invalid: holds no training checkpoint",
     "{D}/tr"},
    // corpus
    {"corpus --fortunes-dir {D}/nodir", "--fortunes-dir = {D}/nodir is invalid: is not a directory",
     ""},
    {"corpus --text-file {D}/nope.txt", "--text-file = {D}/nope.txt is invalid", ""},
    {"corpus --text-file {D}/art.txt", "--text-file = {D}/art.txt is invalid: has no usable text",
     ""},
    {"corpus --text-file {D}/text.txt --val-fraction 0", "--val-fraction = 0 is invalid", ""},
    {"corpus --text-file {D}/text.txt --recall-fraction 1", "--recall-fraction = 1 is invalid", ""},
    {"corpus --text-file {D}/text.txt --seq-len 0", "--seq-len = 0 is invalid", ""},
    {"corpus --text-file {D}/text.txt --seq-len 1000",
     "--seq-len = 1000 is invalid: the training text of {D}/text.txt has", ""},
    {"corpus --text-file {D}/text.txt --seq-len 40 --recall-fraction 0.5",
     "--seq-len = 40 is invalid: too short for a passkey example", ""},
    {"corpus --text-file {D}/text.txt --tokenizer {D}/nope.json", "--tokenizer = {D}/nope.json",
     ""},
    {"corpus --text-file {D}/text.txt --dump-text {D}/nodir/t.txt",
     "--dump-text = {D}/nodir/t.txt is invalid", "{D}/nodir/t.txt"},
    // viz: rejected before any window opens (no display needed)
    {"viz --model {D}/s --size 10x10", "--size = 10x10 is invalid: at least 200x150", ""},
    {"viz --model {D}/s --size big", "--size = big is invalid: WIDTHxHEIGHT", ""},
    {"viz --model {D}/s --script {D}/none.txt", "--script = {D}/none.txt is invalid", ""},
    {"viz --model {D}/s --squeeze 0.4", "--squeeze = 0.4 is invalid", ""},
    {"viz --model {D}/s --screenshot {D}/nodir/v.png",
     "--screenshot = {D}/nodir/v.png is invalid: its directory {D}/nodir does not exist",
     "{D}/nodir/v.png"},
};

std::string subst(std::string s, const std::string& dir) {
  for (size_t at; (at = s.find("{D}")) != std::string::npos;) s.replace(at, 3, dir);
  return s;
}

void copy_checkpoint(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json");
  fs::copy_file(from / "model.safetensors", to / "model.safetensors");
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvlab_bad_input_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "cfg.json") << json{
        {"hidden_size", 64},
        {"num_hidden_layers", 4},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"intermediate_size", 96},
        {"vocab_size", 300},
        {"max_position_embeddings", 64},
        {"rope_theta", 10000.0},
        {"rms_norm_eps", 1e-5},
        {"tie_word_embeddings", false}}.dump();
    const fs::path s = dir_ / "s";
    const RunResult r =
        run_kvlab("init --config " + (dir_ / "cfg.json").string() + " --seed 1 -o " + s.string());
    ASSERT_EQ(r.status, 0) << r.output;
    // A CLA checkpoint: layers 1 and 3 have no W_K, W_V.
    const RunResult rc = run_kvlab("init --config " + (dir_ / "cfg.json").string() +
                                   " --seed 1 --plan cla:2 -o " + (dir_ / "c").string());
    ASSERT_EQ(rc.status, 0) << rc.output;
    const std::string weights = read_file(s / "model.safetensors");
    // A safetensors file cut in half.
    copy_checkpoint(s, dir_ / "trunc");
    std::ofstream(dir_ / "trunc" / "model.safetensors", std::ios::binary)
        << weights.substr(0, weights.size() / 2);
    // model.norm.weight declared I32 (the header rewritten in place, padded to its length).
    copy_checkpoint(s, dir_ / "dtype");
    {
      std::uint64_t n = 0;
      std::memcpy(&n, weights.data(), 8);
      json h = json::parse(weights.substr(8, n));
      h["model.norm.weight"]["dtype"] = "I32";
      std::string nh = h.dump();
      ASSERT_LE(nh.size(), n);
      nh.resize(n, ' ');
      std::string bytes = weights;
      bytes.replace(8, n, nh);
      std::ofstream(dir_ / "dtype" / "model.safetensors", std::ios::binary) << bytes;
    }
    // config.json whose intermediate_size disagrees with the tensors' shapes.
    copy_checkpoint(s, dir_ / "shape");
    {
      json c = json::parse(read_file(s / "config.json"));
      c["intermediate_size"] = 128;
      std::ofstream(dir_ / "shape" / "config.json") << c.dump(2);
    }
    // A config.json that is not JSON.
    copy_checkpoint(s, dir_ / "badjson");
    std::ofstream(dir_ / "badjson" / "config.json") << "{\"hidden_size\": 64, ";
    // A tokenizer of 320 tokens for a model of 300.
    write_llama2c_tokenizer(dir_ / "tok.bin", 60);
    std::string text;
    for (int i = 0; i < 20; ++i) text += "Once upon a time there was a robot. ";
    std::ofstream(dir_ / "text.txt") << text;
    // Paragraphs for `train` (a 1-step run in {D}/trained), and a text too short for one row.
    {
      std::ofstream para(dir_ / "para.txt");
      const char* words[] = {"the", "robot", "read", "a", "book", "about", "stars", "and", "sea"};
      for (int p = 0; p < 100; ++p) {
        for (int i = 0; i < 8 + p % 11; ++i) para << (i ? " " : "") << words[(p * 7 + i * 3) % 9];
        para << ".\n\n";
      }
    }
    std::ofstream(dir_ / "hi.txt") << "Hi there.\n";
    const RunResult t = run_kvlab(
        "train --preset micro --plan standard --tokenizer byte --steps 1 "
        "--text-file " +
        (dir_ / "para.txt").string() + " -o " + (dir_ / "trained").string());
    ASSERT_EQ(t.status, 0) << t.output;
    // A text file that is only a picture: no usable document (kvlab corpus).
    std::ofstream(dir_ / "art.txt") << "  /\\_/\\\n ( o.o )\n  > ^ <\n\n#####\n";
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(BadInput, EveryRowIsOneNamedErrorAndLeavesNoFile) {
  ASSERT_GE(std::size(kRows), 40u);
  const std::string d = dir_.string();
  for (const Row& row : kRows) {
    const std::string args = subst(row.args, d);
    const std::string expected = subst(row.expected, d);
    const RunResult r = run_kvlab(args);
    SCOPED_TRACE("kvlab " + args + "\n---\n" + r.output + "---");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.output.find(expected), std::string::npos) << "expected: " << expected;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "want exactly one line";
    EXPECT_EQ(r.output.rfind("kvlab: error: ", 0), 0u);
    if (*row.out != '\0') {
      const fs::path out = subst(row.out, d);
      EXPECT_FALSE(fs::exists(out)) << out;
      std::error_code ec;
      if (fs::is_directory(out.parent_path(), ec)) {
        for (const auto& e : fs::directory_iterator(out.parent_path())) {
          EXPECT_NE(e.path().filename().string().rfind(out.filename().string() + ".tmp.", 0), 0u)
              << "left behind: " << e.path();
        }
      }
    }
  }
}

// --backend cuda names why it cannot run here (a build without CUDA, no device, float64), or runs.
TEST_F(BadInput, CudaBackendSaysWhyItCannotRun) {
  const std::string d = dir_.string();
  const RunResult f64 =
      run_kvlab("forward --model " + d + "/s --tokens 1,2,3 --backend cuda --precision f64 --out " +
                d + "/cuda64.npy");
  SCOPED_TRACE(f64.output);
  EXPECT_EQ(f64.status, 2);
  EXPECT_NE(f64.output.find("--backend = cuda is invalid: "), std::string::npos);
  EXPECT_TRUE(f64.output.find("computes in float32") != std::string::npos ||
              f64.output.find("built without the CUDA backend") != std::string::npos);
  EXPECT_FALSE(fs::exists(d + "/cuda64.npy"));

  const RunResult f32 = run_kvlab("forward --model " + d +
                                  "/s --tokens 1,2,3 --backend cuda --out " + d + "/cuda32.npy");
  SCOPED_TRACE(f32.output);
  if (f32.status == 0) {  // a machine with a GPU: it ran (tests/gpu compares its numbers)
    EXPECT_TRUE(fs::exists(d + "/cuda32.npy"));
    return;
  }
  EXPECT_EQ(f32.status, 2);
  EXPECT_EQ(std::count(f32.output.begin(), f32.output.end(), '\n'), 1) << "want exactly one line";
  EXPECT_NE(f32.output.find("--backend = cuda is invalid: "), std::string::npos);
  EXPECT_TRUE(f32.output.find("no CUDA device: ") != std::string::npos ||
              f32.output.find("built without the CUDA backend") != std::string::npos);
  EXPECT_FALSE(fs::exists(d + "/cuda32.npy"));
}
