// kvlab grad: float64 gradients of one sequence's mean next-token loss for every parameter,
// under its Hugging Face name, as an F64 .safetensors file (the PyTorch oracle compares them).
#include <cstdio>
#include <map>
#include <memory>
#include <span>

#include "cli/commands.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"
#include "core/formats/safetensors.hpp"

namespace kvlab::cli {
namespace {

struct GradArgs {
  RunArgs run;
  std::string out;
  std::string train_passes = "7,2";
  double kv_loss = 0;
};

std::string number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

void run_grad(const GradArgs& o) {
  if (o.out.empty()) fail("--out", "(none)", "give the .safetensors file to write");
  const ref::train::TrainPasses passes = parse_train_passes(o.train_passes, o.kv_loss);
  const Prompt input = o.run.prompt_input();
  Session session = load_session(o.run);
  const std::vector<int> toks = session.tokens_of(input);
  const GradResult r = session.grad(toks, passes);

  std::vector<TensorRef> tensors;
  long values = 0;
  for (std::size_t i = 0; i < r.specs.size(); ++i) {
    tensors.push_back({r.specs[i].name, r.specs[i].shape, std::span<const double>(r.grads[i])});
    values += static_cast<long>(r.grads[i].size());
  }
  const std::string pass_text =
      r.iterative ? std::to_string(passes.m) + "," + std::to_string(passes.b) : "1";
  const std::map<std::string, std::string> meta = {
      {"loss", number(r.loss.loss)},
      {"kv_loss", number(r.loss.kv_loss)},
      {"kv_loss_weight", number(r.loss.kv_loss_weight)},
      {"total_loss", number(r.loss.total())},
      {"plan", r.plan},
      {"passes", pass_text},
      {"force_nodiag", session.run_options().force_nodiag ? "true" : "false"},
      {"predictions", std::to_string(r.predictions)},
      {"dtype", "F64"},
  };
  write_safetensors(o.out, tensors, meta);
  std::printf("loss %.12f", r.loss.loss);
  if (r.loss.kv_loss_weight > 0) {
    std::printf("  kv_loss %.12f (weight %g)  total %.12f", r.loss.kv_loss, r.loss.kv_loss_weight,
                r.loss.total());
  }
  std::printf("\nwrote %s: %zu tensors, %ld values (f64), %d predictions, plan %s, passes %s\n",
              o.out.c_str(), tensors.size(), values, r.predictions, r.plan.c_str(),
              pass_text.c_str());
}

}  // namespace

void add_grad_command(CLI::App& app) {
  auto o = std::make_shared<GradArgs>();
  o->run.precision = "f64";  // gradients are always float64; the weights load as such
  auto* cmd = app.add_subcommand(
      "grad", "Write float64 gradients of the mean next-token loss to a .safetensors file");
  add_run_options(cmd, o->run, kPrompt | kForceNodiag);
  cmd->add_option("--out", o->out, "Output .safetensors file (F64, Hugging Face names)");
  cmd->add_option("--train-passes", o->train_passes,
                  "LCKV training passes m,b: m without gradient, then b with (plans with upward "
                  "edges only)")
      ->capture_default_str();
  cmd->add_option("--kv-loss", o->kv_loss,
                  "Weight of LCKV's KV loss (mean squared K/V change in the last pass); 0: off")
      ->capture_default_str();
  cmd->callback([o] { run_grad(*o); });
}

}  // namespace kvlab::cli
