// Attention: for one layer and head, the latest step (every query row of a prefill, the one row of
// a decode step) over the cells of the bank the layer reads, in three stages to step through:
// 1 the scores q·k/√D, 2 the mask (the causal mask, LCKV's masked diagonal, a sliding window: the
// cells set to −inf), 3 the softmax weights. The bars below are one query row's values; the
// arrows step through the rows, token by token.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tokenizers/tokenizer.hpp"
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

// Blue (low) to white to red (high): a score against the head's range of finite scores.
ImU32 diverging(double v, double lo, double hi) {
  const double mid = 0.5 * (lo + hi), half = std::max(1e-12, 0.5 * (hi - lo));
  const float t = static_cast<float>(std::clamp((v - mid) / half, -1.0, 1.0));
  const auto mix = [](float a, float b, float u) { return static_cast<int>(a + (b - a) * u); };
  if (t < 0) return IM_COL32(mix(235, 50, -t), mix(235, 110, -t), mix(235, 220, -t), 255);
  return IM_COL32(mix(235, 225, t), mix(235, 70, t), mix(235, 60, t), 255);
}

// Why a cell is outside the attention set, from the positions and the layer's place in the plan.
const char* mask_reason(int query, int key, const PlanDiagramNode* node) {
  if (key > query) return "causal: a later token";
  if (key == query && node && node->upward) return "LCKV: the diagonal of a layer reading above";
  if (node && node->sliding) return "outside the sliding window";
  return "outside the attention set";
}

const char* const kStages[] = {"1 scores", "2 mask", "3 softmax"};

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

  // The step-through: the scores of the same step (heads, rows, cells), when recorded.
  const double* S = nullptr;
  const auto sit = f.scores.find(e.layer);
  if (sit != f.scores.end() && sit->second.shape.size() == 3 && sit->second.shape[0] == e.heads &&
      sit->second.shape[1] == e.rows && sit->second.shape[2] == e.cells) {
    S = sit->second.values.data() + static_cast<std::size_t>(c.attn_head) * e.rows * e.cells;
  }
  for (int k = 0; k < 3; ++k) {
    if (k) ImGui::SameLine();
    ImGui::RadioButton(kStages[k], &c.attn_stage, k);
  }
  help_marker(
      "Step through one head's attention: 1 the scores s = q.k / sqrt(D) of every query and cell, "
      "2 the mask that sets cells outside the attention set to -inf (causal, LCKV's diagonal, "
      "sliding windows), 3 the softmax p = exp(s - max s) / sum exp(...). The arrows move the "
      "query row token by token.");
  const int stage = S ? c.attn_stage : 2;
  if (!S && c.attn_stage != 2) ImGui::TextDisabled("scores arrive with the next step or prefill");
  double lo = 0, hi = 0;
  bool any = false;
  if (S) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(e.rows) * e.cells; ++i) {
      if (!std::isfinite(S[i])) continue;
      lo = any ? std::min(lo, S[i]) : S[i];
      hi = any ? std::max(hi, S[i]) : S[i];
      any = true;
    }
  }
  auto masked = [&](int i, int j) {
    const std::size_t k = static_cast<std::size_t>(i) * e.cells + j;
    return S ? !std::isfinite(S[k]) : !(P[k] > 0);
  };
  auto colour_of = [&](int i, int j) -> ImU32 {
    const std::size_t k = static_cast<std::size_t>(i) * e.cells + j;
    if (stage == 0) return masked(i, j) ? kMasked : diverging(S[k], lo, hi);
    if (stage == 1) return masked(i, j) ? colour::evicted : colour::kv_layer;
    return P[k] > 0 ? heat(P[k]) : kMasked;
  };

  // The heatmap, with room below for one row's bars.
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float bars_h = std::clamp(avail.y * 0.3f, 30.0f, 80.0f);
  const float heat_h = avail.y - bars_h - ImGui::GetFrameHeightWithSpacing() - 6;
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
      const std::size_t k = static_cast<std::size_t>(i) * e.cells + j;
      const float p = P[k];
      const ImVec2 a(p0.x + cell * static_cast<float>(j), p0.y + cell * static_cast<float>(i));
      const ImVec2 z(a.x + std::max(1.0f, cell - (cell >= 6 ? 1.0f : 0.0f)),
                     a.y + std::max(1.0f, cell - (cell >= 6 ? 1.0f : 0.0f)));
      dl->AddRectFilled(a, z, colour_of(i, j));
      if (ImGui::IsWindowHovered() && mouse.x >= a.x && mouse.x < a.x + cell && mouse.y >= a.y &&
          mouse.y < a.y + cell) {
        const int q = i < static_cast<int>(e.query_pos.size()) ? e.query_pos[i] : i;
        std::string what;
        if (masked(i, j)) {
          what =
              std::string("masked (") + mask_reason(q, kpos[j], node) + "): score -inf, weight 0";
        } else {
          what = (S ? "score " + std::to_string(S[k]) + ", " : std::string()) + "weight " +
                 std::to_string(p);
        }
        ImGui::SetTooltip("query %d \"%s\" -> key %d \"%s\": %s", q,
                          printable_text(token_at(s, q), true).c_str(), kpos[j],
                          printable_text(token_at(s, kpos[j]), true).c_str(), what.c_str());
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
  // One row's values at this stage: scores (masked cells at the bottom of the range), the mask
  // (1 kept, 0 masked) or the weights.
  std::vector<float> row(static_cast<std::size_t>(e.cells));
  int open = 0;
  for (int j = 0; j < e.cells; ++j) {
    const std::size_t k = static_cast<std::size_t>(c.attn_row) * e.cells + j;
    const bool m = masked(c.attn_row, j);
    open += !m;
    row[j] = stage == 0 ? static_cast<float>(m ? lo : S[k]) : stage == 1 ? (m ? 0.0f : 1.0f) : P[k];
  }
  char overlay[96];
  if (stage == 0) {
    std::snprintf(overlay, sizeof overlay, "query %d: s = q.k/sqrt(%d), %.2f to %.2f", q,
                  s.config.head_dim, lo, hi);
  } else if (stage == 1) {
    std::snprintf(overlay, sizeof overlay, "query %d: %d of %d cells kept, the rest -inf", q, open,
                  e.cells);
  } else {
    std::snprintf(overlay, sizeof overlay, "query %d: weights over the cells", q);
  }
  ImGui::SetNextItemWidth(avail.x);  // 1.86 draws nothing for a width of -1
  ImGui::PlotHistogram("##row", row.data(), e.cells, 0, overlay,
                       stage == 0 ? static_cast<float>(lo) : 0.0f,
                       stage == 0 ? static_cast<float>(hi) : 1.0f, ImVec2(avail.x, bars_h));
  if (ImGui::ArrowButton("##up", ImGuiDir_Up) && c.attn_row > 0) --c.attn_row;
  ImGui::SameLine();
  if (ImGui::ArrowButton("##down", ImGuiDir_Down) && c.attn_row + 1 < e.rows) ++c.attn_row;
  ImGui::SameLine();
  ImGui::TextDisabled("query row %d of %d (or click a row)", c.attn_row + 1, e.rows);
  log.panels["attention"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
