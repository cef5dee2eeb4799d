// A scripted visualizer session (`kvlab viz --script FILE`): one command per line, run by the UI
// thread exactly as a person would click, so a test or a docs screenshot needs no person.
//
//   model SPEC        load a model (a built-in name, a checkpoint path, a preset or config.json)
//   plan SPEC         run the model under another plan ("cla:2", "lckv:2", "0_0_2_2")
//   policy P          full | window[:W] | streaming[:S] | h2o[:R]     budget B   tokens or fraction
//   squeeze F0,F3     SqueezeAttention budgets ("off" turns them off)
//   prompt TEXT       the prompt (the rest of the line)
//   prefill           encode the prompt          step N   decode N tokens (greedy)
//   run | pause | reset                          trace    LCKV trace of the prompt, with --exact
//   compare PLAN      open Compare and run the prompt under PLAN beside the main run
//   wait              until the workers have finished everything asked of them
//   frames N          draw N frames              resize W H   resize the window
//   screenshot FILE   write the next frame as a PNG
//   screenshot-panel PANEL FILE   one panel of it (controls, graph, footprint, lckv, attention,
//                     squeeze, text, cache)
//   # ...             a comment; blank lines are skipped
#pragma once

#include <string>
#include <vector>

namespace kvlab::viz {

struct ScriptCommand {
  std::string verb;  // as above
  std::string arg;   // the rest of the line, trimmed ("" when none)
  int n = 0, m = 0;  // step N, frames N, resize W H
  int line = 0;      // 1-based, for messages
};

// Parses a script; throws kvlab::Error naming "--script", the line and what is allowed.
std::vector<ScriptCommand> parse_script(const std::string& text);
// Reads and parses a file (an unreadable file is a named error too).
std::vector<ScriptCommand> load_script(const std::string& path);

}  // namespace kvlab::viz
