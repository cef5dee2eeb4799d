// Issue 17, second part: one model form for every command, the memory estimate before random
// weights are drawn, no NaN from a degenerate model, one budget and Squeeze syntax, and sweep/eval
// output a class can keep (sweep --squeeze, --json, the plan's name; eval --out).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The shipped models (the source tree's models/).
const std::string kModels = std::string(KVLAB_SOURCE_DIR) + "/models";

class Teach2 : public ScratchDirTest {
 protected:
  Teach2() : ScratchDirTest("kvlab_cli_teach2_") {}
  // tiny-standard as a Hugging Face directory and as a llama2.c .bin.
  void convert_forms() {
    ASSERT_EQ(run_kvlab("convert --model tiny-standard --to hf -o " + path("hf")).status, 0);
    ASSERT_EQ(run_kvlab("convert --model tiny-standard --to llama2c -o " + path("m.bin")).status,
              0);
  }
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

// Every command that takes a model takes the same five forms: a built-in trained model's name, a
// kvlab directory, a Hugging Face directory, a llama2.c .bin (with --tokenizer for text) and a
// preset or config.json (random weights, said in a note).
TEST_F(Teach2, EveryCommandTakesEveryModelForm) {
  convert_forms();
  const std::string tok = " --tokenizer " + kModels + "/tokenizer.json";
  fs::copy_file(kModels + "/tiny-standard/config.json", path("config.json"));
  struct Form {
    std::string model, extra;
    bool random;
  };
  const std::vector<Form> forms = {{"tiny-standard", "", false},
                                   {kModels + "/tiny-standard", "", false},
                                   {path("hf"), "", false},
                                   {path("m.bin"), tok, false},
                                   {path("config.json"), "", true}};
  const std::string story = " --prompt 'Once upon a time there was a robot.'";
  const std::vector<std::string> text_commands = {
      "generate --max-new 2" + story,
      "forward --out " + path("f.npy") + story,
      "trace-prefill --plan lckv:2 --passes 2" + story,
      "squeeze --squeeze 0.5,0.2" + story,
      "eval --task mqar --n 1 --length 60",
      "sweep --task mqar --n 1 --length 60 --policies window --budgets 24",
      "bench decode --tokens 2 --repeat 1",
  };
  for (const Form& f : forms) {
    for (const std::string& c : text_commands) {
      const std::string cmd = c.substr(0, c.find(' ')), rest = c.substr(c.find(' '));
      const RunResult r = run_kvlab(cmd + " --model " + f.model + f.extra + rest);
      EXPECT_EQ(r.status, 0) << cmd << " --model " << f.model << ":\n" << r.output;
      if (cmd != "bench") {
        EXPECT_EQ(r.output.find("random weights") != std::string::npos, f.random)
            << cmd << " --model " << f.model << ":\n"
            << r.output;
      }
    }
    // Shape-only commands read the config (a .bin's header) and need no tokenizer.
    for (const std::string& c :
         {std::string("plan cla:2"), std::string("simulate --plan cla:2 --gpu h200 --prompt 64 "
                                                 "--gen 8")}) {
      const RunResult r = run_kvlab(c + " --model " + f.model);
      EXPECT_EQ(r.status, 0) << c << " --model " << f.model << ":\n" << r.output;
    }
  }
  // A preset is a shape: the run commands draw random weights, convert says in one line why it
  // cannot (there are no weights to convert).
  const RunResult g = run_kvlab("generate --model stories15m --max-new 1 --prompt hi");
  EXPECT_EQ(g.status, 0) << g.output;
  EXPECT_NE(g.output.find("random weights"), std::string::npos) << g.output;
  const RunResult c = run_kvlab("convert --model stories15m --to hf -o " + path("x"));
  EXPECT_EQ(c.status, 2);
  EXPECT_EQ(count_lines(c.output), 1) << c.output;
  EXPECT_NE(c.output.find("--model = stories15m is invalid: is a preset"), std::string::npos)
      << c.output;
  EXPECT_FALSE(fs::exists(path("x")));
}

// Random weights too large for this machine are refused before anything is allocated, with the
// estimate and the available memory (MemAvailable), for init and for any command's preset.
TEST_F(Teach2, RandomWeightsTooLargeForMemoryAreRefusedFirst) {
  const RunResult init = run_kvlab("init --model llama-2-70b -o " + path("big"));
  EXPECT_EQ(init.status, 2) << init.output;
  EXPECT_NE(init.output.find("--model = llama-2-70b is invalid: its random weights and their file "
                             "need"),
            std::string::npos)
      << init.output;
  EXPECT_NE(init.output.find("MemAvailable in /proc/meminfo"), std::string::npos) << init.output;
  EXPECT_FALSE(fs::exists(path("big")));
  const RunResult gen = run_kvlab("generate --model llama-2-70b --prompt hi --max-new 1");
  EXPECT_EQ(gen.status, 2) << gen.output;
  EXPECT_NE(gen.output.find("GiB"), std::string::npos) << gen.output;
  EXPECT_NE(gen.output.find("MemAvailable"), std::string::npos) << gen.output;
}

// A model whose first prompt token has a zero embedding row: cos(0, x) is 0/0 without the
// epsilon (torch's cosine_similarity clamps each norm to 1e-8). squeeze prints finite numbers.
TEST_F(Teach2, SqueezeOnAZeroEmbeddingRowPrintsNoNaN) {
  convert_forms();
  const int C = 128, row = 5;  // tiny-standard: hidden_size 128
  {
    std::fstream f(path("m.bin"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(28 + static_cast<std::streamoff>(row) * C * 4);
    const std::vector<float> zero(C, 0.0f);
    f.write(reinterpret_cast<const char*>(zero.data()), C * 4);
  }
  const RunResult r =
      run_kvlab("squeeze --model " + path("m.bin") + " --tokens 5,40,41,42,43,44,45,46,47,48,49" +
                " --squeeze 0.5,0.2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lower(r.output).find("nan"), std::string::npos) << r.output;
  const json j = json::parse(r.output);
  for (const auto& v : j["cos_sim"]) {
    EXPECT_TRUE(v.is_number());
    EXPECT_LE(std::abs(v.get<double>()), 1.0);
  }
  for (const auto& v : j["bank_importance"]) EXPECT_LE(std::abs(v.get<double>()), 2.0);
}

// One budget syntax: 64 is tokens, 25% a percentage of the prompt, a bare decimal is refused with
// the percentage to write; a budget under policy full is an error, not ignored.
TEST(Teach2Budgets, OneSyntaxAndNoIgnoredBudget) {
  const std::string m = "eval --model tiny-standard --task passkey --n 1 --length 96";
  const RunResult pct = run_kvlab(m + " --policy window --budget 50% --json");
  ASSERT_EQ(pct.status, 0) << pct.output;
  const RunResult tokens = run_kvlab(m + " --policy window --budget 40 --json");
  ASSERT_EQ(tokens.status, 0) << tokens.output;
  EXPECT_NEAR(json::parse(pct.output)["kv_bytes_held"].get<double>() /
                  json::parse(pct.output)["kv_bytes_full"].get<double>(),
              0.5, 0.02);
  const RunResult dec = run_kvlab(m + " --policy window --budget 0.5");
  EXPECT_EQ(dec.status, 2);
  EXPECT_NE(dec.output.find("--budget = 0.5 is invalid: write tokens as an integer (--budget 64) "
                            "or a share of the prompt as a percentage (--budget 25%); for this "
                            "fraction write 50%"),
            std::string::npos)
      << dec.output;
  const RunResult full = run_kvlab(m + " --budget 40");
  EXPECT_EQ(full.status, 2);
  EXPECT_NE(full.output.find("--budget = 40 is invalid: policy full keeps every token"),
            std::string::npos)
      << full.output;
  const RunResult gen =
      run_kvlab("generate --model tiny-standard --prompt hi --max-new 1 --budget 10%");
  EXPECT_EQ(gen.status, 2) << gen.output;
  EXPECT_NE(gen.output.find("--budget = 10% is invalid: policy full"), std::string::npos);
  // generate's byte figures name the dtype they count (the reference holds its precision).
  const RunResult held = run_kvlab("generate --model tiny-standard --prompt hi --max-new 1");
  EXPECT_NE(held.output.find("allocated at f32 (the precision"), std::string::npos) << held.output;
}

// One Squeeze vocabulary: --squeeze f0,f3 (or f0,p=P, or percentages) everywhere; squeeze's
// --f0/--f3/--p are aliases giving the same result; errors name the flag typed.
TEST(Teach2Squeeze, OneVocabularyWithAliases) {
  const std::string m =
      "squeeze --model tiny-standard --prompt 'Once upon a time there was a "
      "little robot who liked books.' --json";
  const RunResult a = run_kvlab(m + " --squeeze 0.5,0.2");
  const RunResult b = run_kvlab(m + " --f0 0.5 --f3 0.2");
  const RunResult c = run_kvlab(m + " --squeeze 50%,20%");
  const RunResult d = run_kvlab(m + " --squeeze 0.5,p=0.4");
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  EXPECT_EQ(a.output, c.output);
  EXPECT_EQ(json::parse(a.output)["budget_tokens"], json::parse(d.output)["budget_tokens"]);
  EXPECT_EQ(json::parse(a.output)["policy"], "streaming");
  const RunResult both = run_kvlab(m + " --squeeze 0.5,0.2 --f0 0.5");
  EXPECT_EQ(both.status, 2);
  EXPECT_NE(both.output.find("give either --squeeze f0,f3 or its aliases"), std::string::npos);
  const RunResult up = run_kvlab(m + " --squeeze 0.2,0.5");
  EXPECT_NE(up.output.find("--squeeze f3 = 0.500000 is invalid: must be at most f0"),
            std::string::npos)
      << up.output;
  const RunResult up_alias = run_kvlab(m + " --f0 0.2 --f3 0.5");
  EXPECT_NE(up_alias.output.find("--f3 = 0.500000 is invalid: must be at most f0"),
            std::string::npos)
      << up_alias.output;
  const RunResult none = run_kvlab(m);
  EXPECT_NE(none.output.find("--squeeze = (none) is invalid"), std::string::npos) << none.output;
}

// sweep --squeeze runs (one row per policy), the CSV names the plan, --json gives the rows, and
// eval --out writes the JSON that --json prints.
TEST_F(Teach2, SweepSqueezeJsonAndEvalOut) {
  const std::string m = "--model tiny-standard --task passkey --n 1 --length 96";
  const RunResult sq = run_kvlab("sweep " + m + " --policies h2o,streaming --squeeze 0.5,0.2 " +
                                 "--out " + path("s.csv"));
  ASSERT_EQ(sq.status, 0) << sq.output;
  const std::string csv = read_file(path("s.csv"));
  EXPECT_EQ(count_lines(csv), 3) << csv;
  EXPECT_NE(csv.find("passkey,standard,0_1_2_3_4_5,h2o,squeeze,\"0.5,0.2\",1,"), std::string::npos)
      << csv;
  const RunResult js =
      run_kvlab("sweep " + m + " --plan cla:2 --policies window --budgets 24,50% --json");
  ASSERT_EQ(js.status, 0) << js.output;
  const json rows = json::parse(js.output);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["plan"], "cla:2");
  EXPECT_EQ(rows[1]["budget"], "50%");
  const RunResult both = run_kvlab("sweep " + m + " --squeeze 0.5,0.2 --budgets 24");
  EXPECT_EQ(both.status, 2);
  EXPECT_NE(both.output.find("--budgets = 24 is invalid: --squeeze sets every bank's budget"),
            std::string::npos);
  // A bad policy last in the list: one error, no row printed.
  const RunResult late = run_kvlab("sweep " + m + " --policies window,streaming,lru --budgets 24");
  EXPECT_EQ(late.status, 2);
  EXPECT_EQ(count_lines(late.output), 1) << late.output;

  const RunResult ev = run_kvlab("eval " + m + " --policy h2o --budget 24 --out " + path("e.json"));
  ASSERT_EQ(ev.status, 0) << ev.output;
  const RunResult evj = run_kvlab("eval " + m + " --policy h2o --budget 24 --json");
  EXPECT_EQ(read_file(path("e.json")), evj.output);
  EXPECT_EQ(json::parse(evj.output)["budget"], "24");
}

// Every policy can show what it decided: generate --kept writes the positions each bank and KV
// head kept (window: the last B; h2o: its own choice), --squeeze works with --telemetry, and
// squeeze's --policy changes the positions it reports.
TEST_F(Teach2, EveryPolicyReportsWhatEachBankKept) {
  const std::string g =
      "generate --model tiny-standard --prompt 'Once upon a time there was a "
      "little robot' --max-new 2 --kept --telemetry ";
  const RunResult w = run_kvlab(g + path("w.jsonl") + " --policy window --budget 6");
  ASSERT_EQ(w.status, 0) << w.output;
  int events = 0;
  std::ifstream in(path("w.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    if (e["event"] != "kept") continue;
    ++events;
    EXPECT_EQ(e["policy"], "window");
    const auto pos = e["positions"].get<std::vector<int>>();
    ASSERT_EQ(pos.size(), 6u) << line;
    // The window keeps the six most recent positions.
    EXPECT_EQ(*std::max_element(pos.begin(), pos.end()) - *std::min_element(pos.begin(), pos.end()),
              5)
        << line;
  }
  // The prefill and one decode step (the first new token comes from the prefill), 6 banks, 4
  // KV heads.
  EXPECT_EQ(events, 2 * 6 * 4);
  const RunResult sq = run_kvlab(g + path("s.jsonl") + " --policy h2o --squeeze 0.5,0.2");
  ASSERT_EQ(sq.status, 0) << sq.output;
  const std::string tele = read_file(path("s.jsonl"));
  EXPECT_NE(tele.find("\"event\":\"squeeze\""), std::string::npos);
  EXPECT_NE(tele.find("\"event\":\"kept\""), std::string::npos);

  const std::string s =
      "squeeze --model tiny-standard --prompt 'Once upon a time there was a "
      "little robot' --squeeze 0.5,0.2 --json --policy ";
  const RunResult win = run_kvlab(s + "window"), h2o = run_kvlab(s + "h2o");
  ASSERT_EQ(win.status, 0) << win.output;
  ASSERT_EQ(h2o.status, 0) << h2o.output;
  EXPECT_NE(json::parse(win.output)["kept_positions_head0"],
            json::parse(h2o.output)["kept_positions_head0"]);
}
