// kvlab ppl: perplexity of a text file, in windows of --context tokens.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

void run_ppl(const RunArgs& o) {
  Session session = load_session(o);
  const std::vector<int> toks = session.tokens_of(o.prompt_input());
  if (toks.size() < 2) fail("--text-file", o.text_file, "needs at least one byte of text");
  const PplResult r = session.ppl(toks, o.context);
  std::printf("%s: %ld tokens predicted, context %d, plan %s\n", o.text_file.c_str(), r.predicted,
              r.window, session.plan().to_string().c_str());
  std::printf("mean NLL %.4f nats/token, perplexity %.3f, %.4f bits/token\n", r.mean_nll(),
              r.perplexity(), r.bits_per_token());
}

}  // namespace

void add_ppl_command(CLI::App& app) {
  auto o = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity of a text file");
  add_run_options(cmd, *o, kContext | kTextFile | kSchedule | kTokenByToken);
  cmd->get_option("--text-file")->required();
  cmd->get_option("--context")
      ->description(
          "Window length in tokens (default: 256, or max_position_embeddings if smaller)");
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace kvlab::cli
