// `kvlab zoo` end to end on the hidden `micro` preset (2 layers, C = 32, rows of 17 tokens), a
// fixture text and the byte tokenizer, a few steps per entry: the table's columns and values, the
// run directories, a rerun that skips measured entries, an interrupted entry that resumes (from a
// checkpoint written before train_state.json had `heads` and `recall_fraction`), and bad input.
// Also `kvlab train --heads`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/cli_files.hpp"
#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class ZooCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvlab_zoo_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_micro_corpus(dir_ / "text.txt");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // micro: B x T = 4 x 16 = 64 tokens per step; 384 tokens = 6 steps. A default flag is left out
  // when `flags` gives it.
  std::string zoo(const std::string& out, const std::string& flags) const {
    std::string cmd = "zoo";
    for (const char* d : {"--preset micro", "--tokens 384", "--threads 1"}) {
      const std::string def = d;
      if (flags.find(def.substr(0, def.find(' ') + 1)) == std::string::npos) cmd += " " + def;
    }
    return cmd + " --tokenizer byte --text-file " + (dir_ / "text.txt").string() + " --no-plot " +
           flags + " -o " + (dir_ / out).string();
  }
  fs::path dir_;
};

using Row = std::map<std::string, std::string>;

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  cells.push_back(cur);
  return cells;
}

std::vector<std::string> csv_header(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return split_csv_line(line);
}

std::map<std::string, Row> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  const auto header = split_csv_line(line);
  std::map<std::string, Row> rows;
  while (std::getline(in, line)) {
    const auto cells = split_csv_line(line);
    EXPECT_EQ(cells.size(), header.size()) << line;
    Row r;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) r[header[i]] = cells[i];
    rows[r["name"]] = r;
  }
  return rows;
}

double num(const Row& r, const std::string& k) {
  return std::stod(r.at(k));
}

int count_steps(const fs::path& log) {
  std::ifstream in(log);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (!json::parse(line).contains("val_loss")) ++n;
  }
  return n;
}

TEST_F(ZooCli, MicroEntriesTableRerunAndResume) {
  const fs::path z = dir_ / "z";
  const RunResult r = run_kvlab(zoo("z", "--only mha,mqa,mqa-cla2,lckv-alltop"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("| MQA + CLA2 |"), std::string::npos) << r.output;

  const std::vector<std::string> columns = {"name",
                                            "label",
                                            "plan",
                                            "plan_map",
                                            "heads",
                                            "kv_heads",
                                            "head_dim",
                                            "layers",
                                            "kv_layers",
                                            "kv_bytes_per_token",
                                            "parameters",
                                            "steps",
                                            "train_tokens",
                                            "train_passes",
                                            "val_loss",
                                            "val_ppl",
                                            "val_step",
                                            "train_tokens_per_s",
                                            "train_seconds",
                                            "prefill_passes",
                                            "passes_converged",
                                            "passkey_full",
                                            "passkey_evict",
                                            "passkey_length",
                                            "evict_budget"};
  EXPECT_EQ(csv_header(z / "zoo.csv"), columns);
  auto rows = read_csv(z / "zoo.csv");
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& [name, row] : rows) {
    SCOPED_TRACE(name);
    const double loss = num(row, "val_loss");
    EXPECT_TRUE(std::isfinite(loss) && loss > 0 && loss < 10) << loss;
    EXPECT_NEAR(num(row, "val_ppl"), std::exp(loss), 1e-3 * std::exp(loss));
    EXPECT_EQ(row.at("steps"), "6");
    EXPECT_EQ(row.at("train_tokens"), "384");
    EXPECT_GT(num(row, "parameters"), 0);
    EXPECT_GT(num(row, "train_tokens_per_s"), 0);
    EXPECT_EQ(row.at("passes_converged"), "true");
    // micro's rows (17 tokens) hold no passkey prompt: not measured.
    EXPECT_EQ(row.at("passkey_full"), "");
    EXPECT_EQ(row.at("passkey_evict"), "");
    for (const char* f :
         {"log.jsonl", "best/model.safetensors", "last/train_state.json", "zoo_row.json"}) {
      EXPECT_TRUE(fs::exists(z / name / f)) << f;
    }
    EXPECT_EQ(count_steps(z / name / "log.jsonl"), 6);
  }
  // K/V bytes per token (f32): 2 layers x 2 (K, V) x H_kv x 16 x 4.
  EXPECT_EQ(rows["mha"]["kv_bytes_per_token"], "512");
  EXPECT_EQ(rows["mqa"]["kv_bytes_per_token"], "256");
  EXPECT_LT(num(rows["mqa"], "kv_bytes_per_token"), num(rows["mha"], "kv_bytes_per_token"));
  EXPECT_EQ(num(rows["mqa-cla2"], "kv_bytes_per_token") * 2,
            num(rows["mqa"], "kv_bytes_per_token"));
  EXPECT_EQ(rows["mqa-cla2"]["plan_map"], "0_0");
  EXPECT_EQ(rows["lckv-alltop"]["plan_map"], "1_1");
  EXPECT_EQ(rows["lckv-alltop"]["train_passes"], "7,2");
  EXPECT_GT(num(rows["lckv-alltop"], "prefill_passes"), 1);
  EXPECT_EQ(rows["mha"]["prefill_passes"], "1");
  EXPECT_EQ(rows["mqa-cla2"]["train_passes"], "");
  const std::string md = read_file(z / "zoo.md");
  EXPECT_NE(md.find("| MHA | `standard` | 2 × 16 (2) |"), std::string::npos) << md;

  // A rerun skips every measured entry and writes the same table.
  const std::string csv = read_file(z / "zoo.csv");
  const std::string log = read_file(z / "mha" / "log.jsonl");
  const RunResult again = run_kvlab(zoo("z", "--only mha,mqa,mqa-cla2,lckv-alltop"));
  ASSERT_EQ(again.status, 0) << again.output;
  size_t skipped = 0;
  for (size_t at = 0; (at = again.output.find("measured already", at)) != std::string::npos; ++at)
    ++skipped;
  EXPECT_EQ(skipped, 4u) << again.output;
  EXPECT_EQ(again.output.find("step 1/6"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(z / "zoo.csv"), csv);
  EXPECT_EQ(read_file(z / "mha" / "log.jsonl"), log);

  // An interrupted entry resumes: gqa trained to step 3 as the zoo would train it, its state
  // without the fields older checkpoints lack (heads, recall_fraction: the preset's defaults).
  const RunResult part = run_kvlab(
      "train --preset micro --plan standard --kv-heads 1 --steps 6 --seed 1 --tokenizer byte "
      "--text-file " +
      (dir_ / "text.txt").string() + " --stop-at 3 -o " + (z / "gqa").string());
  ASSERT_EQ(part.status, 0) << part.output;
  {
    const fs::path st = z / "gqa" / "last" / "train_state.json";
    json j = json::parse(read_file(st));
    j["run"].erase("heads");
    j["run"].erase("recall_fraction");
    std::ofstream(st) << j.dump(2) << "\n";
  }
  const RunResult resumed = run_kvlab(zoo("z", "--only gqa"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming its run"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("(from step 3)"), std::string::npos) << resumed.output;
  EXPECT_EQ(count_steps(z / "gqa" / "log.jsonl"), 6);
  rows = read_csv(z / "zoo.csv");
  ASSERT_EQ(rows.size(), 5u);  // the table holds every entry measured in the directory
  EXPECT_EQ(rows["gqa"]["kv_heads"], "1");

  // Other settings in the same directory: a named error, nothing trained or rewritten.
  const RunResult other =
      run_kvlab("zoo --preset micro --tokens 640 --tokenizer byte --text-file " +
                (dir_ / "text.txt").string() + " --no-plot --only mha -o " + z.string());
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("measured with other settings: steps 6 (now 10)"), std::string::npos)
      << other.output;
  EXPECT_EQ(read_file(z / "mha" / "log.jsonl"), log);
}

TEST_F(ZooCli, MqaWithHalfTheHeadSizeHasTheKvBytesOfMqaCla2) {
  const RunResult r = run_kvlab(zoo("z", "--only mqa-half-d"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto rows = read_csv(dir_ / "z" / "zoo.csv");
  ASSERT_EQ(rows.size(), 1u);
  const Row& h = rows["mqa-half-d"];
  EXPECT_EQ(h.at("heads"), "4");
  EXPECT_EQ(h.at("head_dim"), "8");
  EXPECT_EQ(h.at("kv_heads"), "1");
  EXPECT_EQ(h.at("kv_bytes_per_token"), "128");  // MQA + CLA2's: 256 / 2
  const json c = json::parse(read_file(dir_ / "z" / "mqa-half-d" / "best" / "config.json"));
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["head_dim"], 8);
}

TEST_F(ZooCli, BadInputIsANamedErrorAndWritesNothing) {
  struct Case {
    std::string flags, expected;
  };
  const Case cases[] = {
      {"--only mha,nope", "--only = nope is invalid: is not a zoo entry; the entries are mha, "},
      {"--only mha --tokens 10",
       "--tokens = 10 is invalid: is smaller than one batch of preset micro (4 rows x 16 tokens "
       "= 64)"},
      {"--only mha --steps 3", "--steps/--tokens = (both) is invalid"},
      {"", "--preset = micro is invalid: zoo entry mha-cla3 (cla:3) does not fit preset micro"},
      {"--only lckv-warmup",
       "--only = lckv-warmup is invalid: zoo entry lckv-warmup (lckv:2) does not fit preset micro"},
      {"--only mha --recall-fraction 1.5", "--recall-fraction = 1.5 is invalid"},
      {"--only lckv-alltop --train-passes 3", "--train-passes = 3 is invalid"},
      {"--only mha --threads 0", "--threads = 0 is invalid"},
      {"--only mha --preset nope", "--preset = nope is invalid: must be one of tiny, small"},
  };
  for (const Case& c : cases) {
    const RunResult r = run_kvlab(zoo("bad", c.flags));
    EXPECT_EQ(r.status, 2) << c.flags << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.flags << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << c.flags;
  }
}

TEST_F(ZooCli, TrainHeadsSetsTheShapeAndIsCheckedOnResume) {
  const std::string base = "train --preset micro --plan standard --tokenizer byte --text-file " +
                           (dir_ / "text.txt").string() + " --steps 2 --threads 1";
  const fs::path run = dir_ / "h";
  const RunResult r = run_kvlab(base + " --heads 4 --kv-heads 2 -o " + run.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("4 heads of 8 (2 KV heads)"), std::string::npos) << r.output;
  const json c = json::parse(read_file(run / "best" / "config.json"));
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["head_dim"], 8);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["hidden_size"], 32);
  EXPECT_EQ(json::parse(read_file(run / "last" / "train_state.json"))["run"]["heads"], 4);
  // The checkpoint runs.
  EXPECT_EQ(run_kvlab("generate --model " + (run / "best").string() +
                      " --prompt 'once' "
                      "--max-new 2")
                .status,
            0);

  struct Case {
    std::string flags, expected;
  };
  const Case bad[] = {
      {" --heads 3",
       "--heads = 3 is invalid: must divide the preset's hidden_size = 32 into an even head_dim"},
      {" --heads 32", "--heads = 32 is invalid"},  // head_dim 1: RoPE needs pairs
      {" --heads -2", "--heads = -2 is invalid"},
      {" --heads 4 --kv-heads 3", "--kv-heads = 3 is invalid: must divide --heads = 4"},
  };
  for (const Case& b : bad) {
    const RunResult e = run_kvlab(base + b.flags + " -o " + (dir_ / "bad").string());
    EXPECT_EQ(e.status, 2) << b.flags << "\n" << e.output;
    EXPECT_NE(e.output.find(b.expected), std::string::npos) << b.flags << "\n" << e.output;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << b.flags;
  }
  const RunResult other =
      run_kvlab("train --resume " + run.string() + " --heads 2 -o " + run.string());
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("was trained with --heads 4, not 2"), std::string::npos)
      << other.output;
}

}  // namespace
