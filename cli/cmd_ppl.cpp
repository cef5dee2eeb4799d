// kvlab ppl: perplexity of a text file, in windows of --context tokens.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/model_io.hpp"
#include "core/error.hpp"

namespace kvlab::cli {
namespace {

struct PplOptions {
  ScheduleFlags schedule;
  std::string tokenizer;
  std::string model, text_file, plan;
  int context = 0;  // 0: 256, or max_position_embeddings when that is smaller
  int threads = 1;
};

void run_ppl(const PplOptions& o) {
  std::ifstream in(o.text_file, std::ios::binary);
  if (!in) fail("--text-file", o.text_file, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  auto m = load_model<float>(o.model, o.tokenizer);
  const ModelConfig& c = m.weights.config;
  const int context = o.context == 0 ? std::min(256, c.max_position_embeddings) : o.context;
  if (context < 2 || context > c.max_position_embeddings) {
    fail("--context", std::to_string(context),
         "must be in [2, " + std::to_string(c.max_position_embeddings) +
             "] (max_position_embeddings)");
  }
  const std::vector<int> toks = m.tokenizer->encode(ss.str(), /*add_bos=*/true);
  if (toks.size() < 2) fail("--text-file", o.text_file, "needs at least one byte of text");
  ref::EngineOptions eo;
  eo.threads = o.threads;
  eo.context = context;
  eo.schedule = to_schedule(o.schedule);
  eo.plan = plan_option(o.plan, c.num_hidden_layers);
  ref::Engine<float> engine(m.weights, eo);
  // Non-overlapping windows; each predicts its tokens 1..n-1 from the ones before them.
  double nll = 0;
  long predicted = 0;
  const long V = c.vocab_size;
  for (size_t start = 0; start + 1 < toks.size(); start += context - 1) {
    const size_t end = std::min(toks.size(), start + context);
    const std::vector<int> window(toks.begin() + start, toks.begin() + end);
    const auto logits = engine.prefill(window, /*all_logits=*/true);
    for (size_t t = 0; t + 1 < window.size(); ++t) {
      const float* row = logits.data() + t * V;
      double mx = row[0];
      for (long v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0;
      for (long v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      nll += (std::log(sum) + mx) - row[window[t + 1]];
      ++predicted;
    }
    if (end == toks.size()) break;
  }
  std::printf("%s: %ld tokens predicted, context %d, plan %s\n", o.text_file.c_str(), predicted,
              context, engine.plan().to_string().c_str());
  std::printf("mean NLL %.4f nats/token, perplexity %.3f, %.4f bits/token\n", nll / predicted,
              std::exp(nll / predicted), nll / predicted / std::log(2.0));
}

}  // namespace

void add_ppl_command(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity of a text file");
  cmd->add_option("--model", o->model,
                  "Checkpoint: a kvlab or Hugging Face directory, or a llama2.c .bin")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: the checkpoint's own)");
  cmd->add_option("--text-file", o->text_file, "UTF-8 text file")->required();
  cmd->add_option("--context", o->context,
                  "Window length in tokens (default: 256, or max_position_embeddings if smaller)");
  cmd->add_option("--plan", o->plan, "Run under another plan (default: the checkpoint's)");
  cmd->add_option("--threads", o->threads, "CPU threads")->capture_default_str();
  add_schedule_options(cmd, o->schedule);
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace kvlab::cli
