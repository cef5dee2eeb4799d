// The shared options of the commands that run a model.
#include "cli/run_options.hpp"

#include <cstdio>

#include "cli/common.hpp"
#include "core/error.hpp"
#include "session/backend.hpp"

namespace kvlab::cli {

ref::PrefillSchedule to_schedule(const ScheduleFlags& f) {
  const int given = f.passes.has_value() + f.converge.has_value() + f.token_by_token;
  if (given > 1) {
    fail("--passes/--converge/--token-by-token", "(several)", "choose at most one schedule");
  }
  ref::PrefillSchedule s;
  s.max_passes = f.max_passes;
  // A value given is checked as given: --passes 0 is an error, not "no --passes".
  if (f.passes) {
    s.mode = ref::PrefillMode::fixed;
    s.passes = *f.passes;
  } else if (f.converge) {
    if (!(*f.converge > 0 && *f.converge < 1)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", *f.converge);
      fail("--converge", text, "must be in (0, 1)");
    }
    s.mode = ref::PrefillMode::converge;
    s.eps = *f.converge;
  } else if (f.token_by_token) {
    s.mode = ref::PrefillMode::token_by_token;
  }
  s.validate();
  return s;
}

RunOptions RunArgs::run_options() const {
  RunOptions r;
  r.plan = plan;
  r.policy = policy;
  r.positions = positions;
  r.budget = budget;
  r.squeeze = parse_squeeze(squeeze);
  r.schedule = to_schedule(schedule);
  r.threads = threads;
  r.backend = backend;
  r.context = context;
  r.force_nodiag = force_nodiag;
  r.kv_dtype = dtype;
  return r;
}

SessionOptions RunArgs::session_options() const {
  SessionOptions o;
  o.model = model;
  o.allow_random = true;  // every command takes a preset or a config.json (random weights)
  o.tokenizer = tokenizer;
  o.precision = parse_precision(precision);
  o.run = run_options();
  return o;
}

Prompt RunArgs::prompt_input() const {
  if (!(registered & kTextFile)) {
    if (prompt.empty() == tokens.empty()) {
      fail("--prompt/--tokens", prompt.empty() ? "(none)" : "(both)",
           "give exactly one of --prompt TEXT and --tokens 1,2,3");
    }
    return {prompt, tokens, ""};
  }
  const int sources = !prompt.empty() + !tokens.empty() + !text_file.empty();
  if (sources != 1) {
    fail("--prompt/--tokens/--text-file", sources ? "(several)" : "(none)", "give exactly one");
  }
  return {prompt, tokens, text_file};
}

void add_run_options(CLI::App* cmd, RunArgs& a, unsigned which) {
  a.registered = which;
  auto* model = cmd->add_option("--model", a.model, kModelHelp);
  if (a.model.empty()) {
    model->required();
  } else {
    model->capture_default_str();
  }
  cmd->add_option("--tokenizer", a.tokenizer, "Tokenizer file (default: the checkpoint's own)");
  cmd->add_option("--precision", a.precision, "f32 or f64")->capture_default_str();
  cmd->add_option("--plan", a.plan,
                  "Run under another plan (default: the checkpoint's; random weights: standard)");
  cmd->add_option("--threads", a.threads, "CPU threads")->capture_default_str();
  cmd->add_option("--backend", a.backend,
                  cuda_backend_built() ? "cpu (the reference) or cuda (float32, on the GPU)"
                                       : "cpu (this build has no CUDA backend)")
      ->capture_default_str();
  if (which & kContext) {
    cmd->add_option("--context", a.context, "Max sequence length (default: the model's)");
  }
  if (which & kPolicy) {
    cmd->add_option("--policy", a.policy,
                    "What each KV bank keeps: full, window[:W], streaming[:S], "
                    "h2o[:R][,norm=count]")
        ->capture_default_str();
  }
  if (which & kBudget) {
    cmd->add_option("--budget", a.budget,
                    "Tokens each bank keeps: 64 (tokens) or 25% (of the prompt: floor(0.25 · "
                    "prompt tokens)); needs an evicting policy. 100% is not full: the tokens "
                    "after the prompt still evict");
  }
  if (which & kDtype) {
    cmd->add_option("--dtype", a.dtype,
                    "K/V storage dtype: f16 or bf16 (or f32 under --precision f64) rounds every K "
                    "and V value to it as it is written (held rounded in the precision's memory; "
                    "byte figures at the dtype); default: the precision (f32 or f64). fp8 and "
                    "int8 are not simulated");
  }
  if (which & kPositions) {
    cmd->add_option("--positions", a.positions, "Key positions: absolute or cache")
        ->capture_default_str();
  }
  if (which & kSqueeze) {
    cmd->add_option("--squeeze", a.squeeze,
                    "SqueezeAttention budgets f0,f3 or f0,p=P (fractions of the prompt: 0.4,0.1 "
                    "or 40%,10%); needs an evicting policy, replaces --budget");
  }
  if (which & kPrompt) {
    cmd->add_option("--prompt", a.prompt, "Prompt text (BOS first)");
    cmd->add_option("--tokens", a.tokens, "Token ids, e.g. 1,2,3");
  }
  if (which & kTextFile) {
    cmd->add_option("--text-file", a.text_file,
                    which & kPrompt ? "Prompt from a file" : "UTF-8 text file");
  }
  if (which & kForceNodiag) {
    cmd->add_flag("--force-nodiag", a.force_nodiag, "Mask the diagonal in every layer");
  }
  if (which & kSchedule) {
    ScheduleFlags& f = a.schedule;
    cmd->add_option("--passes", f.passes,
                    "Upward plans: N iterative passes (default: 9, token by token for prompts "
                    "of at most 9 tokens)");
    cmd->add_option("--converge", f.converge,
                    "Upward plans: iterate until the largest relative K/V change < EPS");
    cmd->add_option("--max-passes", f.max_passes, "With --converge: at most N passes")
        ->capture_default_str();
  }
  if (which & kTokenByToken) {
    cmd->add_flag("--token-by-token", a.schedule.token_by_token,
                  "Upward plans: encode one token at a time");
  }
}

Session load_session(const RunArgs& args) {
  return load_session(args.session_options());
}

Session load_session(const SessionOptions& options) {
  Session s = Session::load(options);
  note_random_weights(s, options.model);
  return s;
}

void note_random_weights(const Session& s, const std::string& model) {
  if (s.model_format() != "random") return;
  std::fprintf(stderr,
               "kvlab: note: --model %s names a shape, not trained weights: running random "
               "weights (seed 1; kvlab models lists the trained ones)\n",
               model.c_str());
}

std::string kv_dtype_note(const Session& s, bool with_memory) {
  if (s.kv_memory_bytes() == s.kv_bytes_allocated()) return "";
  return std::string(" (each K and V value rounded to ") + dtype_name(s.kv_dtype()) +
         " as written, held in " + precision_name(s.precision()) + " memory" +
         (with_memory ? ": " + human_bytes(static_cast<double>(s.kv_memory_bytes())) + " allocated"
                      : std::string()) +
         ")";
}

std::string printable(const std::string& bytes) {
  return printable_text(bytes);
}

}  // namespace kvlab::cli
