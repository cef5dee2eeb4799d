// `kvlab viz` in a real window: scripted sessions under Xvfb (xvfb-run) or the DISPLAY given,
// screenshots read back and checked pixel by pixel against the report's numbers. Skipped only
// when no X server can be reached.
#include <gtest/gtest.h>
#include <stb_image.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "viz_shell.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kTiny = std::string(KVLAB_SOURCE_DIR) + "/tests/data/tiny_config.json";

using kvlab::test::display_prefix;
using kvlab::test::shell;
using kvlab::test::ShellResult;
using kvlab::test::xvfb_failed;

class VizWindow : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = display_prefix(why_);
    if (!why_.empty()) GTEST_SKIP() << why_;
    char tmpl[] = "/tmp/kvlab-viz-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs kvlab viz with `args` (and a report); returns the report.
  json viz(const std::string& args, const std::string& script = "") {
    std::string cmd = prefix_ + KVLAB_BINARY + " viz --report " + dir_ + "/report.json " + args;
    if (!script.empty()) {
      std::ofstream(dir_ + "/script.txt") << script;
      cmd += " --script " + dir_ + "/script.txt";
    }
    ShellResult r = shell(cmd);
    if (r.output.find("Xvfb failed to start") != std::string::npos) r = shell(cmd);  // once more
    if (xvfb_failed(r.output)) {
      skipped_ = "Xvfb could not start: " + r.output;
      return {};
    }
    EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
    std::ifstream f(dir_ + "/report.json");
    if (!f) {
      ADD_FAILURE() << "no report: " << r.output;
      return {};
    }
    return json::parse(f);
  }

  std::string dir_, prefix_, why_, skipped_;
};

struct Image {
  int w = 0, h = 0;
  std::vector<unsigned char> px;  // RGBA
  explicit Image(const std::string& path) {
    int n = 0;
    unsigned char* d = stbi_load(path.c_str(), &w, &h, &n, 4);
    if (d) {
      px.assign(d, d + static_cast<std::size_t>(w) * h * 4);
      stbi_image_free(d);
    }
  }
  std::array<int, 3> at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * w + x) * 4;
    return {px[i], px[i + 1], px[i + 2]};
  }
};

bool near(std::array<int, 3> a, std::array<int, 3> b, int tol = 6) {
  for (int i = 0; i < 3; ++i) {
    if (std::abs(a[i] - b[i]) > tol) return false;
  }
  return true;
}

const std::array<int, 3> kKvColour{46, 168, 158};         // colour::kv_layer
const std::array<int, 3> kStandardColour{150, 150, 160};  // colour::standard

// Pixels of `colour` in a vertical scan through the middle of rect r (x, y, w, h).
int run_of(const Image& img, const json& r, std::array<int, 3> colour) {
  const int x = static_cast<int>(r[0].get<double>() + r[2].get<double>() / 2);
  const int y0 = static_cast<int>(r[1].get<double>()) - 3;
  const int y1 = static_cast<int>(r[1].get<double>() + r[3].get<double>()) + 3;
  int n = 0;
  for (int y = std::max(0, y0); y < std::min(img.h, y1); ++y) n += near(img.at(x, y), colour);
  return n;
}

std::array<int, 3> centre(const Image& img, const json& r) {
  return img.at(static_cast<int>(r[0].get<double>() + r[2].get<double>() / 2),
                static_cast<int>(r[1].get<double>() + r[3].get<double>() / 2));
}

TEST_F(VizWindow, ClaFootprintBarsAreHalfTheStandardPlans) {
  const json rep = viz("--model " + kTiny + " --prompt 'Once upon a time'",
                       "wait\nscreenshot " + dir_ + "/standard.png\nplan cla:2\nwait\nscreenshot " +
                           dir_ + "/cla.png\n");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  ASSERT_EQ(rep["captures"].size(), 2u) << rep.dump(1);
  const json& std_cap = rep["captures"][0];
  const json& cla_cap = rep["captures"][1];
  EXPECT_EQ(std_cap["worker"]["map"], "0_1_2_3");
  EXPECT_EQ(cla_cap["worker"]["map"], "0_0_2_2");
  EXPECT_EQ(cla_cap["footprint"]["banks"], 2);
  EXPECT_EQ(cla_cap["footprint"]["bytes_held"].get<long>() * 2,
            cla_cap["footprint"]["standard_bytes"].get<long>());

  for (const json* cap : {&std_cap, &cla_cap}) {
    const Image img((*cap)["path"].get<std::string>());
    ASSERT_EQ(img.w, 1280);
    ASSERT_EQ(img.h, 800);
    const json& rects = (*cap)["rects"];
    const json& plan = rects["footprint.total.plan"];
    const json& standard = rects["footprint.total.standard"];
    // The bars are painted where the report says, in their colours, at their heights.
    EXPECT_TRUE(near(centre(img, plan), kKvColour));
    EXPECT_TRUE(near(centre(img, standard), kStandardColour));
    const int plan_px = run_of(img, plan, kKvColour);
    const int standard_px = run_of(img, standard, kStandardColour);
    EXPECT_NEAR(plan_px, plan[3].get<double>(), 2);
    EXPECT_NEAR(standard_px, standard[3].get<double>(), 2);
    const double expected = cap == &std_cap ? 1.0 : 0.5;
    EXPECT_NEAR(static_cast<double>(plan_px) / standard_px, expected, 0.02) << (*cap)["path"];
    // Layer 1: its own bank under the standard plan (solid), layer 0's under cla:2 (faded).
    EXPECT_EQ(near(centre(img, rects["footprint.layer.1"]), kKvColour), cap == &std_cap);
    EXPECT_TRUE(near(centre(img, rects["footprint.layer.0"]), kKvColour));
  }
}

// Every panel draws content after a session that changes plan, traces LCKV and turns on Squeeze.
TEST_F(VizWindow, EveryPanelRendersThroughAScriptedSession) {
  const json rep =
      viz("--model " + kTiny, "plan lckv:2\nwait\ntrace\nwait\nscreenshot " + dir_ +
                                  "/lckv.png\nsqueeze 0.5,0.2\nwait\nstep 4\nwait\nscreenshot " +
                                  dir_ + "/squeeze.png\n");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  ASSERT_EQ(rep["captures"].size(), 2u) << rep.dump(1);
  const json& lckv = rep["captures"][0];
  for (const char* p :
       {"controls", "graph", "footprint", "lckv", "attention", "squeeze", "text", "cache"}) {
    EXPECT_TRUE(lckv["panels"].value(p, false)) << p;
  }
  // The attention map of an upward layer (lckv:2 on 4 layers: layer 1 reads layer 2) after the
  // prefill: a square of query rows x cells with the causal part lit and the rest masked dark.
  const json& map = lckv["rects"]["attention.map"];
  EXPECT_NEAR(map[2].get<double>(), map[3].get<double>(), 1.0);
  EXPECT_EQ(lckv["lckv"]["series"], 1);
  EXPECT_EQ(lckv["lckv"]["passes"], 9);
  EXPECT_EQ(lckv["worker"]["error"], "");
  // The K line of the convergence chart is orange inside the chart.
  const Image a(lckv["path"].get<std::string>());
  const json& chart = lckv["rects"]["lckv.chart"];
  int orange = 0;
  for (int y = static_cast<int>(chart[1].get<double>());
       y < static_cast<int>(chart[1].get<double>() + chart[3].get<double>()); ++y) {
    for (int x = static_cast<int>(chart[0].get<double>());
         x < static_cast<int>(chart[0].get<double>() + chart[2].get<double>()); ++x) {
      orange += near(a.at(x, y), {240, 140, 40}, 30);
    }
  }
  EXPECT_GT(orange, 200);

  const json& sq = rep["captures"][1];
  EXPECT_TRUE(sq["squeeze"]["clustered"].get<bool>());
  EXPECT_EQ(sq["worker"]["generated"], 4);
  EXPECT_EQ(sq["footprint"]["steps"], 5);
  // With budgets, the cache map shows dropped positions (dark red) beside the kept ones.
  {
    const Image img(sq["path"].get<std::string>());
    const json& map = sq["rects"]["cache.map"];
    int dropped = 0, kept = 0;
    for (int y = static_cast<int>(map[1].get<double>());
         y < static_cast<int>(map[1].get<double>() + map[3].get<double>()); ++y) {
      for (int x = static_cast<int>(map[0].get<double>());
           x < static_cast<int>(map[0].get<double>() + map[2].get<double>()); ++x) {
        dropped += near(img.at(x, y), {110, 45, 50}, 3);
        kept += near(img.at(x, y), kKvColour, 3);
      }
    }
    EXPECT_GT(dropped, 100);
    EXPECT_GT(kept, 20);
  }
  // Squeeze bars take their clusters' colours (red, amber, blue), never the unclustered grey.
  const Image b(sq["path"].get<std::string>());
  const std::array<std::array<int, 3>, 3> clusters{{{230, 75, 75}, {240, 180, 50}, {80, 140, 230}}};
  for (int l = 0; l < 4; ++l) {
    const auto c = centre(b, sq["rects"]["squeeze.layer." + std::to_string(l)]);
    EXPECT_TRUE(near(c, clusters[0]) || near(c, clusters[1]) || near(c, clusters[2]))
        << "layer " << l << ": " << c[0] << "," << c[1] << "," << c[2];
  }
}

// Compare: plan B (cla:2) beside the main run (standard) on the same prompt and tokens.
TEST_F(VizWindow, CompareRunsASecondPlanBesideTheFirst) {
  const json rep = viz("--model " + kTiny, "step 3\nwait\ncompare cla:2\nwait\nscreenshot " + dir_ +
                                               "/cmp.png\nstep 4\nwait\nframes 5\nwait\n");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  // B followed A's 4 more tokens; both plans were scored on A's text when B started (BOS + the
  // default prompt + 3 tokens), and they differ.
  const json& cmp = rep["compare"];
  EXPECT_EQ(cmp["error"], "") << cmp.dump(1);
  EXPECT_EQ(cmp["plan"], "cla:2");
  EXPECT_EQ(cmp["generated"], 7);
  ASSERT_EQ(cmp["scores"].size(), 2u) << cmp.dump(1);
  EXPECT_EQ(cmp["scores"][1]["plan"], "cla:2");
  EXPECT_GT(cmp["scores"][0]["perplexity"].get<double>(), 1.0);
  EXPECT_NE(cmp["scores"][0]["perplexity"], cmp["scores"][1]["perplexity"]);
  ASSERT_EQ(rep["captures"].size(), 1u);
  const json& cap = rep["captures"][0];
  EXPECT_TRUE(cap["panels"].value("compare", false)) << cap.dump(1);
  const json& a = cap["rects"]["compare.a"];
  const json& b = cap["rects"]["compare.b"];
  const json& standard = cap["rects"]["compare.standard"];
  EXPECT_NEAR(a[2].get<double>(), standard[2].get<double>(), 1.0);  // A runs standard
  EXPECT_NEAR(b[2].get<double>() * 2, standard[2].get<double>(), 2.0);
  const Image img(dir_ + "/cmp.png");
  EXPECT_TRUE(near(centre(img, b), {240, 140, 40}));
}

TEST_F(VizWindow, ResizeMidRunRelaysThePanels) {
  const json rep =
      viz("--model " + kTiny, "step 2\nresize 900 650\nwait\nframes 3\nscreenshot " + dir_ +
                                  "/small.png\nscreenshot-panel footprint " + dir_ + "/fp.png\n");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  ASSERT_EQ(rep["captures"].size(), 2u);
  const json& cap = rep["captures"][0];
  // One panel alone: the footprint, cropped from the frame, holds the standard bar's grey.
  const Image panel(dir_ + "/fp.png");
  EXPECT_GT(panel.w, 200);
  EXPECT_LT(panel.w, 700);
  EXPECT_GT(panel.h, 100);
  EXPECT_LT(panel.h, 500);
  int grey = 0;
  for (std::size_t i = 0; i + 2 < panel.px.size(); i += 4) {
    grey += near({panel.px[i], panel.px[i + 1], panel.px[i + 2]}, kStandardColour, 2);
  }
  EXPECT_GT(grey, 500);
  const Image img(cap["path"].get<std::string>());
  EXPECT_EQ(img.w, 900);
  EXPECT_EQ(img.h, 650);
  for (const char* p :
       {"controls", "graph", "footprint", "lckv", "attention", "squeeze", "text", "cache"}) {
    EXPECT_TRUE(cap["panels"].contains(p)) << p;
  }
  const json& standard = cap["rects"]["footprint.total.standard"];
  EXPECT_LE(standard[0].get<double>() + standard[2].get<double>(), 900);
  EXPECT_TRUE(near(centre(img, standard), kStandardColour));
}

TEST_F(VizWindow, AMissingModelIsShownAsAnError) {
  const json rep =
      viz("--model /nonexistent/model-dir --frames 20 --screenshot " + dir_ + "/e.png");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  const json& last = rep["last_frame"];
  EXPECT_FALSE(last["worker"]["loaded"].get<bool>());
  EXPECT_NE(last["worker"]["error"].get<std::string>().find("/nonexistent/model-dir"),
            std::string::npos)
      << last.dump(1);
  EXPECT_EQ(rep["frames"], 20);
  // The error is written in red in the controls column.
  const Image img(dir_ + "/e.png");
  int red = 0;
  for (int y = 0; y < img.h; ++y) {
    for (int x = 0; x < img.w / 4; ++x) red += near(img.at(x, y), {240, 80, 80}, 40);
  }
  EXPECT_GT(red, 30);
}

TEST_F(VizWindow, TheDefaultSessionMovesAtOnce) {
  const json rep = viz("--model " + kTiny + " --frames 120 --speed 30");
  if (!skipped_.empty()) GTEST_SKIP() << skipped_;
  const json& last = rep["last_frame"];
  EXPECT_TRUE(last["worker"]["loaded"].get<bool>());
  EXPECT_GT(last["worker"]["generated"].get<int>(), 0) << last.dump(1);
  EXPECT_EQ(rep["frames"], 120);
  RecordProperty("frame_ms_p50", std::to_string(rep["frame_ms"]["p50"].get<double>()));
  RecordProperty("frame_ms_p95", std::to_string(rep["frame_ms"]["p95"].get<double>()));
  std::printf("frame time p50 %.1f ms, p95 %.1f ms\n", rep["frame_ms"]["p50"].get<double>(),
              rep["frame_ms"]["p95"].get<double>());
}

TEST(VizCommand, BadOptionsAreNamedBeforeAnyWindow) {
  const ShellResult a = shell(std::string(KVLAB_BINARY) + " viz --size 10x10 --frames 1");
  EXPECT_EQ(a.status, 2) << a.output;
  EXPECT_NE(a.output.find("--size"), std::string::npos) << a.output;
  const ShellResult b = shell(std::string(KVLAB_BINARY) + " viz --script /nonexistent/s.txt");
  EXPECT_EQ(b.status, 2) << b.output;
  EXPECT_NE(b.output.find("--script"), std::string::npos) << b.output;
  const ShellResult c =
      shell(std::string(KVLAB_BINARY) + " viz --screenshot /nonexistent/dir/x.png");
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("--screenshot"), std::string::npos) << c.output;
}

}  // namespace
