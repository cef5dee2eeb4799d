// What the visualizer draws, as plain data: pure functions from a telemetry Snapshot
// (core/snapshot.hpp) and a PlanDiagram (core/plan_diagram.hpp) to bars, node positions and
// series, with no ImGui or OpenGL in sight. The panels (panel_*.cpp) only paint these numbers, so
// everything a panel shows is unit-tested here (tests/visualizer/test_viz_model.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/plan_diagram.hpp"
#include "core/snapshot.hpp"

namespace kvlab::viz {

struct Rect {
  float x = 0, y = 0, w = 0, h = 0;
  float right() const { return x + w; }
  float bottom() const { return y + h; }
};

// Where each panel goes for a display of `width` x `height` pixels (no docking in ImGui 1.86: the
// layout is fixed and follows the window's size). Controls on the left; the sharing graph and the
// footprint on top; LCKV, attention and Squeeze below; the text and the cache map at the bottom.
struct PanelLayout {
  Rect controls, graph, footprint, lckv, attention, squeeze, text, cache;
};
PanelLayout panel_layout(float width, float height);
// A panel's rectangle by name: controls, graph, footprint, lckv, attention, squeeze, text, cache
// (an unknown name: the whole display).
Rect panel_rect(const PanelLayout& p, const std::string& name);

// ---- KV footprint

// One column per layer: the bytes of the bank the layer reads. A KV layer's column is its bank
// (counted); a reader's column is the same bank seen again (shared: drawn faded, not counted).
struct FootprintColumn {
  int layer = 0;
  int bank = 0;  // the KV layer read
  bool writes = false;
  std::int64_t tokens_held = 0, bytes_held = 0, budget = 0, evicted = 0;
  double fill = 0;    // tokens_held / budget, in [0, 1]
  double height = 0;  // bytes_held / the largest column's bytes, in [0, 1]
};

struct Footprint {
  std::vector<FootprintColumn> columns;  // by layer
  int banks = 0;                         // KV layers with a bank
  std::int64_t bytes_held = 0;           // this plan: summed over the banks, each once
  // The standard plan on the same tokens: every layer keeps its own copy of what it reads, so the
  // sum over the layers of their bank's bytes (exact for full banks).
  std::int64_t standard_bytes = 0;
  std::int64_t bytes_allocated = 0;             // the store's capacity (latest step summary)
  double plan_height = 0, standard_height = 0;  // the two total bars, standard = 1 when > 0
  std::vector<float> history;                   // kv_bytes_held per step, oldest first
  int step = -1;
  int tokens = 0;  // position + 1 of the latest step (0 before any)
};
Footprint footprint(const Snapshot& s);

// ---- sharing graph

struct GraphNode {
  int layer = 0;
  float cx = 0, cy = 0;  // centre
};
// Layers stacked bottom (layer 0) to top in `area`, as boxes of node_w x node_h; read edges leave
// a node's right side and arc into their KV layer's right side, upward edges arc on the left.
struct GraphLayout {
  std::vector<GraphNode> nodes;
  float node_w = 0, node_h = 0;
  float arc_right = 0;  // x where the rightmost read arc may reach
};
GraphLayout graph_layout(int layers, const Rect& area);

// Which node (layer) a point falls in, or -1.
int graph_hit(const GraphLayout& g, float x, float y);

// One line about a layer for the hover tooltip: what it reads and what it costs.
std::string layer_summary(const PlanDiagram& d, const Snapshot& s, int layer);

// ---- LCKV convergence

struct ConvergenceSeries {
  int block = 0, target_layer = 0;
  std::vector<float> log_dk, log_dv;  // log10 of rel_dk, rel_dv per pass (floored at 1e-12)
  std::vector<float> log_err_k;       // log10 of err_k per pass, empty without an exact run
  std::vector<int> tokens_exact;      // per pass
  int tokens = 0;
  bool converged = false;  // the last pass met the threshold
};
struct Convergence {
  std::vector<ConvergenceSeries> series;  // one per (block, target), in order of appearance
  int passes = 0;                         // the longest series
  float log_min = 0, log_max = 0;         // the y range over every series
};
Convergence convergence(const std::vector<PrefillPassEvent>& passes);

// ---- Squeeze layer budgets

struct SqueezeBars {
  std::vector<double> cos_sim;    // s_l per layer (higher: the layer changed the stream less)
  std::vector<int> cluster;       // per layer: its bank's cluster 1..3, 0 when not clustered
  std::vector<int> budget;        // per layer: its bank's budget in tokens, -1 when none
  double centres[3] = {0, 0, 0};  // mean bank cos_sim of clusters 1, 2, 3 (0 when empty)
  bool clustered = false;         // budgets came from SqueezeAttention
  double a = 0;
  int prompt_tokens = 0;
  double lo = 0, hi = 1;  // the bars' value range (cos_sim is drawn against it)
};
SqueezeBars squeeze_bars(const Snapshot& s, const PlanDiagram& d);

// ---- cache map

// Which positions each bank offered the latest step: one row per bank (KV layer), one column per
// position of the sequence. Exact from the latest recorded attention of a layer reading the bank
// (the positions of the cells it read, any KV head; a policy trims the bank after the step, which
// the kv_step's `evicted` counts); without recorded attention, by recency from tokens_held.
// A kept position older than a dropped one is there for a reason the policy names: a sink under
// streaming (and any other policy), a heavy hitter under h2o, whose accumulated scores (the mean
// over the bank's KV heads, from the h2o_scores events) come with it.
struct CacheMap {
  enum State : unsigned char {
    none = 0,
    kept = 1,
    evicted = 2,
    sink = 3,   // kept, though a later position is gone (streaming's first tokens)
    heavy = 4,  // kept, though a later position is gone, for its H2O score
  };
  int positions = 0;                 // columns: the sequence so far
  std::vector<int> banks;            // rows: the KV layers, ascending
  std::vector<unsigned char> state;  // (rows, positions)
  std::vector<float> mass;           // (rows, positions): mean attention weight on the cell over
                                     // the heads and query rows of that read (0 when not known)
  float max_mass = 0;
  bool exact = false;        // every row came from recorded attention
  std::vector<float> score;  // (rows, positions): H2O's accumulated score, -1 unknown
  bool scored = false;       // some row has H2O scores
  unsigned char at(int row, int pos) const {
    return state[static_cast<std::size_t>(row) * positions + pos];
  }
};
// `policy`: the run's policy text ("h2o:4", "streaming", ...), which names the older kept cells.
CacheMap cache_map(const Snapshot& s, const std::string& policy = "");

// "22.0 KiB"
std::string human_bytes(double bytes);

}  // namespace kvlab::viz
