// kvlab dump and kvlab check (docs/crosscheck.md), and the worked example examples/crosscheck/:
// dumps are deterministic and agree with `kvlab forward`; check finds a one-element perturbation
// in a tensor of every kind, never reports one between identical dumps, and names bad input; the
// independent PyTorch implementation passes, and its planted bugs are pinpointed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "../cli/cli_files.hpp"
#include "../cli/run_kvlab.hpp"
#include "core/formats/npy.hpp"
#include "core/formats/safetensors.hpp"
#include "session/check.hpp"
#include "session/dump.hpp"

namespace fs = std::filesystem;
using kvlab::check_dumps;
using kvlab::CheckReport;
using kvlab::SafetensorsFile;

namespace {

// Ten tokens, three fixed LCKV passes, StreamingLLM with 2 sinks in a budget of 6, three decode
// steps: every kind of tensor appears (passes, targets, evictions after the prompt and each step).
const std::string kPrompt =
    " --model tiny-lckv2 --tokens 1,72,105,33,200,17,300,45,99,7 --passes 3";
const std::string kRun = kPrompt + " --policy streaming:2 --budget 6";

class Crosscheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("kvlab_crosscheck_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const RunResult r =
        run_kvlab("dump" + kRun + " --decode 3 --precision f64 --out " + file("ref.safetensors"));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string file(const std::string& name) { return (dir_ / name).string(); }
  static std::string ref() { return file("ref.safetensors"); }

  static CheckReport check(const std::string& got) {
    kvlab::CheckOptions o;
    o.ref = ref();
    o.got = got;
    return check_dumps(o);
  }
  static fs::path dir_;
};
fs::path Crosscheck::dir_;

// The byte offset of a tensor's element `i` in the file.
std::uint64_t element_offset(const SafetensorsFile& f, const std::string& name, std::int64_t i) {
  const std::string bytes = read_file(f.path());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return 8 + n + f.info(name).begin + 8 * static_cast<std::uint64_t>(i);
}

TEST_F(Crosscheck, DumpIsDeterministicAcrossRunsAndThreadCounts) {
  const std::string base = read_file(ref());
  ASSERT_GT(base.size(), 100000u);
  for (const std::string threads : {"1", "2"}) {
    const std::string out = file("again" + threads + ".safetensors");
    const RunResult r = run_kvlab("dump" + kRun + " --decode 3 --precision f64 --threads " +
                                  threads + " --out " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(read_file(out) == base) << "threads " << threads;
  }
}

TEST_F(Crosscheck, DumpAgreesWithForwardAndNamesEveryKind) {
  // Eviction comes after the prompt: the prefill logits are forward's, which takes no policy.
  const RunResult r = run_kvlab("forward" + kPrompt + " --precision f64 --out " + file("l.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  const kvlab::NpyArray npy = kvlab::read_npy(file("l.npy"));
  const SafetensorsFile f = kvlab::open_safetensors(ref());
  const std::vector<double> logits = f.read_f64("prefill.logits");
  ASSERT_EQ(f.shape("prefill.logits"), (std::vector<std::int64_t>{10, 1024}));
  ASSERT_EQ(npy.values.size(), logits.size());
  EXPECT_TRUE(npy.values == logits);  // the same bits

  // One documented name of each kind, with its shape (docs/crosscheck.md).
  using Shape = std::vector<std::int64_t>;
  const std::vector<std::pair<std::string, Shape>> expect = {
      {"inputs.tokens", {10}},
      {"prefill.embed", {10, 128}},
      {"prefill.layer0.attn.norm_in", {10, 128}},
      {"prefill.layer0.attn.k", {10, 4, 32}},
      {"prefill.pass3.layer1.attn.q", {10, 4, 32}},
      {"prefill.pass2.layer1.attn.probs", {4, 10, 10}},
      {"prefill.pass3.layer4.attn.read_positions", {4, 10}},
      {"prefill.pass1.bank4.target_k", {10, 4, 32}},
      {"prefill.layer5.mlp.resid", {10, 128}},
      {"prefill.bank4.kept_positions", {4, 6}},
      {"prefill.bank4.evicted_positions", {4, 4}},
      {"decode2.token", {1}},
      {"decode2.layer1.attn.scores", {4, 1, 6}},  // 6 cells before the new one
      {"decode2.layer4.attn.scores", {4, 1, 7}},  // the new cell appended first
      {"decode3.bank0.evicted_positions", {4, 1}},
      {"decode3.logits", {1, 1024}}};
  for (const auto& [name, shape] : expect) {
    ASSERT_TRUE(f.has(name)) << name;
    EXPECT_EQ(f.shape(name), shape) << name;
    EXPECT_FALSE(kvlab::dump_kind(name).empty()) << name;
  }
  EXPECT_EQ(f.read_i64("prefill.bank4.kept_positions")[0], 0);  // sinks 0, 1 and the last four
  EXPECT_EQ(f.read_i64("prefill.bank4.kept_positions")[2], 6);
  EXPECT_EQ(f.read_i64("decode3.bank0.evicted_positions")[0], 8);  // pos 12 came, 8 went
  for (const char* key : {"plan", "map", "policy", "budget", "model_hash", "precision",
                          "kvlab_version", "prompt_tokens", "schedule"}) {
    EXPECT_TRUE(f.metadata().count(key)) << key;
  }
  EXPECT_EQ(f.metadata().at("map"), "0_4_4_4_4_5");
  EXPECT_EQ(f.metadata().at("prompt_tokens"), "1,72,105,33,200,17,300,45,99,7");
  // --what and --layers keep what they name.
  const RunResult w =
      run_kvlab("dump" + kRun + " --what probs,cache --layers 1 --out " + file("some.safetensors"));
  ASSERT_EQ(w.status, 0) << w.output;
  const SafetensorsFile s = kvlab::open_safetensors(file("some.safetensors"));
  for (const std::string& n : s.names()) {
    const std::string kind = kvlab::dump_kind(n);
    EXPECT_TRUE(kind == "probs" || kind == "cache" || kind == "tokens") << n;
    if (kind == "probs") {
      EXPECT_NE(n.find(".layer1."), std::string::npos) << n;
    }
  }
  EXPECT_TRUE(s.has("prefill.pass3.layer1.attn.probs"));
}

TEST_F(Crosscheck, IdenticalDumpsNeverDiffer) {
  fs::copy_file(ref(), file("copy.safetensors"), fs::copy_options::overwrite_existing);
  const CheckReport r = check(file("copy.safetensors"));
  EXPECT_EQ(r.failed(), 0);
  EXPECT_GT(r.tensors.size(), 300u);
  for (const auto& t : r.tensors) EXPECT_EQ(t.max_abs, 0) << t.name;
  EXPECT_TRUE(r.only_in_ref.empty());
  EXPECT_TRUE(r.notes.empty());
  const RunResult cli = run_kvlab("check --ref " + ref() + " --got " + file("copy.safetensors"));
  EXPECT_EQ(cli.status, 0) << cli.output;
  EXPECT_NE(cli.output.find("0 out of tolerance"), std::string::npos) << cli.output;
}

TEST_F(Crosscheck, FindsOnePerturbedElementInATensorOfEveryKind) {
  const SafetensorsFile f = kvlab::open_safetensors(ref());
  const std::string bytes = read_file(ref());
  int kinds = 0;
  for (const std::string& kind : kvlab::dump_kinds()) {
    std::string name;
    for (const std::string& n : f.names()) {
      if (kvlab::dump_kind(n) == kind && f.info(n).numel() > 1) {
        name = n;
        break;
      }
    }
    ASSERT_FALSE(name.empty()) << kind;
    const bool integer = f.dtype(name) == kvlab::TensorDtype::I64;
    // The middle element, or the next finite one (scores are -inf outside the attention set).
    const std::int64_t numel = f.info(name).numel();
    std::int64_t i = numel / 2;
    const std::vector<double> values = integer ? std::vector<double>() : f.read_f64(name);
    while (!integer && !std::isfinite(values[i])) i = (i + 1) % numel;
    std::string changed = bytes;
    char* at = changed.data() + element_offset(f, name, i);
    if (integer) {
      std::int64_t v;
      std::memcpy(&v, at, 8);
      v += 1;
      std::memcpy(at, &v, 8);
    } else {
      double v;
      std::memcpy(&v, at, 8);
      v += 1e-6 * (1 + std::abs(v));
      std::memcpy(at, &v, 8);
    }
    const std::string got = file("perturbed.safetensors");
    std::ofstream(got, std::ios::binary) << changed;
    const CheckReport r = check(got);
    ASSERT_EQ(r.failed(), 1) << kind << ": " << name;
    const kvlab::TensorCheck* t = r.first_failure();
    EXPECT_EQ(t->name, name);
    EXPECT_EQ(t->bad, 1) << name;
    std::int64_t flat = 0;
    for (std::size_t d = 0; d < t->shape.size(); ++d) flat = flat * t->shape[d] + t->first_bad[d];
    EXPECT_EQ(flat, i) << name;
    ++kinds;
  }
  EXPECT_EQ(kinds, static_cast<int>(kvlab::dump_kinds().size()));
}

TEST_F(Crosscheck, CheckReportsPrecisionsAndExitCodes) {
  // An f32 dump against the f64 one: within the f32 tolerances, with a note.
  const std::string f32 = file("f32.safetensors");
  ASSERT_EQ(run_kvlab("dump" + kRun + " --decode 3 --precision f32 --out " + f32).status, 0);
  const RunResult ok = run_kvlab("check --ref " + ref() + " --got " + f32);
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("note: the reference was dumped in f64, the candidate in f32"),
            std::string::npos)
      << ok.output;
  // The same at f64-like tolerances fails: exit 1, the first difference named, as in --json.
  const std::string strict = " --rtol 1e-12 --atol 0";
  const RunResult js = run_kvlab("check --json --ref " + ref() + " --got " + f32 + strict);
  EXPECT_EQ(js.status, 1);
  const auto j = nlohmann::json::parse(js.output);
  EXPECT_FALSE(j["ok"].get<bool>());
  const std::string first = j["first_failure"];
  EXPECT_EQ(first.rfind("prefill.", 0), 0u) << first;  // the prefill differs first
  const RunResult bad = run_kvlab("check --ref " + ref() + " --got " + f32 + strict);
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("first difference (computation order): " + first + " "),
            std::string::npos)
      << bad.output;
  // A candidate with a subset: the rest is listed, not failed; --match narrows.
  const RunResult sub = run_kvlab("check --ref " + ref() + " --got " + f32 +
                                  " --match 'prefill.pass*.layer1.attn.probs'");
  EXPECT_EQ(sub.status, 0) << sub.output;
  EXPECT_NE(sub.output.find("compared 3 tensors"), std::string::npos) << sub.output;
}

TEST_F(Crosscheck, BadInputIsNamed) {
  // Another plan (a downward map of the same checkpoint's KV layers).
  const std::string plan = file("plan.safetensors");
  ASSERT_EQ(run_kvlab("dump --model tiny-lckv2 --plan 0_0_4_4_4_5 --tokens "
                      "1,72,105,33,200,17,300,45,99,7 --policy streaming:2 --budget 6 --out " +
                      plan)
                .status,
            0);
  RunResult r = run_kvlab("check --ref " + ref() + " --got " + plan);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("__metadata__ map = '0_0_4_4_4_5'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'0_4_4_4_4_5'"), std::string::npos) << r.output;
  // Another model.
  const std::string other = file("other.safetensors");
  ASSERT_EQ(run_kvlab("dump --model tiny-standard --tokens 1,72,105,33,200,17,300,45,99,7 "
                      "--policy streaming:2 --budget 6 --out " +
                      other)
                .status,
            0);
  r = run_kvlab("check --ref " + ref() + " --got " + other);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("__metadata__ model_hash"), std::string::npos) << r.output;
  // A truncated file.
  const std::string cut = file("cut.safetensors");
  const std::string bytes = read_file(ref());
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  r = run_kvlab("check --ref " + ref() + " --got " + cut);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(cut), std::string::npos) << r.output;
  // One name, another shape.
  const std::string shaped = file("shape.safetensors");
  const std::vector<double> probs(4 * 10 * 9, 0.0);
  kvlab::write_safetensors(
      shaped, {{"prefill.pass1.layer1.attn.probs", {4, 10, 9}, std::span<const double>(probs)}});
  r = run_kvlab("check --ref " + ref() + " --got " + shaped);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("tensor 'prefill.pass1.layer1.attn.probs' shape = [4, 10, 9]"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("[4, 10, 10]"), std::string::npos) << r.output;
  // A glob that selects nothing; dump's own flags.
  r = run_kvlab("check --ref " + ref() + " --got " + ref() + " --match 'nothing.*'");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--match = nothing.*"), std::string::npos) << r.output;
  r = run_kvlab("dump" + kRun + " --what probs,bogus --out " + file("x.safetensors"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--what = bogus"), std::string::npos) << r.output;
  r = run_kvlab("dump" + kRun + " --layers 6 --out " + file("x.safetensors"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--layers = 6"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(file("x.safetensors")));
}

// The worked example: an independent PyTorch implementation from the equations.
RunResult run_example(const std::string& out, const std::string& bug) {
  const std::string cmd = std::string(KVLAB_PYTHON) + " " + KVLAB_SOURCE_DIR +
                          "/examples/crosscheck/crosscheck.py --ref " +
                          (fs::temp_directory_path() /
                           ("kvlab_crosscheck_" + std::to_string(::getpid())) / "ref.safetensors")
                              .string() +
                          " --model " + KVLAB_SOURCE_DIR + "/models/tiny-lckv2 --out " + out +
                          " --bug " + bug + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST_F(Crosscheck, ExampleImplementationPasses) {
  const std::string mine = file("mine.safetensors");
  const RunResult py = run_example(mine, "none");
  ASSERT_EQ(py.status, 0) << py.output;
  const RunResult r = run_kvlab("check --ref " + ref() + " --got " + mine);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("0 out of tolerance"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("only in"), std::string::npos) << r.output;  // every tensor computed
}

TEST_F(Crosscheck, ExampleMissingDiagonalMaskIsPinpointed) {
  const std::string mine = file("nodiag.safetensors");
  ASSERT_EQ(run_example(mine, "no-diag-mask").status, 0);
  const RunResult r = run_kvlab("check --ref " + ref() + " --got " + mine);
  EXPECT_EQ(r.status, 1) << r.output;
  // The first upward reader, first pass, the first query on its own (zero) target key.
  EXPECT_NE(r.output.find("first difference (computation order): "
                          "prefill.pass1.layer1.attn.scores [4, 10, 10]\n  at [0, 0, 0] head 0, "
                          "row 0 (position 0), key 0 (position 0): ref -inf, got 0"),
            std::string::npos)
      << r.output;
}

TEST_F(Crosscheck, ExampleDecodeOffByOneIsPinpointed) {
  const std::string mine = file("offbyone.safetensors");
  ASSERT_EQ(run_example(mine, "decode-off-by-one").status, 0);
  const RunResult r = run_kvlab("check --ref " + ref() + " --got " + mine);
  EXPECT_EQ(r.status, 1) << r.output;
  // The prefill agrees; the first decode step's first upward reader does not.
  EXPECT_NE(r.output.find("first difference (computation order): "
                          "decode1.layer1.attn.scores [4, 1, 6]\n  at [0, 0, 0] head 0, "
                          "row 0 (position 10), key 0 (position 0)"),
            std::string::npos)
      << r.output;
}

}  // namespace
