// kvlab: the command-line front end. Every bad input ends here as one line naming the field, the
// value and what is allowed, with exit status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "kvlab: a testbed for cross-layer KV-cache techniques (CLA, LCKV, SqueezeAttention)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvlab 0.1.0");
  kvlab::cli::add_demo_command(app);
  kvlab::cli::add_work_commands(app);
  // An error starts a line of its own, even after output that ended mid-line (generate's prompt).
  auto end_line = [] {
    if (kvlab::cli::stdout_mid_line()) std::fputc('\n', stdout);
    std::fflush(stdout);
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error (an unknown flag, a missing or malformed
    // value) is one line and exits 2, like every other bad input, not with CLI11's own codes
    // (106, 109, ...).
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "kvlab: error: %s (see --help)\n", e.what());
    return 2;
  } catch (const kvlab::Error& e) {
    end_line();
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    end_line();
    std::fprintf(stderr, "kvlab: internal error: %s\n", e.what());
    return 1;
  }
  return kvlab::cli::exit_status();
}
