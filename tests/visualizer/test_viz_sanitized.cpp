// A long scripted session of the window: plan switches, steps, runs, resets and resizes over
// 1,000 frames. Labelled `unit`, so scripts/test.sh runs it in the Release build and again in the
// asan build, where AddressSanitizer and LeakSanitizer check the visualizer's memory (the app runs
// the leak check itself before glfwTerminate, whose Mesa driver leaks a few bytes). It drives the
// window through kvlab_viz_driver, not `kvlab viz`, so that the CLI need not be built under ASan.
// Skipped only when no X server can be reached.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "viz_shell.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(VizSanitized, AThousandFrameSessionEndsCleanly) {
  std::string why;
  const std::string prefix = kvlab::test::display_prefix(why);
  if (!why.empty()) GTEST_SKIP() << why;
  char tmpl[] = "/tmp/kvlab-vizsan-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;

  std::string script;
  const char* plans[] = {"cla:2", "lckv:2", "standard", "0_0_2_2", "lckv:2"};
  for (const char* p : plans) {
    script += std::string("plan ") + p + "\nstep 3\nframes 50\nrun\nframes 50\npause\ntrace\n";
    script += "resize 520 360\nframes 30\nresize 480 320\nreset\nprefill\nframes 30\n";
  }
  // 5 x 160 + 200 + 1 frames of the script's own; `wait` adds what the worker needs (under a
  // sanitizer on a busy machine, a squeeze can outlast any fixed frame budget), and the session
  // ends when the script does.
  script += "frames 200\nsqueeze 0.5,0.2\nwait\nframes 1\n";
  std::ofstream(dir + "/script.txt") << script;

  const std::string model = std::string(KVLAB_SOURCE_DIR) + "/tests/data/tiny_config.json";
  const std::string cmd = prefix + KVLAB_VIZ_DRIVER + " " + model + " " + dir + "/script.txt " +
                          dir + "/report.json 0 480 320";
  kvlab::test::ShellResult r = kvlab::test::shell(cmd);
  if (kvlab::test::xvfb_failed(r.output)) r = kvlab::test::shell(cmd);  // once more
  if (kvlab::test::xvfb_failed(r.output)) {
    fs::remove_all(dir);
    GTEST_SKIP() << "Xvfb could not start: " << r.output;
  }
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  EXPECT_EQ(r.output.find("ERROR: "), std::string::npos) << r.output;  // ASan, LSan, UBSan
  std::ifstream f(dir + "/report.json");
  ASSERT_TRUE(f) << "no report: " << r.output;
  const json rep = json::parse(f);
  EXPECT_GE(rep["frames"].get<int>(), 1001);
  EXPECT_EQ(rep["last_frame"]["worker"]["error"], "") << rep["last_frame"].dump(1);
  EXPECT_EQ(rep["script_lines_run"].get<int>(), 5 * 13 + 4);
  fs::remove_all(dir);
}

}  // namespace
