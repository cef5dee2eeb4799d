// kvlab eval: a task (passkey, mqar, ppl) under a plan, a sequence policy and a budget.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/eval.hpp"
#include "core/error.hpp"

namespace kvlab::cli {

double EvalResult::perplexity() const {
  return scored ? std::exp(nll / scored) : 0;
}

namespace {

ref::SqueezeSpec parse_squeeze(const std::string& text) {
  ref::SqueezeSpec s;
  if (text.empty()) return s;
  const auto comma = text.find(',');
  char* end = nullptr;
  s.f0 = std::strtod(text.substr(0, comma).c_str(), &end);
  if (comma == std::string::npos || *end != '\0') {
    fail("--squeeze", text, "give f0,f3 (fractions of the prompt), e.g. 0.4,0.1");
  }
  s.f3 = std::strtod(text.substr(comma + 1).c_str(), &end);
  if (*end != '\0') fail("--squeeze", text, "give f0,f3 (fractions of the prompt), e.g. 0.4,0.1");
  s.enabled = true;
  s.validate();
  return s;
}

}  // namespace

EvalResult run_eval(LoadedModel<float>& m, const EvalSetup& o) {
  const ModelConfig& c = m.weights.config;
  if (o.n < 1 || o.n > 10000) fail("--n", std::to_string(o.n), "must be in [1, 10000]");
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.plan = plan_option(o.plan, c.num_hidden_layers);
  eo.policy = policy_option(o.policy, o.positions);
  if (!o.budget.empty()) eo.budget = ref::BudgetSpec::parse(o.budget);
  eo.squeeze = parse_squeeze(o.squeeze);
  if (eo.squeeze.enabled && !eo.budget.unset()) {
    fail("--budget", o.budget, "--squeeze sets the budgets (f0 is the uniform fraction)");
  }

  std::vector<ref::TaskExample> examples;
  const int max_len = c.max_position_embeddings;
  const int length = o.length > 0 ? o.length : std::min(256, max_len / 2);
  if (o.task == "ppl") {
    if (o.text_file.empty()) fail("--text-file", "(none)", "the ppl task needs a text file");
    std::ifstream in(o.text_file, std::ios::binary);
    if (!in) fail("--text-file", o.text_file, "cannot open the file for reading");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<int> toks = m.tokenizer->encode(ss.str(), true);
    const int window = o.length > 0 ? o.length : std::min<int>(max_len, toks.size());
    if (window > max_len) {
      fail("--length", std::to_string(window),
           "the model's context is " + std::to_string(max_len) + " tokens");
    }
    for (std::size_t s = 0; s + window <= toks.size() && static_cast<int>(examples.size()) < o.n;
         s += window) {
      examples.push_back(
          ref::make_ppl(std::vector<int>(toks.begin() + s, toks.begin() + s + window)));
    }
    if (examples.empty()) examples.push_back(ref::make_ppl(toks));
  } else {
    for (int i = 0; i < o.n; ++i) {
      if (o.task == "passkey") {
        examples.push_back(ref::make_passkey(length, o.seed + i, *m.tokenizer));
      } else if (o.task == "mqar") {
        examples.push_back(ref::make_mqar(length, o.pairs, o.queries, c.vocab_size, o.seed + i));
      } else {
        fail("--task", o.task, "must be passkey, mqar or ppl");
      }
    }
  }
  for (const auto& ex : examples) {
    const std::size_t total = ex.context.size() + ex.query.size();
    if (static_cast<int>(total) > max_len) {
      fail("--length", std::to_string(ex.context.size()),
           "the task needs " + std::to_string(total) +
               " tokens with its questions; the model's "
               "context is " +
               std::to_string(max_len));
    }
  }
  ref::Engine<float> engine(m.weights, eo);
  EvalResult r;
  for (const auto& ex : examples) {
    const ref::TaskScore s = ref::run_task(engine, ex);
    r.correct += s.correct;
    r.scored += s.scored;
    r.nll += s.nll;
    r.kv_bytes_held += static_cast<double>(s.kv_bytes_held) / examples.size();
    r.kv_bytes_full += static_cast<double>(engine.kv().bytes_per_cell() *
                                           engine.plan().num_kv_layers() * ex.context.size()) /
                       examples.size();
  }
  return r;
}

namespace {

struct EvalOptions {
  std::string model;
  EvalSetup setup;
  bool json = false;
};

void run_eval_command(const EvalOptions& o) {
  auto m = load_model<float>(o.model);
  const EvalResult r = run_eval(m, o.setup);
  if (o.json) {
    std::cout << nlohmann::json{{"task", o.setup.task},
                                {"policy", o.setup.policy},
                                {"budget", o.setup.budget},
                                {"squeeze", o.setup.squeeze},
                                {"correct", r.correct},
                                {"scored", r.scored},
                                {"accuracy", r.accuracy()},
                                {"perplexity", r.perplexity()},
                                {"kv_bytes_held", r.kv_bytes_held},
                                {"kv_bytes_full", r.kv_bytes_full}}
                     .dump(2)
              << "\n";
    return;
  }
  std::printf("task %s, %d examples, policy %s, budget %s%s\n", o.setup.task.c_str(), o.setup.n,
              o.setup.policy.c_str(), o.setup.budget.empty() ? "(all)" : o.setup.budget.c_str(),
              o.setup.squeeze.empty() ? "" : (", squeeze " + o.setup.squeeze).c_str());
  std::printf("accuracy %.3f (%d of %d)   perplexity %.4g\n", r.accuracy(), r.correct, r.scored,
              r.perplexity());
  std::printf("KV held when the questions begin: %s of %s without eviction (%.1f%%)\n",
              human_bytes(r.kv_bytes_held).c_str(), human_bytes(r.kv_bytes_full).c_str(),
              100.0 * r.kv_bytes_held / std::max(1.0, r.kv_bytes_full));
}

}  // namespace

void add_eval_options(CLI::App* cmd, EvalSetup& s) {
  cmd->add_option("--task", s.task, "passkey, mqar or ppl")->capture_default_str();
  cmd->add_option("--plan", s.plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--squeeze", s.squeeze, "SqueezeAttention budgets: f0,f3 (e.g. 0.4,0.1)");
  cmd->add_option("--positions", s.positions, "Key positions: absolute or cache")
      ->capture_default_str();
  cmd->add_option("--text-file", s.text_file, "Text for the ppl task");
  cmd->add_option("--n", s.n, "Examples")->capture_default_str();
  cmd->add_option("--length", s.length, "Context tokens per example (default: min(256, ctx/2))");
  cmd->add_option("--pairs", s.pairs, "mqar: key/value pairs")->capture_default_str();
  cmd->add_option("--queries", s.queries, "mqar: pairs asked again")->capture_default_str();
  cmd->add_option("--seed", s.seed, "Task seed")->capture_default_str();
  cmd->add_option("--threads", s.threads, "CPU threads")->capture_default_str();
}

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Run a task under a plan, a policy and a KV budget");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--policy", o->setup.policy,
                  "full, window[:W], streaming[:S], h2o[:R][,norm=count]")
      ->capture_default_str();
  cmd->add_option("--budget", o->setup.budget, "Tokens per bank, or a fraction of the context");
  add_eval_options(cmd, o->setup);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_eval_command(*o); });
}

}  // namespace kvlab::cli
