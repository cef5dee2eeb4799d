// The training corpus (reference/train/corpus.hpp): cleaning and splitting on fixture texts, a
// stable disjoint split, the recall rows and their share, the sampler's determinism and resume,
// and named errors. One test reads the real fortunes (installed by scripts/setup.sh).
#include "reference/train/corpus.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/tokenizers/hf.hpp"
#include "core/tokenizers/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace kvlab;
using namespace kvlab::ref::train;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kvlab::Error& e) {
    return e.what();
  }
  return "(no error)";
}

class CorpusFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvlab_corpus_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  // `n` distinct paragraphs of plain English.
  static std::string paragraphs(int n) {
    std::string t;
    for (int i = 0; i < n; ++i) {
      t += "Paragraph number " + std::to_string(i) + " tells of a cat who sat on mat " +
           std::to_string(i * 7) + ".\nIt was a fine day for the cat.\n\n";
    }
    return t;
  }
  fs::path dir_;
};

}  // namespace

TEST(CorpusText, SplitsFortunesOnPercentLines) {
  const auto d = split_fortunes("one\ntwo\n%\nthree\n%\r\n%\nfour %\n");
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0], "one\ntwo\n");
  EXPECT_EQ(d[1], "three\n");
  EXPECT_EQ(d[2], "");
  EXPECT_EQ(d[3], "four %\n\n");
}

TEST(CorpusText, SplitsParagraphsOnBlankLines) {
  const auto d = split_paragraphs("\n\na b\nc\n \t\nd\n\n\n\ne\n");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "a b\nc\n");
  EXPECT_EQ(d[1], "d\n");
  EXPECT_EQ(d[2], "e\n");
}

TEST(CorpusText, CleansWhitespaceAndControlCharacters) {
  EXPECT_EQ(clean_document("\n\n\tHello   \r\nworld\x07!  \n\n\n\n\nBye.\n\n"),
            "    Hello\nworld!\n\nBye.");
  // Overstrike underlining ("_\bX") keeps the letter; a C1 control and invalid UTF-8 go.
  EXPECT_EQ(clean_document("_\bb_\bo_\bl_\bd text"), "bold text");
  EXPECT_EQ(clean_document("caf\xC3\xA9 \xC2\x85ok \xFF\xC3 fine"), "caf\xC3\xA9 ok  fine");
}

TEST(CorpusText, DropsEmptyLongAndPictureDocuments) {
  EXPECT_EQ(clean_document(""), "");
  EXPECT_EQ(clean_document(" \n\t\n"), "");
  EXPECT_EQ(clean_document("  (  /\\__/\\  )\n   \\(^ @..@ ^)/\n  --||--||--\n"), "");
  EXPECT_EQ(clean_document(std::string(kMaxDocumentChars + 1, 'a')), "");
  EXPECT_EQ(clean_document(std::string(kMaxDocumentChars, 'a')).size(), kMaxDocumentChars);
  EXPECT_EQ(clean_document("x = 12345 + 67890;"), "");  // mostly digits and signs
}

TEST_F(CorpusFiles, SplitIsStableDisjointAndNearTheFraction) {
  CorpusOptions o;
  o.text_file = write("t.txt", paragraphs(2000)).string();
  o.val_fraction = 0.1;
  const Documents a = read_documents(o), b = read_documents(o);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.train.size() + a.val.size(), 2000u);
  std::set<std::string> train(a.train.begin(), a.train.end());
  for (const std::string& v : a.val) EXPECT_EQ(train.count(v), 0u) << v;
  EXPECT_NEAR(static_cast<double>(a.val.size()) / 2000, 0.1, 0.025);
  // Each document's side depends only on its text and the seed: reordering changes nothing.
  for (const std::string& v : a.val) EXPECT_TRUE(is_validation(v, o.seed, o.val_fraction));
  for (const std::string& t : a.train) EXPECT_FALSE(is_validation(t, o.seed, o.val_fraction));
  o.seed = 2;
  EXPECT_NE(read_documents(o).val, a.val);
}

TEST_F(CorpusFiles, FortuneDirectorySkipsIndexesLinksPicturesAndOff) {
  write("f/wisdom", "Think twice.\n%\nLook before you leap.\n%\nThink twice.\n");
  write("f/wisdom.dat", "binary index");
  fs::create_symlink("wisdom", dir_ / "f" / "wisdom.u8");
  write("f/ascii-art", "A cat drawn in letters, alas.\n");
  write("f/off/rude", "Something rude here.\n");
  CorpusOptions o;
  o.fortunes_dir = (dir_ / "f").string();
  o.val_fraction = 0.01;
  const Documents d = read_documents(o);
  std::vector<std::string> all = d.train;
  all.insert(all.end(), d.val.begin(), d.val.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::string>{"Look before you leap.", "Think twice."}));
  EXPECT_EQ(d.source, "fortunes:" + o.fortunes_dir);
}

TEST_F(CorpusFiles, ErrorsNameThePathAndTheFlag) {
  CorpusOptions o;
  o.fortunes_dir = (dir_ / "none").string();
  EXPECT_NE(error_of([&] { read_documents(o); }).find("--fortunes-dir = " + o.fortunes_dir),
            std::string::npos);
  o.text_file = (dir_ / "nope.txt").string();
  EXPECT_NE(error_of([&] { read_documents(o); }).find("--text-file = " + o.text_file),
            std::string::npos);
  o.text_file = write("art.txt", "  /\\_/\\\n ( o.o )\n  > ^ <\n\n#####\n").string();
  EXPECT_NE(error_of([&] {
              read_documents(o);
            }).find("--text-file = " + o.text_file + " is invalid: has no usable text"),
            std::string::npos);
  o.text_file = write("short.txt", "A short text.\n").string();
  EXPECT_NE(error_of([&] { build_corpus(o, ByteTokenizer(), 64); })
                .find("--seq-len = 64 is invalid: the training text of " + o.text_file +
                      " has 15 tokens, fewer than one row of seq_len + 1 = 65"),
            std::string::npos);
  for (double v : {0.0, 0.6, std::nan("")}) {
    CorpusOptions b;
    b.val_fraction = v;
    EXPECT_NE(error_of([&] { b.validate(); }).find("--val-fraction"), std::string::npos);
  }
  for (double v : {-0.1, 1.0}) {
    CorpusOptions b;
    b.recall_fraction = v;
    EXPECT_NE(error_of([&] { b.validate(); }).find("--recall-fraction"), std::string::npos);
  }
}

TEST_F(CorpusFiles, StreamsAreWholeRowsOfDocumentsAndRecallExamples) {
  CorpusOptions o;
  o.text_file = write("t.txt", paragraphs(3000)).string();
  const ByteTokenizer tok;
  const int T = 128;
  o.recall_fraction = 0;
  const Corpus plain = build_corpus(o, tok, T);
  EXPECT_EQ(plain.recall_sequences, 0);
  EXPECT_EQ(plain.row, T + 1);
  EXPECT_EQ(plain.train.size() % (T + 1), 0u);
  EXPECT_EQ(plain.documents, 3000);
  // Natural text: BOS document EOS, documents back to back.
  const Documents docs = read_documents(o);
  std::vector<int> first = {tok.bos_id()};
  for (int id : tok.encode(docs.train[0], false)) first.push_back(id);
  first.push_back(tok.eos_id());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), plain.train.begin()));
  EXPECT_EQ(plain.val.front(), tok.bos_id());

  o.recall_fraction = 0.3;
  const Corpus c = build_corpus(o, tok, T);
  EXPECT_EQ(c.val, plain.val);
  const long rows = static_cast<long>(c.train.size()) / (T + 1);
  EXPECT_EQ(c.train.size() % (T + 1), 0u);
  EXPECT_NEAR(static_cast<double>(c.recall_sequences) / static_cast<double>(rows), 0.3, 0.05);
  // Every passkey question sits in a row that starts with its context (BOS, then filler or the
  // needle) and holds the needle and the whole key.
  long questions = 0;
  for (long r = 0; r < rows; ++r) {
    const std::vector<int> ids(c.train.begin() + r * (T + 1), c.train.begin() + (r + 1) * (T + 1));
    const std::string text = tok.decode(ids);
    const std::size_t q = text.find(" What is the pass key? The pass key is ");
    if (q == std::string::npos) continue;
    ++questions;
    EXPECT_EQ(ids[0], tok.bos_id());
    const std::string key = text.substr(q + 39, 5);
    EXPECT_NE(text.find("The pass key is " + key + ". Remember it. " + key + " is the pass key."),
              std::string::npos)
        << text;
    EXPECT_EQ(ids[tok.encode(text.substr(0, q + 44), true).size()], tok.eos_id()) << text;
  }
  // The byte tokenizer's BOS and EOS lie in MQAR's raw id range: passkeys only.
  EXPECT_EQ(questions, c.recall_sequences);
  EXPECT_EQ(std::count(c.row_kinds.begin(), c.row_kinds.end(), 'p'), c.recall_sequences);
  EXPECT_EQ(build_corpus(o, tok, T).train, c.train);  // deterministic
}

TEST_F(CorpusFiles, ProjectTokenizerMixesPasskeyAndMqarRows) {
  const HfTokenizer tok = HfTokenizer::load(KVLAB_SOURCE_DIR "/models/tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.vocab_size(), 1024);
  CorpusOptions o;
  o.text_file = write("t.txt", paragraphs(3000)).string();
  o.recall_fraction = 0.5;
  const int T = 256;
  const Corpus c = build_corpus(o, tok, T);
  ASSERT_EQ(c.row_kinds.size(), c.train.size() / (T + 1));
  long passkeys = 0, mqars = 0;
  for (std::size_t r = 0; r < c.row_kinds.size(); ++r) {
    const int* row = c.train.data() + r * (T + 1);
    const std::string text = tok.decode(std::vector<int>(row, row + T + 1));
    if (c.row_kinds[r] == 'm') {
      ++mqars;  // MQAR starts with key/value pairs: raw ids in [8, 1024), never BOS or EOS
      for (int i = 0; i < 8; ++i) EXPECT_GE(row[i], 8);
    } else if (c.row_kinds[r] == 'p') {
      ++passkeys;
      EXPECT_EQ(row[0], tok.bos_id());
      EXPECT_NE(text.find(" What is the pass key? The pass key is"), std::string::npos) << text;
    } else {
      EXPECT_EQ(text.find("pass key"), std::string::npos) << text;
    }
  }
  EXPECT_EQ(passkeys + mqars, c.recall_sequences);
  EXPECT_GT(passkeys, c.recall_sequences / 3);
  EXPECT_GT(mqars, c.recall_sequences / 3);
}

TEST(BatchSampler, IsDeterministicAndResumesExactly) {
  std::vector<int> stream(10 * 17);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<int>(i);
  const int B = 4, T = 16;
  BatchSampler a(stream, B, T, 7), b(stream, B, T, 7), other(stream, B, T, 8);
  std::vector<int> x(B * (T + 1)), y(x.size()), z(x.size());
  std::vector<std::vector<int>> first;
  bool differs = false;
  for (int s = 0; s < 5; ++s) {
    a.next(x.data());
    b.next(y.data());
    other.next(z.data());
    EXPECT_EQ(x, y);
    differs |= x != z;
    first.push_back(x);
    // Rows are whole aligned rows of the stream.
    for (int r = 0; r < B; ++r) {
      EXPECT_EQ(x[r * (T + 1)] % (T + 1), 0);
      for (int t = 1; t <= T; ++t) EXPECT_EQ(x[r * (T + 1) + t], x[r * (T + 1)] + t);
    }
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(a.state().seed, 7u);
  EXPECT_EQ(a.state().step, 5u);
  // Restore step 2 on a fresh sampler: the same batches 2, 3, 4.
  BatchSampler c(stream, B, T, 99);
  c.restore({7, 2});
  for (int s = 2; s < 5; ++s) {
    c.next(x.data());
    EXPECT_EQ(x, first[s]) << "step " << s;
  }
  // Every row gets drawn over many batches.
  std::set<int> seen;
  for (int s = 0; s < 100; ++s) {
    a.next(x.data());
    for (int r = 0; r < B; ++r) seen.insert(x[r * (T + 1)]);
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(BatchSampler, ShortStreamIsANamedError) {
  const std::vector<int> stream(5, 1);
  EXPECT_NE(error_of([&] {
              BatchSampler(stream, 2, 8, 1);
            }).find("corpus of 5 tokens is smaller than one batch row of T+1 = 9"),
            std::string::npos);
  EXPECT_NE(error_of([&] { BatchSampler(stream, 0, 2, 1); }).find("--batch = 0"),
            std::string::npos);
}

TEST(CorpusFortunes, ReadsTheInstalledFortunes) {
  CorpusOptions o;
  if (!fs::is_directory(o.fortunes_dir)) {
    GTEST_SKIP() << o.fortunes_dir
                 << " is missing: scripts/setup.sh installs the Debian packages fortunes and "
                    "fortunes-min";
  }
  const Corpus c = build_corpus(o, ByteTokenizer(), 256);
  EXPECT_GT(c.documents, 10000);
  EXPECT_GT(c.characters, 2000000);
  EXPECT_NEAR(static_cast<double>(c.val_documents) / static_cast<double>(c.documents), 0.05, 0.01);
  EXPECT_EQ(c.source, "fortunes:/usr/share/games/fortunes");
}
