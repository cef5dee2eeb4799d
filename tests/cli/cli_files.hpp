// Small files the CLI tests write and read: whole files as bytes, and a llama2.c tokenizer.bin.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

// The whole file as bytes ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A llama2.c tokenizer.bin: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, " " (id 259),
// then `extra` more pieces (never matched by the tests' texts).
inline void write_llama2c_tokenizer(const std::filesystem::path& p, int extra) {
  std::ofstream out(p, std::ios::binary);
  auto put_i32 = [&](std::int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto piece = [&](const std::string& text, float score) {
    out.write(reinterpret_cast<const char*>(&score), 4);
    put_i32(static_cast<std::int32_t>(text.size()));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  };
  put_i32(8);
  piece("<unk>", 0);
  piece("<s>", 0);
  piece("</s>", 0);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    piece(buf, 0);
  }
  piece(" ", -1);
  for (int i = 0; i < extra; ++i) piece("#" + std::to_string(i) + "#", -1);
}

// A training text for the `micro` preset: 120 paragraphs of 8 to 27 words from a 20-word
// vocabulary, from a fixed generator (no std::*_distribution, so the same bytes everywhere).
inline void write_micro_corpus(const std::filesystem::path& p) {
  const char* words[] = {"once",  "upon", "a",     "time",  "there", "was",   "little",
                         "robot", "who",  "liked", "to",    "read",  "books", "about",
                         "the",   "sea",  "and",   "stars", "it",    "sailed"};
  std::uint64_t x = 12345;
  std::ofstream out(p);
  for (int para = 0; para < 120; ++para) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int n = 8 + static_cast<int>((x >> 33) % 20);
    for (int i = 0; i < n; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      out << (i ? " " : "") << words[(x >> 33) % 20];
    }
    out << ".\n\n";
  }
}

// A test with a scratch directory of its own (`prefix`, the process id and the test's name, under
// the system's temporary directory), made empty before the test and removed after it unless the
// test failed (to look at what it left).
class ScratchDirTest : public ::testing::Test {
 protected:
  explicit ScratchDirTest(const std::string& prefix) : prefix_(prefix) {}
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;

 private:
  std::string prefix_;
};
