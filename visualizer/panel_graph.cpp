// Sharing graph: the plan diagram (core/plan_diagram.hpp) drawn as layers stacked bottom to top.
// KV layers are filled; a layer that reads another's K/V is faded with an arc into the layer it
// reads (orange when it reads upward, LCKV); cyclic blocks are shaded; sliding layers get a purple
// border. Hover a layer for what it reads and what its bank holds.
#include <algorithm>
#include <cmath>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_graph_panel(const Rect& r, const Frame& f, DrawLog& log) {
  if (!begin_panel("Sharing graph", r,
                   "Which layer reads which layer's K/V: filled boxes store K/V (KV layers), faded "
                   "ones read the layer their arc points to. Orange: upward reads (LCKV) and "
                   "cyclic blocks. Hover a layer.")) {
    ImGui::End();
    return;
  }
  log.panels["graph"] = false;  // rendered; true once it shows more than its hint
  const PlanDiagram& d = f.worker.diagram;
  if (d.layers == 0) {
    ImGui::TextWrapped("No model loaded yet.");
    ImGui::End();
    return;
  }
  ImGui::TextWrapped("%d layers, %zu KV layers, %zu upward edges, %zu cyclic blocks", d.layers,
                     d.kv_layers.size(), d.upward_edges.size(), d.cyclic_blocks.size());
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (avail.x < 40 || avail.y < 40) {
    ImGui::End();
    return;
  }
  const Rect area{p0.x, p0.y, avail.x, avail.y};
  const GraphLayout g = graph_layout(d.layers, area);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 mouse = ImGui::GetMousePos();
  const int hovered = ImGui::IsWindowHovered() ? graph_hit(g, mouse.x, mouse.y) : -1;
  const float hw = g.node_w / 2, hh = g.node_h / 2;

  // Cyclic blocks behind the nodes.
  for (std::size_t b = 0; b < d.cyclic_blocks.size(); ++b) {
    const CyclicBlock& cb = d.cyclic_blocks[b];
    const GraphNode& lo = g.nodes[cb.first];
    const GraphNode& hi = g.nodes[cb.last];
    const ImVec2 a(lo.cx - hw - 8, hi.cy - hh - 3), z(lo.cx + hw + 8, lo.cy + hh + 3);
    dl->AddRectFilled(a, z, IM_COL32(240, 140, 40, 40), 4);
    dl->AddRect(a, z, colour::upward, 4);
    dl->AddText(ImVec2(z.x + 4, a.y), colour::upward, ("block " + std::to_string(b)).c_str());
  }

  // Read edges: from the reader's side into the KV layer's side; downward on the right, upward
  // on the left. The arc bulges in proportion to the distance.
  const float slot = area.h / static_cast<float>(d.layers);
  for (const PlanDiagramEdge& e : d.read_edges) {
    const GraphNode& a = g.nodes[e.reader];
    const GraphNode& b = g.nodes[e.kv_layer];
    const bool up = e.upward();
    const float side = up ? -1.0f : 1.0f;
    const float x = a.cx + side * hw;
    const float bulge = side * std::min(12.0f + 0.45f * slot * std::abs(e.kv_layer - e.reader),
                                        up ? a.cx - hw - area.x - 4 : g.arc_right - x - 4);
    const bool lit = hovered == e.reader || hovered == e.kv_layer;
    const ImU32 c = up ? colour::upward : colour::kv_layer;
    const float thick = lit ? 3.0f : 1.5f;
    const ImVec2 pa(x, a.cy), pb(x, b.cy);
    dl->AddBezierCubic(pa, ImVec2(x + bulge, a.cy), ImVec2(x + bulge, b.cy), pb, c, thick);
    // The end at the KV layer: a dot.
    dl->AddCircleFilled(pb, lit ? 4.5f : 3.0f, c);
  }

  // Nodes.
  for (const PlanDiagramNode& n : d.nodes) {
    const GraphNode& p = g.nodes[n.layer];
    const ImVec2 a(p.cx - hw, p.cy - hh), z(p.cx + hw, p.cy + hh);
    dl->AddRectFilled(a, z, n.kv_layer ? colour::kv_layer : colour::shared, 3);
    if (n.sliding) dl->AddRect(a, z, colour::sliding, 3, 0, 2.5f);
    if (n.layer == hovered) dl->AddRect(a, z, IM_COL32(255, 255, 255, 255), 3, 0, 2);
    if (g.node_h >= 10) {
      // "L3 KV" stores its K/V; "L2 > 3" reads layer 3's.
      std::string label = "L" + std::to_string(n.layer) +
                          (n.kv_layer ? std::string(" KV") : " > " + std::to_string(n.reads));
      if (n.sliding) label += " s";
      const ImVec2 ts = ImGui::CalcTextSize(label.c_str());
      dl->AddText(ImVec2(p.cx - ts.x / 2, p.cy - ts.y / 2), IM_COL32(255, 255, 255, 255),
                  label.c_str());
    }
  }
  if (hovered >= 0) {
    ImGui::SetTooltip("%s", layer_summary(d, f.snap, hovered).c_str());
  }
  ImGui::Dummy(avail);
  log.panels["graph"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
