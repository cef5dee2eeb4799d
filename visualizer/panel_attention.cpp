// Attention: for one layer and head, the softmax weights of the latest step (every query row of a
// prefill, the one row of a decode step) over the cells of the bank the layer reads. Cells outside
// the attention set (the causal mask, LCKV's masked diagonal, a sliding window) are drawn dark;
// the bars below are one query row's weights over the positions it sees.
#include <algorithm>
#include <cmath>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {
namespace {

// Dark blue (0) to bright yellow (1); sqrt spreads the small weights.
ImU32 heat(float p) {
  const float t = std::sqrt(std::clamp(p, 0.0f, 1.0f));
  const auto mix = [t](float a, float b) { return static_cast<int>(a + (b - a) * t); };
  return IM_COL32(mix(30, 250), mix(60, 230), mix(110, 60), 255);
}

const ImU32 kMasked = IM_COL32(45, 45, 52, 255);

std::string token_at(const WorkerState& s, int pos) {
  const int np = static_cast<int>(s.prompt_pieces.size());
  if (pos >= 0 && pos < np) return s.prompt_pieces[pos];
  if (pos >= np && pos - np < static_cast<int>(s.generated_pieces.size())) {
    return s.generated_pieces[pos - np];
  }
  return "";
}

}  // namespace

void draw_attention_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log) {
  if (!begin_panel("Attention", r,
                   "Softmax weights of one layer and head in the latest step: rows are the "
                   "queries, columns the cells of the bank the layer reads. Dark cells are masked "
                   "(causal, LCKV's diagonal for upward layers, sliding windows).")) {
    ImGui::End();
    return;
  }
  log.panels["attention"] = false;
  const WorkerState& s = f.worker;
  bool rec = s.attention;
  if (ImGui::Checkbox("record", &rec)) {
    WorkerCommand cmd;
    cmd.kind = WorkerCommand::attention;
    cmd.count = rec ? 1 : 0;
    w.post(cmd);
  }
  help_marker(
      "Recording costs a heads x rows x cells array per layer and step; it starts with the "
      "next step or prefill.");
  const int L = s.diagram.layers;
  if (L == 0 || f.snap.attention.empty()) {
    ImGui::TextWrapped(rec ? "Step or prefill to record the attention of each layer."
                           : "Not recording.");
    ImGui::End();
    return;
  }
  if (c.attn_layer < 0) {  // first show a layer that reads another's K/V: upward ones first
    for (const PlanDiagramNode& n : s.diagram.nodes) {
      if (n.upward) {
        c.attn_layer = n.layer;
        break;
      }
    }
    for (const PlanDiagramNode& n : s.diagram.nodes) {
      if (c.attn_layer < 0 && !n.kv_layer) c.attn_layer = n.layer;
    }
  }
  c.attn_layer = std::clamp(c.attn_layer, 0, L - 1);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(std::max(40.0f, ImGui::GetContentRegionAvail().x * 0.4f));
  ImGui::SliderInt("layer", &c.attn_layer, 0, L - 1);
  const auto it = f.snap.attention.find(c.attn_layer);
  if (it == f.snap.attention.end()) {
    ImGui::TextWrapped("No attention recorded for layer %d yet.", c.attn_layer);
    ImGui::End();
    return;
  }
  const AttentionEvent& e = it->second;
  c.attn_head = std::clamp(c.attn_head, 0, std::max(0, e.heads - 1));
  ImGui::SetNextItemWidth(std::max(40.0f, ImGui::GetContentRegionAvail().x * 0.4f));
  ImGui::SliderInt("head", &c.attn_head, 0, std::max(0, e.heads - 1));
  ImGui::SameLine();
  ImGui::TextDisabled("step %d %s%s", e.step, e.phase.c_str(),
                      e.pass > 0 ? (", pass " + std::to_string(e.pass)).c_str() : "");
  const PlanDiagramNode* node = c.attn_layer < static_cast<int>(s.diagram.nodes.size())
                                    ? &s.diagram.nodes[c.attn_layer]
                                    : nullptr;
  ImGui::TextWrapped("layer %d reads bank %d%s: %d queries x %d cells", e.layer, e.bank,
                     node && node->upward ? " (above: diagonal masked)" : "", e.rows, e.cells);
  if (e.rows <= 0 || e.cells <= 0) {
    ImGui::End();
    return;
  }
  const int group = std::max(1, e.heads / std::max(1, e.kv_heads));
  const int kvh = c.attn_head / group;
  const float* P = e.probs.data() + static_cast<std::size_t>(c.attn_head) * e.rows * e.cells;
  const int* kpos = e.key_pos.data() + static_cast<std::size_t>(kvh) * e.cells;

  // The heatmap, with room below for one row's bars.
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float bars_h = std::clamp(avail.y * 0.3f, 30.0f, 80.0f);
  const float heat_h = avail.y - bars_h - ImGui::GetTextLineHeightWithSpacing() - 6;
  if (avail.x < 40 || heat_h < 20) {
    ImGui::End();
    return;
  }
  const float cell =
      std::min({avail.x / static_cast<float>(e.cells), heat_h / static_cast<float>(e.rows), 24.0f});
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 mouse = ImGui::GetMousePos();
  if (c.attn_row < 0 || c.attn_row >= e.rows) c.attn_row = e.rows - 1;
  for (int i = 0; i < e.rows; ++i) {
    for (int j = 0; j < e.cells; ++j) {
      const float p = P[static_cast<std::size_t>(i) * e.cells + j];
      const ImVec2 a(p0.x + cell * static_cast<float>(j), p0.y + cell * static_cast<float>(i));
      const ImVec2 z(a.x + std::max(1.0f, cell - (cell >= 6 ? 1.0f : 0.0f)),
                     a.y + std::max(1.0f, cell - (cell >= 6 ? 1.0f : 0.0f)));
      dl->AddRectFilled(a, z, p > 0 ? heat(p) : kMasked);
      if (ImGui::IsWindowHovered() && mouse.x >= a.x && mouse.x < a.x + cell && mouse.y >= a.y &&
          mouse.y < a.y + cell) {
        const int q = i < static_cast<int>(e.query_pos.size()) ? e.query_pos[i] : i;
        ImGui::SetTooltip("query %d \"%s\" -> key %d \"%s\": %s", q, token_at(s, q).c_str(),
                          kpos[j], token_at(s, kpos[j]).c_str(),
                          p > 0 ? std::to_string(p).c_str() : "masked");
        if (ImGui::IsMouseClicked(0)) c.attn_row = i;
      }
    }
  }
  // The chosen row.
  const float ry = p0.y + cell * static_cast<float>(c.attn_row);
  dl->AddRect(ImVec2(p0.x - 1, ry - 1),
              ImVec2(p0.x + cell * static_cast<float>(e.cells) + 1, ry + cell + 1),
              IM_COL32(255, 255, 255, 200));
  log.rect(
      "attention.map", p0,
      ImVec2(p0.x + cell * static_cast<float>(e.cells), p0.y + cell * static_cast<float>(e.rows)));
  ImGui::Dummy(ImVec2(avail.x, heat_h));
  const int q =
      c.attn_row < static_cast<int>(e.query_pos.size()) ? e.query_pos[c.attn_row] : c.attn_row;
  char overlay[64];
  std::snprintf(overlay, sizeof overlay, "query %d: weights over the cells", q);
  ImGui::SetNextItemWidth(avail.x);  // 1.86 draws nothing for a width of -1
  ImGui::PlotHistogram("##row", P + static_cast<std::size_t>(c.attn_row) * e.cells, e.cells, 0,
                       overlay, 0.0f, 1.0f, ImVec2(avail.x, bars_h));
  ImGui::TextDisabled("click a row to choose it");
  log.panels["attention"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
