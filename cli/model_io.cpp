// Helpers shared by the commands that run a model.
#include "cli/model_io.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace kvlab::cli {

std::vector<int> prompt_tokens(const Tokenizer& tokenizer, int vocab_size,
                               const std::string& prompt, const std::string& tokens,
                               const std::string& text_file) {
  const int sources = !prompt.empty() + !tokens.empty() + !text_file.empty();
  if (sources != 1) {
    fail("--prompt/--tokens/--text-file", sources ? "(several)" : "(none)", "give exactly one");
  }
  if (!tokens.empty()) return parse_token_list(tokens, vocab_size);
  if (!text_file.empty()) {
    std::ifstream in(text_file, std::ios::binary);
    if (!in) fail("--text-file", text_file, "cannot open the file for reading");
    std::stringstream ss;
    ss << in.rdbuf();
    return tokenizer.encode(ss.str(), true);
  }
  return tokenizer.encode(prompt, true);
}

std::string printable(const std::string& bytes) {
  std::string out;
  for (unsigned char ch : bytes) {
    if (ch < 0x20 && ch != '\n' && ch != '\t') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

}  // namespace kvlab::cli
