// kvlab viz: the live visualizer (visualizer/). Built when GLFW and Dear ImGui are found; without
// them the command says so.
#include <memory>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/run_options.hpp"
#include "core/error.hpp"
#if KVLAB_HAVE_GUI
#include "visualizer/app.hpp"
#endif

namespace kvlab::cli {
namespace {

struct VizArgs {
  RunArgs run;
  std::string script, screenshot, report, size = "1280x800";
  int frames = 0;
  double speed = 8;
};

void run_viz_command(const VizArgs& a) {
#if KVLAB_HAVE_GUI
  viz::VizOptions o;
  o.session = a.run.session_options();  // validates --plan's neighbours, --squeeze, ...
  o.session.allow_random = true;
  o.prompt = a.run.prompt;
  o.script = a.script;
  o.screenshot = a.screenshot;
  o.report = a.report;
  o.frames = a.frames;
  o.speed = a.speed;
  if (!a.screenshot.empty()) check_output_directory("--screenshot", a.screenshot);
  if (!a.report.empty()) check_output_directory("--report", a.report);
  const auto x = a.size.find('x');
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    o.width = std::stoi(a.size.substr(0, x));
    o.height = std::stoi(a.size.substr(x + 1));
  } catch (const std::exception&) {
    fail("--size", a.size, "WIDTHxHEIGHT in pixels, e.g. 1280x800");
  }
  if (a.speed < 0) fail("--speed", std::to_string(a.speed), "tokens per second, 0 or more");
  viz::run_viz(o);
#else
  (void)a;
  fail("viz", "(not built)",
       "a build with GLFW 3.3 and Dear ImGui (Debian: libglfw3-dev libimgui-dev libstb-dev; "
       "scripts/setup.sh installs them)");
#endif
}

}  // namespace

void add_viz_command(CLI::App& app) {
  auto a = std::make_shared<VizArgs>();
  a->run.model = "default";  // not required: the built-in model (or a preset) opens by itself
  auto* cmd = app.add_subcommand("viz", "The live visualizer: plans, KV footprint, LCKV, Squeeze");
  add_run_options(cmd, a->run, kContext | kPolicy | kBudget | kSchedule | kSqueeze);
  cmd->add_option("--prompt", a->run.prompt, "Prompt text (default: a short story opening)");
  cmd->add_option("--script", a->script, "Run a scripted session (docs/visualizer.md)");
  cmd->add_option("--screenshot", a->screenshot, "Write the last frame as a PNG");
  cmd->add_option("--report", a->report, "Write frames, frame times and panels as JSON");
  cmd->add_option("--frames", a->frames, "Stop after N frames (0: until closed)");
  cmd->add_option("--size", a->size, "Window size WIDTHxHEIGHT")->capture_default_str();
  cmd->add_option("--speed", a->speed, "Tokens per second while running (0: max)")
      ->capture_default_str();
  cmd->callback([a] {
    VizArgs args = *a;
    if (args.run.model == "default") args.run.model.clear();
    run_viz_command(args);
  });
}

}  // namespace kvlab::cli
