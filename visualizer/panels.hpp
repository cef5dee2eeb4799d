// The panels of `kvlab viz`, one file each (panel_*.cpp). Every panel draws from one Frame: the
// copies the UI thread took this frame (the worker's state, the telemetry snapshot and the draw
// data computed from it); panels post work to the worker and never call the model.
#pragma once

#include <imgui.h>

#include <map>
#include <string>
#include <vector>

#include "visualizer/viz_model.hpp"
#include "visualizer/worker.hpp"

namespace kvlab::viz {

// One colour per concept, the same in every panel.
namespace colour {
constexpr ImU32 kv_layer = IM_COL32(46, 168, 158, 255);   // a layer that stores its K/V (a bank)
constexpr ImU32 shared = IM_COL32(46, 168, 158, 90);      // a layer reading another's K/V
constexpr ImU32 upward = IM_COL32(240, 140, 40, 255);     // LCKV: reads a layer above; passes
constexpr ImU32 sliding = IM_COL32(170, 110, 230, 255);   // sliding-window layers
constexpr ImU32 standard = IM_COL32(150, 150, 160, 255);  // the standard plan, for comparison
constexpr ImU32 value_v = IM_COL32(90, 160, 240, 255);    // V (beside K in the LCKV chart)
constexpr ImU32 text_dim = IM_COL32(170, 170, 180, 255);
constexpr ImU32 grid = IM_COL32(255, 255, 255, 30);
constexpr ImU32 error = IM_COL32(240, 80, 80, 255);
constexpr ImU32 evicted = IM_COL32(110, 45, 50, 255);        // a cell a policy dropped
constexpr ImU32 sink = IM_COL32(240, 180, 50, 255);          // kept: StreamingLLM's first tokens
constexpr ImU32 heavy_hitter = IM_COL32(230, 90, 220, 255);  // kept: H2O's high scores
constexpr ImU32 cluster[4] = {IM_COL32(150, 150, 160, 255), IM_COL32(230, 75, 75, 255),
                              IM_COL32(240, 180, 50, 255), IM_COL32(80, 140, 230, 255)};
}  // namespace colour

// What each frame draws; the UI thread fills it once per frame.
struct Frame {
  WorkerState worker;
  Snapshot snap;
  Footprint footprint;
  Convergence convergence;
  SqueezeBars squeeze;
  CacheMap cache;
  std::map<int, TensorEvent> scores;  // attention scores before the softmax, by layer
  float fps = 0;
};

// The values the controls edit (the UI thread's own state).
struct Controls {
  std::string model;
  std::string plan = "standard";
  std::string policy = "full";
  std::string budget;
  bool squeeze = false;
  float f0 = 0.5f, f3 = 0.2f;
  bool squeeze_p = false;  // cluster 3 keeps p · f0 (the paper's p) rather than f3
  float p = 0.4f;
  std::string prompt;
  float speed = 8;          // tokens per second while running; 0: as fast as it goes
  int lckv_pass = 0;        // the pass the LCKV panel details
  bool lckv_follow = true;  // follow the last pass as passes arrive (until the slider moves)
  int attn_layer = -1, attn_head = 0, attn_row = -1;
  int attn_stage = 2;                  // the step-through: 0 scores, 1 the mask, 2 the softmax
  bool compare_open = false;           // the Compare window
  std::string compare_plan = "cla:2";  // plan B
  bool compare_follow = true;          // B steps along with A
};

// What the panels drew this frame, for `--report` and the tests: the panels that showed content
// and the screen rectangles of named items (the footprint's bars).
struct DrawLog {
  std::map<std::string, bool> panels;  // every panel drawn -> it showed content (not only a hint)
  std::map<std::string, Rect> rects;
  void rect(const std::string& name, ImVec2 a, ImVec2 b) {
    rects[name] = {a.x, a.y, b.x - a.x, b.y - a.y};
  }
};

// The commands a control (or a script line) sends; shared so both do the same.
void apply_run_options(Worker& w, const Controls& c);  // plan, policy, budget, squeeze
void post_load(Worker& w, const Controls& c);
void post_prefill(Worker& w, const Controls& c);

// A "(?)" marker whose tooltip explains a number or a panel.
void help_marker(const char* text);
// Begins a panel window at `r` (fixed: the layout follows the display size).
bool begin_panel(const char* title, const Rect& r, const char* explanation);

void draw_controls_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log);
void draw_graph_panel(const Rect& r, const Frame& f, DrawLog& log);
void draw_footprint_panel(const Rect& r, const Frame& f, DrawLog& log);
void draw_lckv_panel(const Rect& r, const Frame& f, Controls& c, DrawLog& log);
void draw_attention_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log);
void draw_squeeze_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log);
void draw_text_panel(const Rect& r, const Frame& f, DrawLog& log);
void draw_cache_panel(const Rect& r, const Frame& f, DrawLog& log);
// Compare (a window over the others, opened from the controls): `b` runs plan B (null before the
// first run); sets run_b when the user asks to (re)run it. post_compare: B's commands.
void draw_compare_panel(const Frame& f, Controls& c, Worker* b, const WorkerState& bs,
                        const Footprint& bf, bool& run_b, DrawLog& log);
void post_compare(Worker& b, const WorkerState& a, const Controls& c);
// With Controls::compare_follow: B steps as A generates, or runs again when A started over.
// True when it posted something.
bool follow_compare(Worker& b, const WorkerState& a, const WorkerState& bs, const Controls& c);

}  // namespace kvlab::viz
