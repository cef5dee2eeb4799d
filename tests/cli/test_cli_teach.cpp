// What a class notices first (issue 17): sane random weights, trace-prefill stopping once every
// token is exact, init and convert refusing to overwrite, exit status 2 for usage errors with the
// error on a line of its own, and eval showing its examples and the plan it ran.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/formats/npy.hpp"
#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class Teach : public ScratchDirTest {
 protected:
  Teach() : ScratchDirTest("kvlab_cli_teach_") {}
};

// The number after `key` in `text` (-1 when absent).
double number_after(const std::string& text, const std::string& key) {
  const auto at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size()));
}

}  // namespace

// init draws N(0, 0.02²) weights (residual projections / sqrt(2L)): an untrained stories15m
// predicts nearly uniformly, so its perplexity is near the vocabulary (32000), not 1e106, and its
// logits are small (std-1.0 embeddings tied to the classifier used to give |logit| ~ 270).
TEST_F(Teach, InitDrawsSmallWeightsSoPerplexityIsNearTheVocabulary) {
  const RunResult init = run_kvlab("init --model stories15m --seed 1 -o " + path("m"));
  ASSERT_EQ(init.status, 0) << init.output;
  std::string text;
  for (int i = 0; i < 8; ++i) text += "Once upon a time there was a little robot who liked books. ";
  std::ofstream(path("story.txt")) << text;
  const RunResult ppl =
      run_kvlab("ppl --model " + path("m") + " --text-file " + path("story.txt") + " --context 64");
  ASSERT_EQ(ppl.status, 0) << ppl.output;
  const double p = number_after(ppl.output, "perplexity ");
  ASSERT_TRUE(std::isfinite(p)) << ppl.output;
  EXPECT_GT(p, 32000 / 10.0) << ppl.output;
  EXPECT_LT(p, 32000 * 10.0) << ppl.output;

  const RunResult fwd = run_kvlab("forward --model " + path("m") +
                                  " --tokens 1,72,105,33,256,4000,31999 --out " + path("l.npy"));
  ASSERT_EQ(fwd.status, 0) << fwd.output;
  const kvlab::NpyArray logits = kvlab::read_npy(path("l.npy"));
  ASSERT_EQ(logits.shape, (std::vector<int64_t>{7, 32000}));
  double worst = 0;
  for (double v : logits.values) worst = std::max(worst, std::abs(v));
  // A tied classifier of std 0.02 over a state of RMS 1 (C = 288): other tokens' logits are
  // ~ N(0, (0.02 · sqrt(288))²) = N(0, 0.34²), the input token's own row about C · 0.02 = 5.8.
  // The old N(0, 1) init gave ~ 270.
  EXPECT_LT(worst, 10.0);
  EXPECT_GT(worst, 0.0);
}

// A 3-token prompt is exact after 3 passes: trace-prefill stops there and says so; --passes is an
// upper bound (2 passes run 2); --token-by-token is not one of its options.
TEST_F(Teach, TracePrefillStopsWhenEveryTokenIsExact) {
  const RunResult init =
      run_kvlab("init --model stories15m --plan lckv:2 --seed 1 -o " + path("m"));
  ASSERT_EQ(init.status, 0) << init.output;
  const std::string base = "trace-prefill --model " + path("m") + " --tokens 1,72,105";
  const RunResult r = run_kvlab(base + " --exact");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("passes run per block: 3 (at most 9)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stopped early after 3 of at most 9 passes"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("every token is exact"), std::string::npos) << r.output;

  const RunResult j = run_kvlab(base + " --json");
  ASSERT_EQ(j.status, 0) << j.output;
  const json t = json::parse(j.output);
  EXPECT_EQ(t["passes_run"], json::array({3}));
  EXPECT_EQ(t["pass_limit"], 9);
  EXPECT_EQ(t["stopped_when_exact"], json::array({true}));
  ASSERT_FALSE(t["passes"].empty());
  EXPECT_EQ(t["passes"].back()["pass"], 3);
  EXPECT_EQ(t["passes"].back()["tokens_exact"], 3);

  const RunResult two = run_kvlab(base + " --passes 2 --json");
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_EQ(json::parse(two.output)["passes_run"], json::array({2}));
  EXPECT_EQ(json::parse(two.output)["stopped_when_exact"], json::array({false}));

  const RunResult tbt = run_kvlab(base + " --token-by-token");
  EXPECT_EQ(tbt.status, 2) << tbt.output;
  EXPECT_NE(tbt.output.find("--token-by-token"), std::string::npos) << tbt.output;
  EXPECT_EQ(run_kvlab("trace-prefill --help").output.find("--token-by-token"), std::string::npos);
}

// One rule for the commands that write a model: an existing -o is refused unless --force.
TEST_F(Teach, InitAndConvertRefuseAnExistingOutputUnlessForced) {
  ASSERT_EQ(run_kvlab("init --model stories15m --seed 1 -o " + path("m")).status, 0);
  const std::string weights = read_file(dir_ / "m" / "model.safetensors");
  const RunResult again = run_kvlab("init --model stories15m --seed 2 -o " + path("m"));
  EXPECT_EQ(again.status, 2) << again.output;
  EXPECT_NE(again.output.find("-o = " + path("m") + " is invalid: already exists (give --force"),
            std::string::npos)
      << again.output;
  EXPECT_EQ(read_file(dir_ / "m" / "model.safetensors"), weights) << "refused, yet changed";
  const RunResult forced = run_kvlab("init --model stories15m --seed 2 --force -o " + path("m"));
  ASSERT_EQ(forced.status, 0) << forced.output;
  EXPECT_NE(read_file(dir_ / "m" / "model.safetensors"), weights) << "--force did not replace";

  // --force never deletes a directory that is not a checkpoint.
  fs::create_directories(dir_ / "notes");
  std::ofstream(dir_ / "notes" / "todo.txt") << "keep me\n";
  const RunResult notes = run_kvlab("init --model stories15m --force -o " + path("notes"));
  EXPECT_EQ(notes.status, 2) << notes.output;
  EXPECT_NE(notes.output.find("holds no checkpoint"), std::string::npos) << notes.output;
  EXPECT_TRUE(fs::exists(dir_ / "notes" / "todo.txt"));

  ASSERT_EQ(run_kvlab("convert --model " + path("m") + " --to hf -o " + path("hf")).status, 0);
  const RunResult conv = run_kvlab("convert --model " + path("m") + " --to hf -o " + path("hf"));
  EXPECT_EQ(conv.status, 2) << conv.output;
  EXPECT_NE(conv.output.find("already exists (give --force"), std::string::npos) << conv.output;
  const RunResult conv_forced =
      run_kvlab("convert --model " + path("m") + " --to kvlab --force -o " + path("hf"));
  EXPECT_EQ(conv_forced.status, 0) << conv_forced.output;
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

// CLI11's usage errors are one line and exit 2 like every other bad input (not 106, 109); --help
// still exits 0.
TEST(TeachErrors, UsageErrorsExitTwo) {
  for (const char* args : {"plan standard --layers 4 --no-such-flag", "plan standard --layers x",
                           "generate --prompt hi", "no-such-command", "init --seed"}) {
    const RunResult r = run_kvlab(args);
    EXPECT_EQ(r.status, 2) << "kvlab " << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("kvlab: error: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  EXPECT_EQ(run_kvlab("generate --help").status, 0);
  EXPECT_EQ(run_kvlab("--version").status, 0);
}

// generate echoes the prompt before it runs: an error after that starts a line of its own.
TEST_F(Teach, AnErrorAfterTheEchoedPromptStartsItsOwnLine) {
  ASSERT_EQ(run_kvlab("init --model stories15m --seed 1 -o " + path("m")).status, 0);
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "hi there ";
  const RunResult r = run_kvlab("generate --model " + path("m") + " --context 16 --prompt '" +
                                prompt + "' --max-new 2");
  EXPECT_EQ(r.status, 2) << r.output;
  const auto at = r.output.find("kvlab: error: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_TRUE(at == 0 || r.output[at - 1] == '\n') << r.output;
}

// eval --show N prints N examples (prompt, expected and produced answer) and the plan it ran.
TEST_F(Teach, EvalShowsExamplesAndThePlan) {
  ASSERT_EQ(run_kvlab("init --model stories15m --plan cla:2 --seed 3 -o " + path("m")).status, 0);
  const std::string base = "eval --model " + path("m") + " --task passkey --length 200 --n 3";
  const RunResult r = run_kvlab(base + " --show 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("plan cla:2 (0_0_2_2_4_4)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("example 1: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("example 2: "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("example 3: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  prompt:   "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" bytes ...] "), std::string::npos) << "a long prompt is shortened";
  EXPECT_NE(r.output.find("What is the pass key? The pass key is"), std::string::npos)
      << "the prompt's end is kept";
  EXPECT_NE(r.output.find("  expected: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  produced: "), std::string::npos) << r.output;

  const RunResult j = run_kvlab(base + " --show 1 --json");
  ASSERT_EQ(j.status, 0) << j.output;
  const json e = json::parse(j.output);
  EXPECT_EQ(e["plan"], "cla:2");
  EXPECT_EQ(e["map"], "0_0_2_2_4_4");
  ASSERT_EQ(e["examples"].size(), 1u);
  const json& ex = e["examples"][0];
  EXPECT_EQ(ex["expected"].size(), ex["produced"].size());
  EXPECT_FALSE(ex["expected"].empty());
  EXPECT_NE(ex["prompt"].get<std::string>().find("The pass key is"), std::string::npos);
  int right = 0;
  for (std::size_t i = 0; i < ex["expected"].size(); ++i)
    right += ex["expected"][i] == ex["produced"][i];
  EXPECT_EQ(ex["correct"], right);

  const RunResult many = run_kvlab(base + " --show 4");
  EXPECT_EQ(many.status, 2) << many.output;
  EXPECT_NE(many.output.find("--show = 4 is invalid"), std::string::npos) << many.output;
}
