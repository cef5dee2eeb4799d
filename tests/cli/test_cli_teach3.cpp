// Issue 17, last part: the dtype beside every K/V byte figure and generate/eval --dtype, sweep's
// large numbers in scientific notation, a percentage budget too small for the task's prompt
// refused before the first sweep row, an explicit 0 for --passes / --kv-heads an error, and
// init -o creating missing parent directories.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class Teach3 : public ScratchDirTest {
 protected:
  Teach3() : ScratchDirTest("kvlab_cli_teach3_") {}
};

bool has(const std::string& out, const std::string& s) {
  return out.find(s) != std::string::npos;
}

// "KV held 150.00 KiB of 768.00 KiB allocated at f32" -> {held, allocated} in bytes.
std::pair<double, double> generate_kv(const std::string& out) {
  static const std::regex re(R"(KV held ([0-9.]+) (B|KiB|MiB) of ([0-9.]+) (B|KiB|MiB) allocated)");
  std::smatch m;
  if (!std::regex_search(out, m, re)) return {-1, -1};
  auto bytes = [](const std::string& v, const std::string& unit) {
    return std::stod(v) * (unit == "KiB" ? 1024.0 : unit == "MiB" ? 1048576.0 : 1.0);
  };
  return {bytes(m[1], m[2]), bytes(m[3], m[4])};
}

// The generated text: stdout's line after the echoed prompt (stderr's summary starts with "\n[").
std::string continuation(const std::string& out, const std::string& prompt) {
  const std::size_t at = out.find(prompt);
  if (at == std::string::npos) return "";
  const std::size_t end = out.find("\n[kvlab]", at);
  return out.substr(at + prompt.size(),
                    end == std::string::npos ? std::string::npos : end - at - prompt.size());
}

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        fields.push_back(field);
        field.clear();
      } else {
        field += c;
      }
    }
    fields.push_back(field);
    rows.push_back(fields);
  }
  return rows;
}

}  // namespace

// plan counts f16 by default and says so beside each figure; --dtype changes the figures.
TEST_F(Teach3, PlanPrintsTheDtypeBesideEveryByteFigure) {
  const RunResult f16 = run_kvlab("plan standard --model tiny-standard --prompt 100");
  ASSERT_EQ(f16.status, 0) << f16.output;
  EXPECT_TRUE(has(f16.output, "KV bytes per token  3,072 B at f16  (standard: 3,072 B at f16,"))
      << f16.output;
  EXPECT_TRUE(has(f16.output, "KV bytes for 100 tokens  307,200 B (300.00 KiB) at f16"))
      << f16.output;
  const RunResult f32 = run_kvlab("plan cla:2 --model tiny-standard --prompt 100 --dtype f32");
  ASSERT_EQ(f32.status, 0) << f32.output;
  EXPECT_TRUE(has(f32.output, "KV bytes per token  3,072 B at f32  (standard: 6,144 B at f32,"))
      << f32.output;
  const RunResult j = run_kvlab("plan standard --model tiny-standard --dtype bf16 --json");
  ASSERT_EQ(j.status, 0) << j.output;
  EXPECT_EQ(json::parse(j.output)["dtype"], "bf16");
  EXPECT_EQ(json::parse(j.output)["bytes_per_token"], 3072);
}

// generate holds its precision by default and says so; --dtype f16 / bf16 rounds the K/V as they
// are written, counts half the bytes, says the memory is still f32, and the text stays sane.
TEST_F(Teach3, GenerateDtypeRoundsTheKvAndCountsItsBytes) {
  const std::string prompt = "A fool and his money";
  const std::string g =
      "generate --model tiny-standard --prompt '" + prompt + "' --max-new 20 --seed 0";
  const RunResult def = run_kvlab(g);
  ASSERT_EQ(def.status, 0) << def.output;
  EXPECT_TRUE(has(def.output, "allocated at f32 (the precision: K/V are held as computed"))
      << def.output;
  // The default is --dtype f32 at --precision f32: the same run, byte for byte.
  const RunResult same = run_kvlab(g + " --dtype f32");
  ASSERT_EQ(same.status, 0) << same.output;
  EXPECT_EQ(continuation(same.output, prompt), continuation(def.output, prompt));
  const auto [held, alloc] = generate_kv(def.output);
  ASSERT_GT(held, 0) << def.output;
  EXPECT_EQ(generate_kv(same.output), std::make_pair(held, alloc));

  const std::string text = continuation(def.output, prompt);
  ASSERT_GE(text.size(), 12u) << def.output;
  for (const char* d : {"f16", "bf16"}) {
    const RunResult r = run_kvlab(g + " --dtype " + d);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto [h, a] = generate_kv(r.output);
    EXPECT_EQ(h * 2, held) << r.output;
    EXPECT_EQ(a * 2, alloc) << r.output;
    EXPECT_TRUE(has(r.output, std::string("allocated at ") + d +
                                  " (each K and V value rounded to " + d +
                                  " as written, held in f32 memory: "))
        << r.output;
    // A trained model's greedy text does not hinge on the K/V's last bits: the same start.
    const std::string t = continuation(r.output, prompt);
    EXPECT_EQ(t.substr(0, 12), text.substr(0, 12)) << d << ": " << r.output;
    for (char c : t) EXPECT_TRUE(c == '\n' || (c >= 32 && c < 127)) << d << ": " << t;
  }
  // f64 K/V need an f64 engine; fp8 and int8 are not simulated.
  for (const char* bad : {"fp8", "int8", "f64"}) {
    const RunResult r = run_kvlab(g + " --dtype " + bad);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_TRUE(has(r.output, std::string("--dtype = ") + bad + " is invalid")) << r.output;
  }
  const RunResult wide = run_kvlab("generate --model tiny-standard --prompt '" + prompt +
                                   "' --max-new 2 --precision f64 --dtype f32");
  EXPECT_EQ(wide.status, 0) << wide.output;
  EXPECT_TRUE(has(wide.output, "rounded to f32 as written, held in f64 memory")) << wide.output;
  const RunResult junk = run_kvlab(g + " --dtype f12");
  EXPECT_EQ(junk.status, 2);
  EXPECT_TRUE(has(junk.output, "--dtype = f12 is invalid")) << junk.output;
}

// eval and sweep take --dtype too, name it beside their figures (text, JSON, CSV), and the
// figures scale with it; models names f32 beside its column.
TEST_F(Teach3, EvalSweepAndModelsNameTheDtype) {
  const std::string e =
      "eval --model tiny-standard --task passkey --n 2 --length 48 "
      "--policy window --budget 50%";
  const RunResult f32 = run_kvlab(e + " --json");
  const RunResult f16 = run_kvlab(e + " --json --dtype f16");
  ASSERT_EQ(f32.status, 0) << f32.output;
  ASSERT_EQ(f16.status, 0) << f16.output;
  const json a = json::parse(f32.output), b = json::parse(f16.output);
  EXPECT_EQ(a["kv_dtype"], "f32");
  EXPECT_EQ(b["kv_dtype"], "f16");
  EXPECT_EQ(a["kv_bytes_full"].get<double>(), 2 * b["kv_bytes_full"].get<double>());
  EXPECT_EQ(a["kv_bytes_held"].get<double>(), 2 * b["kv_bytes_held"].get<double>());
  const RunResult text = run_kvlab(e + " --dtype bf16");
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_TRUE(has(text.output,
                  "without eviction (50.0%), at bf16 (each K and V value rounded to "
                  "bf16 as written, held in f32 memory)"))
      << text.output;

  const std::string s =
      "sweep --model tiny-standard --task passkey --n 1 --length 48 "
      "--policies window --budgets 24 --dtype f16";
  const RunResult table = run_kvlab(s);
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_TRUE(has(table.output, "KV held (f16)")) << table.output;
  const RunResult sj = run_kvlab(s + " --json");
  ASSERT_EQ(sj.status, 0) << sj.output;
  EXPECT_EQ(json::parse(sj.output)[0]["kv_dtype"], "f16");
  ASSERT_EQ(run_kvlab(s + " --out " + path("s.csv")).status, 0);
  const auto rows = csv_rows(read_file(path("s.csv")));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].back(), "kv_dtype");
  EXPECT_EQ(rows[1].back(), "f16");

  const RunResult models = run_kvlab("models");
  ASSERT_EQ(models.status, 0) << models.output;
  EXPECT_TRUE(has(models.output, "KV B/token f32")) << models.output;
}

// Large numbers in sweep's CSV are %.6g: plain below 1e6, scientific from 1e6 on, the same rule
// for every numeric column.
TEST_F(Teach3, SweepPrintsLargeByteFiguresInScientificNotation) {
  // tiny-standard at f64 holds 12,288 B per token: 100 tokens are 1,228,800 B; 50% of them not
  // quite (614,400 B, plain). (Its context is 128 tokens.)
  const RunResult r = run_kvlab(
      "sweep --model tiny-standard --precision f64 --task passkey --n 1 --length 100 "
      "--policies window --budgets 50%,100% --out " +
      path("big.csv"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto rows = csv_rows(read_file(path("big.csv")));
  ASSERT_EQ(rows.size(), 3u) << read_file(path("big.csv"));
  const auto& head = rows[0];
  const auto col = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(head.begin(), head.end(), name) - head.begin());
  };
  const std::size_t held = col("kv_bytes_held"), full = col("kv_bytes_full");
  ASSERT_LT(full, head.size());
  const std::regex sci(R"(^[1-9](\.[0-9]{1,5})?e\+0[6-9]$)"), plain(R"(^[0-9]{1,6}(\.[0-9]+)?$)");
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const double v = std::stod(rows[i][full]);
    EXPECT_GE(v, 1e6);
    EXPECT_TRUE(std::regex_match(rows[i][full], sci)) << rows[i][full];
    EXPECT_NEAR(v, 12288.0 * 100, 12288.0 * 100 * 1e-5);
  }
  EXPECT_TRUE(std::regex_match(rows[1][held], plain)) << rows[1][held];  // 50%: 614400
  EXPECT_TRUE(std::regex_match(rows[2][held], sci)) << rows[2][held];    // 100%: 1.2288e+06
}

// A percentage that keeps no token of the task's prompt is refused before the first row runs,
// naming the budget and the prompt's length; eval refuses it alike.
TEST_F(Teach3, TooSmallPercentageIsRefusedBeforeAnyRow) {
  const std::string m =
      "--model tiny-standard --task mqar --n 1 --length 40 --pairs 4 "
      "--queries 2";
  const RunResult sw =
      run_kvlab("sweep " + m + " --policies window --budgets 50%,1% --out " + path("s.csv"));
  EXPECT_EQ(sw.status, 2) << sw.output;
  EXPECT_TRUE(std::regex_search(
      sw.output, std::regex(R"(--budget = 1% is invalid: 1% of a prompt of \d+ tokens keeps )"
                            R"(floor\(1% · \d+\) = 0 tokens; give at least [0-9.]+% or a )"
                            R"(budget in tokens)")))
      << sw.output;
  EXPECT_FALSE(has(sw.output, "accuracy")) << "a row ran first: " << sw.output;
  EXPECT_FALSE(fs::exists(path("s.csv")));
  const RunResult ev = run_kvlab("eval " + m + " --policy window --budget 1%");
  EXPECT_EQ(ev.status, 2) << ev.output;
  EXPECT_TRUE(has(ev.output, "--budget = 1% is invalid: 1% of a prompt of ")) << ev.output;
  EXPECT_FALSE(has(ev.output, "accuracy")) << ev.output;
}

// An explicit 0 is a value like any other: --passes 0, --converge 0, plan --kv-heads 0 /
// --head-dim 0 and train --heads 0 / --kv-heads 0 are errors naming the flag, not "not given".
TEST_F(Teach3, ExplicitZeroIsAnErrorNotAbsence) {
  const std::string g = "generate --model tiny-lckv2 --prompt 'Once upon a time' --max-new 1";
  const RunResult p = run_kvlab(g + " --passes 0");
  EXPECT_EQ(p.status, 2) << p.output;
  EXPECT_TRUE(has(p.output, "--passes = 0 is invalid: must be in [1, 4096]")) << p.output;
  const RunResult c = run_kvlab(g + " --converge 0");
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_TRUE(has(c.output, "--converge = 0 is invalid: must be in (0, 1)")) << c.output;
  EXPECT_EQ(run_kvlab(g + " --passes 2").status, 0);
  const RunResult both = run_kvlab(g + " --passes 0 --converge 1e-3");
  EXPECT_EQ(both.status, 2);
  EXPECT_TRUE(has(both.output, "choose at most one schedule")) << both.output;
  const RunResult tp =
      run_kvlab("trace-prefill --model tiny-lckv2 --prompt 'Once upon' --passes 0");
  EXPECT_EQ(tp.status, 2) << tp.output;
  EXPECT_TRUE(has(tp.output, "--passes = 0 is invalid")) << tp.output;

  const RunResult kv = run_kvlab("plan standard --model tiny-standard --kv-heads 0");
  EXPECT_EQ(kv.status, 2) << kv.output;
  EXPECT_TRUE(has(kv.output, "--kv-heads = 0 is invalid: must be >= 1")) << kv.output;
  const RunResult kv1 = run_kvlab("plan standard --layers 4 --kv-heads 0");
  EXPECT_EQ(kv1.status, 2) << kv1.output;
  EXPECT_TRUE(has(kv1.output, "--kv-heads = 0 is invalid")) << kv1.output;
  const RunResult hd = run_kvlab("plan standard --layers 4 --head-dim 0");
  EXPECT_EQ(hd.status, 2) << hd.output;
  EXPECT_TRUE(has(hd.output, "--head-dim = 0 is invalid")) << hd.output;
  for (const char* flag : {"--kv-heads", "--heads"}) {
    const RunResult tr = run_kvlab("train --preset micro --plan standard --tokenizer byte " +
                                   std::string(flag) + " 0 -o " + path("tr"));
    EXPECT_EQ(tr.status, 2) << tr.output;
    EXPECT_TRUE(has(tr.output, std::string(flag) + " = 0 is invalid: must be >= 1")) << tr.output;
    EXPECT_FALSE(fs::exists(path("tr")));
  }
  const RunResult ok = run_kvlab("plan standard --layers 4 --kv-heads 2 --dtype f32");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_TRUE(has(ok.output, "KV bytes per token  8,192 B at f32")) << ok.output;
}

// init -o a/b/c makes a and a/b; an existing -o is still refused unless --force; a file in the
// way and a refused init leave nothing behind.
TEST_F(Teach3, InitCreatesMissingParentDirectories) {
  const std::string init = "init --model tiny-standard --seed 3 -o ";
  const std::string out = path("a/b/c");
  const RunResult r = run_kvlab(init + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(out) / "config.json"));
  const RunResult again = run_kvlab(init + out);
  EXPECT_EQ(again.status, 2) << again.output;
  EXPECT_TRUE(has(again.output, "already exists (give --force to replace it)")) << again.output;
  EXPECT_EQ(run_kvlab(init + out + " --force").status, 0);
  // A file where a directory should be: a named error, nothing created.
  std::ofstream(path("file")) << "x";
  const RunResult file = run_kvlab(init + path("file/x/m"));
  EXPECT_EQ(file.status, 2) << file.output;
  EXPECT_TRUE(has(file.output, "-o = " + path("file/x/m") +
                                   " is invalid: cannot create its "
                                   "directory"))
      << file.output;
  // Refused before anything is written: no directory appears.
  const RunResult bad =
      run_kvlab("init --model tiny-standard --vocab-size 100 -o " + path("p/q/r"));
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_FALSE(fs::exists(path("p")));
}
