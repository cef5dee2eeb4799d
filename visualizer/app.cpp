// The window and its frame loop: GLFW 3.3 + OpenGL 3.3 core + Dear ImGui 1.86 (Debian's static
// libimgui.a with the GLFW and OpenGL3 backends). The UI thread draws copies; the Worker runs the
// model. Headless: a script, screenshots (glReadPixels + stb_image_write from libstb) and a JSON
// report, for tests and for the docs' pictures.
#include "visualizer/app.hpp"

#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define KVLAB_LEAK_CHECK 1
#else
#define KVLAB_LEAK_CHECK 0
#endif

#include "core/error.hpp"
#include "core/formats/atomic_file.hpp"
#include "session/builtin_models.hpp"
#include "visualizer/panels.hpp"
#include "visualizer/script.hpp"

namespace kvlab::viz {
namespace {

std::string g_glfw_error;

void on_glfw_error(int code, const char* text) {
  g_glfw_error = std::string(text) + " (GLFW error " + std::to_string(code) + ")";
}

// The back buffer as a PNG (rows flipped: GL's origin is the bottom left).
// `crop` (window pixels; w = 0: the whole frame) selects a panel.
void write_screenshot(const std::string& path, int w, int h, Rect crop = {}) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w) * h * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, px.data());
  std::vector<unsigned char> flipped(px.size());
  const std::size_t row = static_cast<std::size_t>(w) * 4;
  for (int y = 0; y < h; ++y) {
    std::copy_n(px.data() + static_cast<std::size_t>(h - 1 - y) * row, row,
                flipped.data() + static_cast<std::size_t>(y) * row);
  }
  for (std::size_t i = 3; i < flipped.size(); i += 4) flipped[i] = 255;  // opaque
  if (crop.w > 0) {
    const int x0 = std::clamp(static_cast<int>(crop.x), 0, w - 1);
    const int y0 = std::clamp(static_cast<int>(crop.y), 0, h - 1);
    const int cw = std::clamp(static_cast<int>(crop.w), 1, w - x0);
    const int ch = std::clamp(static_cast<int>(crop.h), 1, h - y0);
    std::vector<unsigned char> part(static_cast<std::size_t>(cw) * ch * 4);
    for (int y = 0; y < ch; ++y) {
      std::copy_n(flipped.data() + (static_cast<std::size_t>(y0 + y) * w + x0) * 4,
                  static_cast<std::size_t>(cw) * 4,
                  part.data() + static_cast<std::size_t>(y) * cw * 4);
    }
    flipped = std::move(part);
    w = cw;
    h = ch;
  }
  const std::size_t out_row = static_cast<std::size_t>(w) * 4;
  std::string png;
  stbi_write_png_to_func(
      [](void* ctx, void* data, int size) {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
      },
      &png, w, h, 4, flipped.data(), static_cast<int>(out_row));
  if (png.empty()) fail("--screenshot", path, "a PNG the encoder could write");
  write_file_atomic(path, [&](std::ostream& out) { out.write(png.data(), png.size()); });
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5));
  return v[i];
}

// Runs script lines at the start of a frame until one must wait; returns false at the end.
struct ScriptRunner {
  std::vector<ScriptCommand> lines;
  std::size_t next = 0;
  int frames_left = 0;  // `frames N`
  int capture_in = -1;  // frames until a pending screenshot is taken (-1: none)
  std::string capture_path;
  std::string capture_panel;  // "" : the whole window
  bool done() const { return next >= lines.size() && frames_left == 0 && capture_in < 0; }
};

// What a frame showed: the panels that drew content, the named rectangles, the worker's state and
// the numbers behind the bars (the tests compare them with the pixels of the screenshot).
nlohmann::json frame_record(const std::string& path, const Frame& f, const DrawLog& log, int w,
                            int h) {
  nlohmann::json r;
  r["path"] = path;
  r["size"] = {w, h};
  r["panels"] = log.panels;
  nlohmann::json rects = nlohmann::json::object();
  for (const auto& [name, x] : log.rects) rects[name] = {x.x, x.y, x.w, x.h};
  r["rects"] = rects;
  const WorkerState& s = f.worker;
  r["worker"] = {{"loaded", s.loaded},   {"model", s.model},
                 {"format", s.format},   {"plan", s.plan_spec},
                 {"map", s.plan_text},   {"error", s.error},
                 {"note", s.note},       {"position", s.position},
                 {"running", s.running}, {"generated", s.generated_pieces.size()}};
  r["footprint"] = {{"bytes_held", f.footprint.bytes_held},
                    {"standard_bytes", f.footprint.standard_bytes},
                    {"banks", f.footprint.banks},
                    {"steps", f.footprint.history.size()}};
  r["lckv"] = {{"series", f.convergence.series.size()}, {"passes", f.convergence.passes}};
  r["squeeze"] = {{"layers", f.squeeze.cos_sim.size()}, {"clustered", f.squeeze.clustered}};
  return r;
}

}  // namespace

std::string default_model() {
  for (const BuiltinModel& m : builtin_models()) {
    if (m.name == "tiny-standard") return m.name;
  }
  return "stories15m";
}

std::string default_prompt() {
  return "Once upon a time, a little robot found a map of the stars. It wanted to know";
}

int run_viz(const VizOptions& o) {
  ScriptRunner script;
  if (!o.script.empty()) script.lines = load_script(o.script);
  if (o.frames < 0) fail("--frames", std::to_string(o.frames), "0 (until closed) or more");
  if (o.width < 200 || o.height < 150) {
    fail("--size", std::to_string(o.width) + "x" + std::to_string(o.height), "at least 200x150");
  }
  const bool headless = o.frames > 0 || !o.script.empty();

  glfwSetErrorCallback(on_glfw_error);
  if (!glfwInit()) {
    const char* d = std::getenv("DISPLAY");
    fail("DISPLAY", d ? d : "(unset)",
         "an X display the window can open on (without a screen: xvfb-run -a kvlab viz ...); " +
             g_glfw_error);
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(o.width, o.height, "kvlab viz", nullptr, nullptr);
  if (!window) {
    glfwTerminate();
    fail("window", "OpenGL 3.3 core", "a display with OpenGL 3.3 (" + g_glfw_error + ")");
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(headless ? 0 : 1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // the layout is fixed: nothing to remember
  ImGui::StyleColorsDark();
  ImGui::GetStyle().WindowRounding = 0;
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330 core");

  nlohmann::json report;
  report["screenshots"] = nlohmann::json::array();
  report["captures"] = nlohmann::json::array();
  std::vector<double> frame_ms;
  int frames = 0;
  {
    Worker worker;  // joined before the GL context goes
    worker.set_speed(o.speed);
    Controls c;
    c.model = o.session.model.empty() ? default_model() : o.session.model;
    c.prompt = o.prompt.empty() ? default_prompt() : o.prompt;
    c.speed = static_cast<float>(o.speed);
    {
      WorkerCommand load;
      load.kind = WorkerCommand::load;
      load.options = o.session;
      load.options.model = c.model;
      load.options.allow_random = true;
      worker.post(load);
      post_prefill(worker, c);
      if (o.script.empty()) {  // the default session: something moves at once
        WorkerCommand run;
        run.kind = WorkerCommand::run;
        worker.post(run);
      }
    }
    std::uint64_t seen_loads = 0;
    std::string seen_policy = o.session.run.policy, seen_budget = o.session.run.budget;
    bool waiting_for_start = true;  // scripts start once the first load and prefill are done
    auto last = std::chrono::steady_clock::now();
    DrawLog log;
    Frame f;
    const SnapshotObserver* snap_source = nullptr;
    std::unique_ptr<Worker> compare;  // plan B (the Compare window); joined before the window goes
    bool compare_now = false;         // a script asked for it
    const SnapshotObserver* b_source = nullptr;
    std::uint64_t b_version = 0;
    Footprint b_footprint;
    std::uint64_t snap_version = 0, snap_loads = 0;
    const ScoresObserver* scores_source = nullptr;
    std::uint64_t scores_version = 0;
    while (!glfwWindowShouldClose(window)) {
      glfwPollEvents();

      // A new model: the controls show its plan (before the script, which may change it).
      const std::uint64_t loads = worker.state().loads;
      if (loads != seen_loads) {
        const WorkerState s = worker.state();
        seen_loads = s.loads;
        c.plan = s.plan_spec;
        c.policy = s.run.policy;
        c.budget = s.run.budget;
        c.attn_layer = -1;
        c.squeeze = s.run.squeeze.enabled;
        if (c.squeeze) {
          c.f0 = static_cast<float>(s.run.squeeze.f0);
          c.f3 = static_cast<float>(s.run.squeeze.reduced());
        }
      }

      // ---- the script (and the default session's start)
      if (waiting_for_start && worker.idle()) waiting_for_start = false;
      while (!waiting_for_start && script.next < script.lines.size() && script.frames_left == 0 &&
             script.capture_in < 0) {
        const ScriptCommand& s = script.lines[script.next];
        if (s.verb == "wait") {
          if (!worker.idle() || compare_now || (compare && !compare->idle())) break;
        } else if (s.verb == "frames") {
          script.frames_left = s.n;
        } else if (s.verb == "screenshot" || s.verb == "screenshot-panel") {
          script.capture_in = 2;  // let ImGui settle two frames after the last change
          script.capture_path = s.arg;
          script.capture_panel.clear();
          if (s.verb == "screenshot-panel") {
            const auto sp = s.arg.find(' ');
            script.capture_panel = s.arg.substr(0, sp);
            script.capture_path = s.arg.substr(sp + 1);
          }
        } else if (s.verb == "resize") {
          glfwSetWindowSize(window, s.n, s.m);
        } else if (s.verb == "attention") {
          c.attn_layer = s.n;
          c.attn_stage = s.m;
        } else if (s.verb == "model") {
          c.model = s.arg;
          post_load(worker, c);
          post_prefill(worker, c);
        } else if (s.verb == "plan") {
          c.plan = s.arg;
          apply_run_options(worker, c);
        } else if (s.verb == "policy") {
          c.policy = s.arg;
          apply_run_options(worker, c);
        } else if (s.verb == "budget") {
          c.budget = s.arg;
          apply_run_options(worker, c);
        } else if (s.verb == "squeeze") {
          c.squeeze = s.arg != "off";
          if (c.squeeze) {
            const ref::SqueezeSpec spec = parse_squeeze(s.arg);
            c.f0 = static_cast<float>(spec.f0);
            c.f3 = static_cast<float>(spec.f3);
          }
          apply_run_options(worker, c);
        } else if (s.verb == "compare") {
          c.compare_plan = s.arg;
          c.compare_open = true;
          compare_now = true;
        } else if (s.verb == "prompt") {
          c.prompt = s.arg;
        } else if (s.verb == "prefill") {
          post_prefill(worker, c);
        } else {
          WorkerCommand cmd;
          cmd.kind = s.verb == "step"    ? WorkerCommand::step
                     : s.verb == "run"   ? WorkerCommand::run
                     : s.verb == "pause" ? WorkerCommand::pause
                     : s.verb == "reset" ? WorkerCommand::reset
                                         : WorkerCommand::trace;
          cmd.count = std::max(1, s.n);
          cmd.prompt = c.prompt;
          worker.post(cmd);
        }
        ++script.next;
      }

      // ---- this frame's copies (after the script, so that they show what it asked for)
      f.worker = worker.state();
      // The policy the session runs (Squeeze may have switched full to window): the controls
      // follow each change, and leave the user's typing alone in between.
      if (f.worker.run.policy != seen_policy || f.worker.run.budget != seen_budget) {
        seen_policy = f.worker.run.policy;
        seen_budget = f.worker.run.budget;
        c.policy = seen_policy;
        c.budget = seen_budget;
      }
      // The telemetry is copied (and its draw data computed) only when something changed.
      const SnapshotObserver* source = f.worker.telemetry.get();
      const std::uint64_t version = source ? source->version() : 0;
      if (source != snap_source || version != snap_version || f.worker.loads != snap_loads) {
        snap_source = source;
        snap_version = version;
        snap_loads = f.worker.loads;
        f.snap = source ? source->snapshot() : Snapshot{};
        f.footprint = footprint(f.snap);
        f.convergence = convergence(f.snap.passes);
        f.cache = cache_map(f.snap, f.worker.run.policy);
      }
      f.squeeze = squeeze_bars(f.snap, f.worker.diagram);
      const ScoresObserver* scores = f.worker.attn_scores.get();
      const std::uint64_t sv = scores ? scores->version() : 0;
      if (scores != scores_source || sv != scores_version) {
        scores_source = scores;
        scores_version = sv;
        f.scores = scores ? scores->latest() : std::map<int, TensorEvent>{};
      }
      f.fps = io.Framerate;

      ImGui_ImplOpenGL3_NewFrame();
      ImGui_ImplGlfw_NewFrame();
      // Headless runs ignore the pointer (under Xvfb it sits mid-screen and would raise tooltips
      // in the screenshots).
      if (headless) io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
      ImGui::NewFrame();
      log = DrawLog{};
      const PanelLayout lay = panel_layout(io.DisplaySize.x, io.DisplaySize.y);
      draw_controls_panel(lay.controls, f, c, worker, log);
      draw_graph_panel(lay.graph, f, log);
      draw_footprint_panel(lay.footprint, f, log);
      draw_lckv_panel(lay.lckv, f, c, log);
      draw_attention_panel(lay.attention, f, c, worker, log);
      draw_squeeze_panel(lay.squeeze, f, c, worker, log);
      draw_text_panel(lay.text, f, log);
      draw_cache_panel(lay.cache, f, log);
      // Compare: plan B in a worker of its own, started on demand.
      WorkerState bs;
      if (compare) {
        bs = compare->state();
        const SnapshotObserver* bsrc = bs.telemetry.get();
        const std::uint64_t bv = bsrc ? bsrc->version() : 0;
        if (bsrc != b_source || bv != b_version) {
          b_source = bsrc;
          b_version = bv;
          b_footprint = footprint(bsrc ? bsrc->snapshot() : Snapshot{});
        }
      }
      bool run_b = compare_now;
      compare_now = false;
      draw_compare_panel(f, c, compare.get(), bs, b_footprint, run_b, log);
      if (run_b) {
        if (!compare) {
          compare = std::make_unique<Worker>();
          b_source = nullptr;
        }
        post_compare(*compare, f.worker, c);
      } else if (compare) {
        follow_compare(*compare, f.worker, bs, c);
      }
      ImGui::Render();

      int fw = 0, fh = 0;
      glfwGetFramebufferSize(window, &fw, &fh);
      glViewport(0, 0, fw, fh);
      glClearColor(0.08f, 0.08f, 0.10f, 1.0f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

      if (script.capture_in == 0) {
        Rect crop;
        if (!script.capture_panel.empty()) {
          crop = panel_rect(lay, script.capture_panel);
          const float sx = io.DisplaySize.x > 0 ? static_cast<float>(fw) / io.DisplaySize.x : 1;
          const float sy = io.DisplaySize.y > 0 ? static_cast<float>(fh) / io.DisplaySize.y : 1;
          crop = {crop.x * sx, crop.y * sy, crop.w * sx, crop.h * sy};
        }
        write_screenshot(script.capture_path, fw, fh, crop);
        report["screenshots"].push_back(script.capture_path);
        report["captures"].push_back(frame_record(script.capture_path, f, log, fw, fh));
        script.capture_in = -1;
      } else if (script.capture_in > 0) {
        --script.capture_in;
      }
      if (script.frames_left > 0) --script.frames_left;
      ++frames;
      const bool last_frame =
          (o.frames > 0 && frames >= o.frames) ||
          (!o.script.empty() && o.frames == 0 && !waiting_for_start && script.done());
      if (last_frame && !o.screenshot.empty()) {
        write_screenshot(o.screenshot, fw, fh);
        report["screenshots"].push_back(o.screenshot);
        report["captures"].push_back(frame_record(o.screenshot, f, log, fw, fh));
      }
      glfwSwapBuffers(window);
      const auto now = std::chrono::steady_clock::now();
      frame_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
      last = now;
      if (last_frame) break;
    }

    // ---- the report: what the last frame showed
    if (!o.report.empty()) {
      report["frames"] = frames;
      if (frame_ms.size() > 1) frame_ms.erase(frame_ms.begin());  // the first includes start-up
      report["frame_ms"] = {{"p50", percentile(frame_ms, 0.5)},
                            {"p95", percentile(frame_ms, 0.95)},
                            {"max", percentile(frame_ms, 1.0)}};
      report["last_frame"] = frame_record("", f, log, static_cast<int>(io.DisplaySize.x),
                                          static_cast<int>(io.DisplaySize.y));
      report["script_lines_run"] = script.next;
      if (compare) {  // plan B: its continuation and both plans' perplexity on A's text
        const WorkerState bs = compare->state();
        nlohmann::json scores = nlohmann::json::array();
        for (const PlanScore& p : bs.scores) {
          scores.push_back({{"plan", p.plan}, {"perplexity", p.perplexity}, {"tokens", p.tokens}});
        }
        report["compare"] = {{"plan", bs.plan_spec},
                             {"generated", bs.generated_pieces.size()},
                             {"scores", scores},
                             {"error", bs.error},
                             {"note", bs.note}};
      }
    }
  }
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
#if KVLAB_LEAK_CHECK
  // Mesa's driver leaks a few bytes in glfwTerminate: check kvlab's own memory before it.
  __lsan_do_leak_check();
#endif
  glfwTerminate();
  if (!o.report.empty()) {
    write_file_atomic(o.report, [&](std::ostream& out) { out << report.dump(2) << "\n"; });
  }
  return 0;
}

}  // namespace kvlab::viz
