// `kvlab viz`: the window, its frame loop and the headless modes (a script, screenshots, a
// report). No GL types here, so cli/cmd_viz.cpp includes it freely.
#pragma once

#include <string>

#include "session/session.hpp"

namespace kvlab::viz {

struct VizOptions {
  SessionOptions session;  // the model and how to run it (session.model "" : the default)
  std::string prompt;      // "" : the default prompt
  std::string script;      // a script file (visualizer/script.hpp); "" : none
  std::string screenshot;  // a PNG written after the last frame; "" : none
  std::string report;      // a JSON report written at the end; "" : none
  int frames = 0;          // stop after N frames (0: until the window closes or the script ends)
  int width = 1280, height = 800;
  double speed = 8;  // tokens per second while running (0: as fast as the model goes)
};

// The model `kvlab viz` opens with no --model: the built-in tiny-standard when it exists, else
// the stories15m shape with random weights.
std::string default_model();
std::string default_prompt();

// Opens the window and runs until it closes (or the frames or the script end). Throws
// kvlab::Error on a bad option or when no window can be opened (no display).
int run_viz(const VizOptions& options);

}  // namespace kvlab::viz
