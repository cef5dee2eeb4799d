// The visualizer without the CLI: runs one scripted session of the window (visualizer/app.hpp)
// from its arguments, so that the sanitizer build can check the window's memory without building
// the whole command line under ASan.
//   kvlab_viz_driver MODEL SCRIPT REPORT FRAMES WIDTH HEIGHT
#include <cstdio>
#include <exception>
#include <string>

#include "visualizer/app.hpp"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s MODEL SCRIPT REPORT FRAMES WIDTH HEIGHT\n", argv[0]);
    return 2;
  }
  try {
    kvlab::viz::VizOptions o;
    o.session.model = argv[1];
    o.session.allow_random = true;
    o.script = argv[2];
    o.report = argv[3];
    o.frames = std::stoi(argv[4]);
    o.width = std::stoi(argv[5]);
    o.height = std::stoi(argv[6]);
    o.speed = 0;
    return kvlab::viz::run_viz(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab_viz_driver: error: %s\n", e.what());
    return 1;
  }
}
