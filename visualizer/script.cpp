#include "visualizer/script.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "session/session.hpp"

namespace kvlab::viz {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

int parse_count(const std::string& text, int line, const std::string& verb, int lo, int hi) {
  std::size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi) {
    fail(
        "--script", "line " + std::to_string(line) + ": " + verb + " " + text,
        verb + " takes a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v;
}

}  // namespace

std::vector<ScriptCommand> parse_script(const std::string& text) {
  static const std::set<std::string> with_arg = {"model",   "plan",   "policy",     "budget",
                                                 "squeeze", "prompt", "screenshot", "compare"};
  static const std::set<std::string> bare = {"prefill", "run", "pause", "reset", "trace", "wait"};
  std::vector<ScriptCommand> out;
  std::istringstream in(text);
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    const std::string l = trim(raw);
    if (l.empty() || l[0] == '#') continue;
    const auto sp = l.find_first_of(" \t");
    ScriptCommand c;
    c.line = line;
    c.verb = l.substr(0, sp);
    c.arg = sp == std::string::npos ? "" : trim(l.substr(sp));
    if (with_arg.count(c.verb)) {
      if (c.arg.empty()) {
        fail("--script", "line " + std::to_string(line) + ": " + c.verb,
             c.verb + " needs an argument");
      }
      if (c.verb == "squeeze" && c.arg != "off") {
        try {
          parse_squeeze(c.arg).validate();
        } catch (const Error& e) {
          fail("--script", "line " + std::to_string(line) + ": " + l,
               std::string("squeeze F0,F3 or off (") + e.what() + ")");
        }
      }
    } else if (bare.count(c.verb)) {
      if (!c.arg.empty()) {
        fail("--script", "line " + std::to_string(line) + ": " + l, c.verb + " takes no argument");
      }
    } else if (c.verb == "screenshot-panel") {
      static const std::set<std::string> panels = {"controls",  "graph",   "footprint", "lckv",
                                                   "attention", "squeeze", "text",      "cache"};
      const auto sp = c.arg.find(' ');
      if (sp == std::string::npos || !panels.count(c.arg.substr(0, sp))) {
        fail("--script", "line " + std::to_string(line) + ": " + l,
             "screenshot-panel PANEL FILE, PANEL one of controls, graph, footprint, lckv, "
             "attention, squeeze, text, cache");
      }
    } else if (c.verb == "step" || c.verb == "frames") {
      c.n = parse_count(c.arg, line, c.verb, 1, 1000000);
    } else if (c.verb == "attention") {  // attention LAYER STAGE (scores | mask | softmax)
      std::istringstream a(c.arg);
      std::string layer, stage, extra;
      a >> layer >> stage >> extra;
      static const std::map<std::string, int> stages = {{"scores", 0}, {"mask", 1}, {"softmax", 2}};
      if (stage.empty() || !extra.empty() || !stages.count(stage)) {
        fail("--script", "line " + std::to_string(line) + ": " + l,
             "attention LAYER STAGE, STAGE one of scores, mask, softmax");
      }
      c.n = parse_count(layer, line, c.verb, 0, 4096);
      c.m = stages.at(stage);
    } else if (c.verb == "resize") {
      std::istringstream a(c.arg);
      std::string w, h, extra;
      a >> w >> h >> extra;
      if (h.empty() || !extra.empty()) {
        fail("--script", "line " + std::to_string(line) + ": " + l, "resize W H (pixels)");
      }
      c.n = parse_count(w, line, c.verb, 200, 8192);
      c.m = parse_count(h, line, c.verb, 150, 8192);
    } else {
      fail("--script", "line " + std::to_string(line) + ": " + c.verb,
           "one of model, plan, policy, budget, squeeze, prompt, prefill, step, run, pause, "
           "reset, trace, wait, frames, resize, screenshot, screenshot-panel, compare, attention");
    }
    out.push_back(c);
  }
  return out;
}

std::vector<ScriptCommand> load_script(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("--script", path, "a readable script file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_script(ss.str());
}

}  // namespace kvlab::viz
