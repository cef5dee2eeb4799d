// `kvlab train` end to end on the hidden `micro` preset (2 layers, C = 32, rows of 17 tokens) and a
// fixture text: the log and checkpoints a run writes, `generate` on its best checkpoint, and exact
// resume: in float64 a run stopped (--stop-at) or killed with SIGKILL at a random moment, then
// resumed, writes the same log and the same final weights, bit for bit, as one that never stopped.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvlab_train_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_micro_corpus(dir_ / "text.txt");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string base(const std::string& out) const {
    return "train --preset micro --tokenizer byte --text-file " + (dir_ / "text.txt").string() +
           " --threads 1 -o " + (dir_ / out).string();
  }
  fs::path dir_;
};

std::vector<json> read_log(const fs::path& p) {
  std::vector<json> v;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) v.push_back(json::parse(line));
  return v;
}

// The log less its wall-clock field, as text (doubles printed shortest-exact by nlohmann).
std::string deterministic_log(const fs::path& p) {
  std::string s;
  for (json j : read_log(p)) {
    j.erase("tokens_per_s");
    s += j.dump() + "\n";
  }
  return s;
}

void expect_same_run(const fs::path& a, const fs::path& b) {
  EXPECT_EQ(deterministic_log(a / "log.jsonl"), deterministic_log(b / "log.jsonl"));
  for (const char* ck : {"last", "best"}) {
    for (const char* f : {"model.safetensors", "train_state.safetensors", "config.json"}) {
      const std::string x = read_file(a / ck / f), y = read_file(b / ck / f);
      EXPECT_FALSE(x.empty()) << a / ck / f;
      EXPECT_TRUE(x == y) << ck << "/" << f << " differs";
    }
    json sa = json::parse(read_file(a / ck / "train_state.json"));
    json sb = json::parse(read_file(b / ck / "train_state.json"));
    sa.erase("log_bytes");  // the logs' tokens_per_s (wall clock) differ in length
    sb.erase("log_bytes");
    EXPECT_EQ(sa, sb) << ck << "/train_state.json";
  }
}

TEST_F(TrainCli, MicroRunWritesLogAndCheckpointsThatGenerate) {
  const fs::path run = dir_ / "run";
  const RunResult r = run_kvlab(base("run") + " --plan cla:2 --steps 6 --val-every 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("best val loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("KV 256 bytes per token (f32)"), std::string::npos) << r.output;
  const auto log = read_log(run / "log.jsonl");
  ASSERT_EQ(log.size(), 8u);  // 6 steps, 2 validations
  int steps = 0, vals = 0;
  for (const json& j : log) {
    if (j.contains("val_loss")) {
      ++vals;
      EXPECT_GT(j["val_loss"].get<double>(), 0);
      EXPECT_TRUE(j.contains("val_ppl"));
    } else {
      ++steps;
      EXPECT_EQ(j["step"], steps);
      for (const char* k : {"loss", "lr", "grad_norm", "tokens_per_s"})
        EXPECT_TRUE(j.contains(k)) << k;
    }
  }
  EXPECT_EQ(steps, 6);
  EXPECT_EQ(vals, 2);
  for (const char* ck : {"last", "best"}) {
    for (const char* f :
         {"config.json", "model.safetensors", "train_state.json", "train_state.safetensors"}) {
      EXPECT_TRUE(fs::exists(run / ck / f)) << ck << "/" << f;
    }
  }
  EXPECT_EQ(json::parse(read_file(run / "last" / "train_state.json"))["step"], 6);
  EXPECT_EQ(json::parse(read_file(run / "last" / "config.json"))["kvlab"]["plan"], "0_0");
  for (const auto& e : fs::directory_iterator(run)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  const RunResult g = run_kvlab("generate --model " + (run / "best").string() +
                                " --prompt 'once upon' --max-new 5");
  EXPECT_EQ(g.status, 0) << g.output;
  // The same run again into a directory that holds it: refused, nothing changed.
  const std::string before = read_file(run / "log.jsonl");
  const RunResult again = run_kvlab(base("run") + " --plan cla:2 --steps 6");
  EXPECT_EQ(again.status, 2) << again.output;
  EXPECT_NE(again.output.find("already holds a training run"), std::string::npos);
  EXPECT_EQ(read_file(run / "log.jsonl"), before);
}

TEST_F(TrainCli, TokenizerJsonTravelsWithTheCheckpoint) {
  const std::string tok = std::string(KVLAB_SOURCE_DIR) + "/models/tokenizer.json";
  const RunResult r =
      run_kvlab("train --preset micro --plan standard --tokenizer " + tok + " --text-file " +
                (dir_ / "text.txt").string() + " --steps 2 -o " + (dir_ / "run").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir_ / "run" / "best" / "tokenizer.json"), read_file(tok));
  EXPECT_EQ(json::parse(read_file(dir_ / "run" / "best" / "config.json"))["kvlab"]["tokenizer"],
            "tokenizer.json");
  const RunResult g = run_kvlab("generate --model " + (dir_ / "run" / "best").string() +
                                " --prompt 'once upon' --max-new 3");
  EXPECT_EQ(g.status, 0) << g.output;
}

TEST_F(TrainCli, StopAndResumeEqualsOneRunBitForBit) {
  for (const char* precision : {"f64", "f32"}) {
    SCOPED_TRACE(precision);
    const std::string p = precision;
    const std::string flags = " --plan 1_1 --train-passes 2,1 --precision " + p +
                              " --steps 12 --val-every 4 --checkpoint-every 3";
    ASSERT_EQ(run_kvlab(base("a" + p) + flags).status, 0);
    const RunResult s = run_kvlab(base("b" + p) + flags + " --stop-at 7");
    ASSERT_EQ(s.status, 0) << s.output;
    EXPECT_NE(s.output.find("stopped after 7/12 steps"), std::string::npos) << s.output;
    // Resumed into another directory (the log's head copied), then in place.
    const RunResult c = run_kvlab("train --resume " + (dir_ / ("b" + p)).string() + " -o " +
                                  (dir_ / ("c" + p)).string());
    ASSERT_EQ(c.status, 0) << c.output;
    const RunResult r = run_kvlab("train --resume " + (dir_ / ("b" + p)).string() +
                                  " --threads 2 -o " + (dir_ / ("b" + p)).string());
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("resumed after step 7"), std::string::npos) << r.output;
    expect_same_run(dir_ / ("a" + p), dir_ / ("b" + p));
    expect_same_run(dir_ / ("a" + p), dir_ / ("c" + p));
  }
}

// Kill -9 as soon as the first checkpoint exists (mid-run, possibly mid-checkpoint), resume, and
// compare with a run that was never interrupted.
TEST_F(TrainCli, SigkillAtAnyMomentResumesTheSameRunBitForBit) {
  const std::string flags =
      " --plan standard --precision f64 --steps 200 --val-every 50 "
      "--checkpoint-every 7";
  ASSERT_EQ(run_kvlab(base("a") + flags).status, 0);
  const std::string cmd = std::string(KVLAB_BINARY) + " " + base("b") + flags;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(dir_ / "b" / "last" / "train_state.json") &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  const bool killed = WIFSIGNALED(st);
  ASSERT_TRUE(fs::exists(dir_ / "b" / "last" / "train_state.json"));
  const auto at = json::parse(read_file(dir_ / "b" / "last" / "train_state.json"))["step"];
  const RunResult r = run_kvlab("train --resume " + (dir_ / "b").string() + " --threads 1 -o " +
                                (dir_ / "b").string());
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_run(dir_ / "a", dir_ / "b");
  EXPECT_TRUE(killed) << "the run finished before the kill: the test checked only a rerun";
  RecordProperty("killed_after_checkpoint_step", at.dump());
}

TEST_F(TrainCli, ResumeFromAnotherRunIsANamedError) {
  ASSERT_EQ(run_kvlab(base("a") + " --plan standard --steps 2").status, 0);
  struct Case {
    std::string flags, expected;
  };
  const Case cases[] = {
      {" --plan cla:2", "was trained with --plan standard (0_1), not cla:2 (0_0)"},
      {" --precision f64", "was trained with --precision f32, not f64"},
      {" --preset tiny", "was trained with --preset micro, not tiny"},
      {" --seed 9", "was trained with --seed 1, not 9"},
  };
  for (const Case& c : cases) {
    const RunResult r = run_kvlab("train --resume " + (dir_ / "a").string() + c.flags + " -o " +
                                  (dir_ / "a").string());
    EXPECT_EQ(r.status, 2) << c.flags << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << r.output;
  }
}

}  // namespace
