// kvlab dump: every intermediate tensor of a prefill (and of greedy decode steps after it) under
// any plan and policy, as one self-describing safetensors file (docs/crosscheck.md).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/run_options.hpp"

namespace kvlab::cli {
namespace {

struct DumpArgs {
  RunArgs run;
  int decode = 0;
  std::string what, layers, out;
};

void run_dump(const DumpArgs& o) {
  const Prompt input = o.run.prompt_input();
  std::vector<std::string> what = parse_dump_what(o.what);  // before loading: a typo fails fast
  Session session = load_session(o.run);
  DumpRequest r;
  r.tokens = session.tokens_of(input);
  r.decode = o.decode;
  r.what = std::move(what);
  r.layers = parse_dump_layers(o.layers, session.config().num_hidden_layers);
  const Dump d = session.dump(r);
  write_dump(o.out, d);
  std::printf(
      "wrote %s: %zu tensors (%s, %s), plan %s (%s), policy %s, %zu prompt tokens, %d "
      "decode steps\n",
      o.out.c_str(), d.tensors.size(),
      human_bytes(static_cast<double>(std::filesystem::file_size(o.out))).c_str(),
      precision_name(session.precision()), session.plan_spec().c_str(),
      session.plan().to_string().c_str(), d.metadata.at("policy").c_str(), r.tokens.size(),
      o.decode);
}

}  // namespace

void add_dump_command(CLI::App& app) {
  auto o = std::make_shared<DumpArgs>();
  auto* cmd = app.add_subcommand(
      "dump", "Write every intermediate tensor of a prefill and decode steps (docs/crosscheck.md)");
  add_run_options(cmd, o->run,
                  kPrompt | kContext | kPolicy | kBudget | kPositions | kSqueeze | kSchedule |
                      kTokenByToken | kForceNodiag);
  cmd->add_option("--decode", o->decode, "Greedy decode steps after the prefill (default 0)");
  cmd->add_option("--what", o->what,
                  "Kinds to keep, e.g. q,k,v,probs (tokens, embed, norm, q, k, v, read, scores, "
                  "probs, attn, resid, mlp, targets, cache, logits; default all)");
  cmd->add_option("--layers", o->layers, "Layers to keep, e.g. 0,3 (default all)");
  cmd->add_option("--out", o->out, "Output .safetensors file")->required();
  cmd->callback([o] { run_dump(*o); });
}

}  // namespace kvlab::cli
