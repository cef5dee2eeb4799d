// Running the visualizer from a test: a shell command's status and output, and how to reach an
// X server (xvfb-run when installed, else the DISPLAY set).
#pragma once

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kvlab::test {

struct ShellResult {
  int status = -1;
  std::string output;
};

inline ShellResult shell(const std::string& cmd) {
  ShellResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// How the tests reach an X server: xvfb-run when installed (a private server of a known size),
// else the DISPLAY set. Empty `why` when one is there.
inline std::string display_prefix(std::string& why) {
  if (shell("command -v xvfb-run").status == 0) {
    // Each test process starts its own server; starting the search at a number of its own keeps
    // tests run in parallel (ctest -j) from racing for the same display.
    return "xvfb-run -a -n " + std::to_string(100 + getpid() % 800) +
           " -s '-screen 0 1600x1000x24' ";
  }
  const char* d = std::getenv("DISPLAY");
  if (d && *d) return "";
  why = "no X server: DISPLAY is unset and xvfb-run is not installed (Debian: xvfb)";
  return "";
}

// Xvfb could not start (a busy machine): the output says so.
inline bool xvfb_failed(const std::string& output) {
  return output.find("Xvfb failed to start") != std::string::npos ||
         output.rfind("xvfb-run: error:", 0) == 0;
}

}  // namespace kvlab::test
