// kvlab: the command-line front end. Every bad input ends here as one line naming the field, the
// value and what is allowed, with exit status 2.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "kvlab: a testbed for cross-layer KV-cache techniques (CLA, LCKV, SqueezeAttention)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvlab 0.1.0");
  kvlab::cli::add_demo_command(app);
  kvlab::cli::add_work_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kvlab::Error& e) {
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
