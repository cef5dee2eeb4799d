// `kvlab corpus` end to end: the figures it prints for a text file, and --dump-text (the cleaned
// training documents that scripts/train-tokenizer.py trains on), written whole.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/cli/run_kvlab.hpp"

namespace fs = std::filesystem;

TEST(CliCorpus, FiguresOfATextFileAndItsDump) {
  const fs::path dir =
      fs::temp_directory_path() / ("kvlab_cli_corpus_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream t(dir / "t.txt");
    for (int i = 0; i < 300; ++i) {
      t << "Story " << i << " begins\twith a robot\r\nwho liked number " << i * 3 << ".   \n\n";
    }
    t << "\n\n  /\\_/\\\n ( o.o )\n";  // a picture: dropped
  }
  const std::string dump = (dir / "train.txt").string();
  const RunResult r = run_kvlab("corpus --text-file " + (dir / "t.txt").string() +
                                " --tokenizer " KVLAB_SOURCE_DIR "/models/tokenizer.json" +
                                " --seq-len 128 --json --dump-text " + dump);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["documents"], 300);
  EXPECT_EQ(j["train_documents"].get<int>() + j["val_documents"].get<int>(), 300);
  EXPECT_EQ(j["train_tokens"].get<long>(), j["train_rows"].get<long>() * 129);
  EXPECT_EQ(j["passkey_rows"].get<long>() + j["mqar_rows"].get<long>(), j["recall_sequences"]);
  EXPECT_EQ(j["vocab_size"], 1024);
  EXPECT_GT(j["tokens_per_character"].get<double>(), 0.2);
  EXPECT_LT(j["tokens_per_character"].get<double>(), 0.7);

  std::ifstream in(dump);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  long separators = 0;
  for (size_t at = 0; (at = text.find("\n%\n", at)) != std::string::npos; ++at) ++separators;
  EXPECT_EQ(separators + 1, j["train_documents"].get<long>());
  EXPECT_EQ(text.find('\t'), std::string::npos);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find("o.o"), std::string::npos);
  EXPECT_NE(text.find("begins    with a robot\nwho liked number"), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }

  const RunResult human = run_kvlab("corpus --text-file " + (dir / "t.txt").string());
  ASSERT_EQ(human.status, 0) << human.output;
  EXPECT_NE(human.output.find("documents       300  (train "), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("(MQAR's raw ids would include this tokenizer's BOS/EOS"),
            std::string::npos)
      << human.output;
  if (!HasFailure()) fs::remove_all(dir);
}
