#include "reference/policies.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "core/error.hpp"

namespace kvlab::ref {
namespace {

int parse_int(const std::string& field, const std::string& s, int lo) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < lo || v > (1 << 24)) {
    fail(field, s, "must be an integer in [" + std::to_string(lo) + ", 16777216]");
  }
  return static_cast<int>(v);
}

}  // namespace

PolicySpec PolicySpec::parse(const std::string& text) {
  PolicySpec p;
  std::string head = text, options;
  if (const auto comma = text.find(','); comma != std::string::npos) {
    head = text.substr(0, comma);
    options = text.substr(comma + 1);
  }
  const auto colon = head.find(':');
  const std::string name = head.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : head.substr(colon + 1);
  if (name == "full") {
    p.kind = SequencePolicy::full;
    if (!arg.empty()) fail("--policy", text, "full takes no argument");
  } else if (name == "window") {
    p.kind = SequencePolicy::window;
    if (!arg.empty()) p.window = parse_int("--policy window:W", arg, 1);
  } else if (name == "streaming") {
    p.kind = SequencePolicy::streaming;
    if (!arg.empty()) p.sinks = parse_int("--policy streaming:S", arg, 0);
  } else if (name == "h2o") {
    p.kind = SequencePolicy::h2o;
    if (!arg.empty()) p.recent = parse_int("--policy h2o:R", arg, 0);
  } else {
    fail("--policy", text,
         "unknown policy; use full, window[:W], streaming[:S], h2o[:R][,norm=count]");
  }
  if (!options.empty()) {
    if (options == "norm=count" && p.kind == SequencePolicy::h2o) {
      p.norm_count = true;
    } else {
      fail("--policy", text, "the only option is norm=count, for h2o");
    }
  }
  return p;
}

std::string PolicySpec::to_string() const {
  switch (kind) {
    case SequencePolicy::full:
      return "full";
    case SequencePolicy::window:
      return window ? "window:" + std::to_string(window) : "window";
    case SequencePolicy::streaming:
      return "streaming:" + std::to_string(sinks);
    case SequencePolicy::h2o:
      return "h2o" + (recent >= 0 ? ":" + std::to_string(recent) : std::string()) +
             (norm_count ? ",norm=count" : "");
  }
  return "?";
}

BudgetSpec BudgetSpec::parse(const std::string& text) {
  // One syntax in every command: an integer is tokens, P% a percentage of the prompt. A bare
  // decimal is refused: "1" (one token) and "1.0" (the whole prompt) must not look alike.
  BudgetSpec b;
  if (!text.empty() && text.back() == '%') {
    const std::string number = text.substr(0, text.size() - 1);
    char* end = nullptr;
    const double percent = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0' || !(percent > 0) || percent > 100) {
      fail("--budget", text, "a percentage of the prompt must be in (0%, 100%], e.g. 25%");
    }
    b.fraction = percent / 100.0;
    return b;
  }
  if (text.find_first_of(".eE") != std::string::npos) {
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    std::string hint =
        "write tokens as an integer (--budget 64) or a share of the prompt as a "
        "percentage (--budget 25%)";
    if (*end == '\0' && x > 0 && x <= 1) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%g%%", x * 100);
      hint += "; for this fraction write " + std::string(pct);
    }
    fail("--budget", text, hint);
  }
  b.tokens = parse_int("--budget", text, 1);
  return b;
}

std::string BudgetSpec::to_string() const {
  if (tokens > 0) return std::to_string(tokens);
  char pct[32];
  std::snprintf(pct, sizeof pct, "%g%%", fraction * 100);
  return pct;
}

int fraction_tokens(double fraction, int prompt_tokens) {
  const double exact = fraction * prompt_tokens;
  return static_cast<int>(std::floor(exact + std::abs(exact) * 1e-12));
}

int BudgetSpec::resolve(int prompt_tokens) const {
  if (tokens > 0) return tokens;
  const int b = fraction_tokens(fraction, prompt_tokens);
  if (b < 1) {
    // The least percentage that keeps a token of this prompt, rounded up to a hundredth.
    const double least = std::ceil(10000.0 / std::max(1, prompt_tokens)) / 100.0;
    char hint[64];
    std::snprintf(hint, sizeof hint, "%g%%", std::min(100.0, least));
    fail("--budget", to_string(),
         to_string() + " of a prompt of " + std::to_string(prompt_tokens) + " tokens keeps floor(" +
             to_string() + " · " + std::to_string(prompt_tokens) + ") = 0 tokens; give at least " +
             hint + " or a budget in tokens");
  }
  return b;
}

int min_budget(const PolicySpec& p) {
  switch (p.kind) {
    case SequencePolicy::streaming:
      return p.sinks + 1;
    case SequencePolicy::h2o:
      return std::max(1, p.recent);
    default:
      return 1;
  }
}

BankBudget check_bank_budget(const PolicySpec& p, int budget, BudgetSource source, int bank) {
  const std::string of_bank = bank >= 0 ? " (bank " + std::to_string(bank) + ")" : "";
  const std::string policy = p.to_string();
  if (budget < 1) {
    fail("--budget", std::to_string(budget) + " tokens" + of_bank, "a bank keeps at least 1 token");
  }
  if (source == BudgetSource::squeeze) {
    if (p.kind == SequencePolicy::full) {
      fail("--policy", policy,
           "SqueezeAttention budgets need an evicting policy (window, streaming, h2o)");
    }
    if (p.kind == SequencePolicy::window && p.window > 0) {
      fail("--policy", policy,
           "window:W fixes every bank at W tokens, which SqueezeAttention's per-bank budgets would "
           "override; use window without :W");
    }
  } else if (p.kind == SequencePolicy::window && p.window > 0 && budget != p.window) {
    fail("--budget", std::to_string(budget) + of_bank,
         policy + " already sets the budget to " + std::to_string(p.window));
  }
  const int least = min_budget(p);
  if (budget >= least) return {budget, ""};
  const std::string why = p.kind == SequencePolicy::streaming
                              ? policy + " needs more than its " + std::to_string(p.sinks) +
                                    " sinks (the budget includes them)"
                              : policy + " keeps its " + std::to_string(p.recent) +
                                    " most recent tokens and the heaviest of the rest (a smaller "
                                    "budget would leave only a window)";
  if (source == BudgetSource::user) {
    fail(p.kind == SequencePolicy::streaming ? "--budget" : "--policy",
         p.kind == SequencePolicy::streaming
             ? std::to_string(budget) + " tokens" + of_bank
             : policy + " with a budget of " + std::to_string(budget) + of_bank,
         "a budget must be at least " + std::to_string(least) + ": " + why);
  }
  return {least, (bank >= 0 ? "bank " + std::to_string(bank) + ": " : std::string()) +
                     "SqueezeAttention budget " + std::to_string(budget) + " raised to " +
                     std::to_string(least) + ": " + why};
}

std::vector<int> select_cells(const PolicySpec& p, int budget, const std::vector<int>& pos,
                              const std::vector<double>& score, const std::vector<double>& count) {
  const int n = static_cast<int>(pos.size());
  std::vector<int> all(n);
  std::iota(all.begin(), all.end(), 0);
  if (n <= budget || p.kind == SequencePolicy::full) return all;
  // Cells by position, newest first (ties cannot happen: one cell per position per head).
  std::vector<int> by_recency = all;
  std::sort(by_recency.begin(), by_recency.end(), [&](int a, int b) { return pos[a] > pos[b]; });
  std::vector<char> keep(n, 0);
  auto keep_recent = [&](int k) {
    for (int i = 0, taken = 0; i < n && taken < k; ++i) {
      if (!keep[by_recency[i]]) {
        keep[by_recency[i]] = 1;
        ++taken;
      }
    }
  };
  switch (p.kind) {
    case SequencePolicy::full:
      break;
    case SequencePolicy::window:
      keep_recent(budget);
      break;
    case SequencePolicy::streaming: {
      // The sinks are the oldest cells (the first tokens of the sequence are never evicted).
      const int sinks = std::min(p.sinks, budget);
      for (int i = n - 1, taken = 0; i >= 0 && taken < sinks; --i, ++taken) {
        keep[by_recency[i]] = 1;
      }
      keep_recent(budget - sinks);
      break;
    }
    case SequencePolicy::h2o: {
      const int recent = std::min(p.recent >= 0 ? p.recent : budget / 2, budget);
      keep_recent(recent);
      std::vector<int> rest;
      for (int i : all) {
        if (!keep[i]) rest.push_back(i);
      }
      auto value = [&](int i) {
        return p.norm_count ? (count[i] > 0 ? score[i] / count[i] : 0.0) : score[i];
      };
      // Heaviest first; equal scores keep the older token (deterministic).
      std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) {
        return value(a) != value(b) ? value(a) > value(b) : pos[a] < pos[b];
      });
      for (int i = 0; i < budget - recent && i < static_cast<int>(rest.size()); ++i) {
        keep[rest[i]] = 1;
      }
      break;
    }
  }
  std::vector<int> out;
  for (int i : all) {
    if (keep[i]) out.push_back(i);
  }
  return out;
}

}  // namespace kvlab::ref
