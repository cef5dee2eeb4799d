// kvlab forward: the logits (T, V) of a prefill, as a NumPy .npy file any tool can compare.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/run_options.hpp"
#include "core/formats/npy.hpp"

namespace kvlab::cli {
namespace {

struct ForwardArgs {
  RunArgs run;
  std::string out;
};

void run_forward(const ForwardArgs& o) {
  const Prompt input = o.run.prompt_input();
  Session session = load_session(o.run);
  const std::vector<int> toks = session.tokens_of(input);
  const std::vector<double> logits = session.prefill(toks, /*all_logits=*/true);
  const int V = session.config().vocab_size;
  const std::vector<int64_t> shape = {static_cast<int64_t>(toks.size()), V};
  if (session.precision() == Precision::f64) {
    write_npy(o.out, std::span<const double>(logits), shape);
  } else {
    const std::vector<float> f32(logits.begin(), logits.end());  // exact: they were floats
    write_npy(o.out, std::span<const float>(f32), shape);
  }
  std::printf("wrote %s: logits [%zu, %d] (%s), plan %s\n", o.out.c_str(), toks.size(), V,
              precision_name(session.precision()), session.plan().to_string().c_str());
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto o = std::make_shared<ForwardArgs>();
  auto* cmd = app.add_subcommand("forward", "Write the prefill logits [T, V] to a .npy file");
  add_run_options(cmd, o->run, kPrompt | kForceNodiag | kSchedule | kTokenByToken);
  cmd->add_option("--out", o->out, "Output .npy file")->required();
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace kvlab::cli
