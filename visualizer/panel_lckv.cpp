// LCKV convergence: during an iterative prefill, the relative change of each upward target's K
// and V from one pass to the next, on a log scale (and, after a trace, the error against the
// exact token-by-token K), with the exact-token count; a slider steps through the passes.
#include <algorithm>
#include <cmath>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_lckv_panel(const Rect& r, const Frame& f, Controls& c, DrawLog& log) {
  if (!begin_panel("LCKV convergence", r,
                   "Plans with upward edges (lckv:2) encode the prompt in passes: each pass "
                   "recomputes the K/V that lower layers read from above. The change between "
                   "passes falls on a log scale; pass r makes the first r tokens exact.")) {
    ImGui::End();
    return;
  }
  log.panels["lckv"] = false;  // rendered; true once it shows more than its hint
  const Convergence& cv = f.convergence;
  if (cv.series.empty()) {
    if (f.worker.diagram.upward_edges.empty()) {
      ImGui::TextWrapped(
          "Plan %s has no upward edges: the prompt is encoded in one pass. "
          "Choose lckv:2 (Controls) to see the passes converge.",
          f.worker.plan_spec.c_str());
    } else {
      ImGui::TextWrapped(
          "No passes yet: prefill a prompt longer than the pass count (9), or "
          "press Trace (key T) for passes and their error against exact K/V.");
    }
    ImGui::End();
    return;
  }
  const int P = cv.passes;
  if (c.lckv_follow || c.lckv_pass < 1 || c.lckv_pass > P) c.lckv_pass = P;
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.5f);
  if (ImGui::SliderInt("pass", &c.lckv_pass, 1, P)) c.lckv_follow = c.lckv_pass == P;
  help_marker("Step through the passes: the table shows the chosen pass for each target layer.");
  ImGui::SameLine();
  ImGui::TextDisabled("%d tokens", cv.series[0].tokens);

  // The chart.
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float table_h = ImGui::GetTextLineHeightWithSpacing() *
                        (1.5f + static_cast<float>(std::min<std::size_t>(cv.series.size(), 4)));
  const float chart_h = avail.y - table_h;
  if (avail.x < 100 || chart_h < 50) {
    ImGui::End();
    return;
  }
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float left = p0.x + 44, right = p0.x + avail.x - 8;
  const float top = p0.y + ImGui::GetTextLineHeight() + 8, bottom = p0.y + chart_h - 18;
  const float lo = cv.log_min, hi = cv.log_max;
  auto X = [&](int pass) {  // pass is 1-based
    return P <= 1
               ? (left + right) / 2
               : left + (right - left) * static_cast<float>(pass - 1) / static_cast<float>(P - 1);
  };
  auto Y = [&](float v) { return bottom - (bottom - top) * (v - lo) / (hi - lo); };
  // Decades.
  const int step = std::max(1, static_cast<int>((hi - lo) / 6));
  for (int e = static_cast<int>(lo); e <= static_cast<int>(hi); e += step) {
    const float y = Y(static_cast<float>(e));
    dl->AddLine(ImVec2(left, y), ImVec2(right, y), colour::grid);
    const std::string t = "1e" + std::to_string(e);
    dl->AddText(ImVec2(p0.x, y - 7), colour::text_dim, t.c_str());
  }
  for (int p = 1; p <= P; ++p) {
    if (P > 12 && p % (P / 12 + 1) != 1 && p != P) continue;
    const std::string t = std::to_string(p);
    dl->AddText(ImVec2(X(p) - 3, bottom + 3), colour::text_dim, t.c_str());
  }
  // The convergence threshold, when the schedule converges.
  const ref::PrefillSchedule& sched = f.worker.run.schedule;
  if (sched.mode == ref::PrefillMode::converge && sched.eps > 0) {
    const float y = Y(static_cast<float>(std::log10(sched.eps)));
    if (y >= top && y <= bottom) {
      dl->AddLine(ImVec2(left, y), ImVec2(right, y), colour::error, 1.5f);
      dl->AddText(ImVec2(right - 70, y - 15), colour::error, "threshold");
    }
  }
  // The chosen pass.
  dl->AddLine(ImVec2(X(c.lckv_pass), top), ImVec2(X(c.lckv_pass), bottom),
              IM_COL32(255, 255, 255, 90), 1.0f);
  // Series: K solid orange, V blue, the error against exact K as dots.
  for (std::size_t s = 0; s < cv.series.size(); ++s) {
    const ConvergenceSeries& se = cv.series[s];
    const float shade = 1.0f - 0.25f * static_cast<float>(s % 3);
    auto scaled = [&](ImU32 col) {
      ImVec4 v = ImGui::ColorConvertU32ToFloat4(col);
      return ImGui::ColorConvertFloat4ToU32(ImVec4(v.x * shade, v.y * shade, v.z * shade, 1));
    };
    const ImU32 ck = scaled(colour::upward), cvv = scaled(colour::value_v);
    for (std::size_t i = 0; i < se.log_dk.size(); ++i) {
      const int p = static_cast<int>(i) + 1;
      if (i > 0) {
        dl->AddLine(ImVec2(X(p - 1), Y(se.log_dv[i - 1])), ImVec2(X(p), Y(se.log_dv[i])), cvv,
                    1.5f);
        dl->AddLine(ImVec2(X(p - 1), Y(se.log_dk[i - 1])), ImVec2(X(p), Y(se.log_dk[i])), ck, 2.0f);
      }
      dl->AddCircleFilled(ImVec2(X(p), Y(se.log_dk[i])), 3, ck);
      if (i < se.log_err_k.size()) {
        dl->AddCircle(ImVec2(X(p), Y(se.log_err_k[i])), 4, IM_COL32(255, 255, 255, 220), 0, 1.5f);
      }
    }
  }
  // Legend.
  float lx = left + 8;
  const struct {
    const char* t;
    ImU32 c;
  } legend[3] = {{"rel |dK|", colour::upward},
                 {"rel |dV|", colour::value_v},
                 {"o err K vs exact", IM_COL32(255, 255, 255, 220)}};
  for (const auto& item : legend) {
    dl->AddText(ImVec2(lx, p0.y), item.c, item.t);
    lx += ImGui::CalcTextSize(item.t).x + 14;
  }
  log.rect("lckv.chart", ImVec2(left, top), ImVec2(right, bottom));
  ImGui::Dummy(ImVec2(avail.x, chart_h));

  // The chosen pass, per target.
  if (ImGui::BeginTable("passes", 5, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchSame)) {
    ImGui::TableSetupColumn("target");
    ImGui::TableSetupColumn("exact");
    ImGui::TableSetupColumn("rel dK");
    ImGui::TableSetupColumn("rel dV");
    ImGui::TableSetupColumn("err K");
    ImGui::TableHeadersRow();
    for (const ConvergenceSeries& se : cv.series) {
      const int i = std::min(c.lckv_pass, static_cast<int>(se.log_dk.size())) - 1;
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::Text("layer %d", se.target_layer);
      ImGui::TableNextColumn();
      ImGui::Text("%d / %d", se.tokens_exact[i], se.tokens);
      ImGui::TableNextColumn();
      ImGui::Text("%.2e", std::pow(10.0, se.log_dk[i]));
      ImGui::TableNextColumn();
      ImGui::Text("%.2e", std::pow(10.0, se.log_dv[i]));
      ImGui::TableNextColumn();
      if (i < static_cast<int>(se.log_err_k.size())) {
        ImGui::Text("%.2e", std::pow(10.0, se.log_err_k[i]));
      } else {
        ImGui::TextDisabled("trace");
      }
    }
    ImGui::EndTable();
  }
  log.panels["lckv"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
