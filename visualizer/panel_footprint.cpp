// KV footprint: one column per layer with the bytes of the bank it reads (solid where the layer
// stores it, faded where it only reads a shared bank), a gauge of tokens held against the bank's
// budget under each column, the plan's total beside the standard plan's on the same tokens, and
// the total over the run.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_footprint_panel(const Rect& r, const Frame& f, DrawLog& log) {
  if (!begin_panel("KV footprint", r,
                   "Bytes of K/V held, per layer and in total. A solid column is a bank (a KV "
                   "layer's own K/V); a faded one is a layer reading a bank it shares, not counted "
                   "again. Right: this plan's total against the standard plan's on the same "
                   "tokens.")) {
    ImGui::End();
    return;
  }
  log.panels["footprint"] = false;  // rendered; true once it shows more than its hint
  const Footprint& fp = f.footprint;
  if (fp.columns.empty()) {
    ImGui::TextWrapped("Nothing held yet: prefill a prompt (Controls, or key P).");
    ImGui::End();
    return;
  }
  ImGui::Text("step %d, %d tokens: %s held in %d banks", fp.step, fp.tokens,
              human_bytes(static_cast<double>(fp.bytes_held)).c_str(), fp.banks);
  ImGui::Text("standard plan: %s  (this plan holds %.0f%%)",
              human_bytes(static_cast<double>(fp.standard_bytes)).c_str(),
              fp.standard_bytes > 0 ? 100.0 * fp.bytes_held / fp.standard_bytes : 0.0);
  help_marker(
      "The standard plan on the same tokens keeps one bank per layer: the sum over the "
      "layers of what each reads (exact for full banks). Allocated: every bank's budget "
      "times its bytes per token.");

  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float history_h = std::clamp(avail.y * 0.22f, 30.0f, 70.0f);
  const float chart_h = avail.y - history_h - 8;
  if (avail.x < 80 || chart_h < 40) {
    ImGui::End();
    return;
  }
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float label_h = ImGui::GetTextLineHeight();
  const float gauge_h = 4;
  const float base = p0.y + chart_h - label_h - gauge_h - 4;  // bars grow up from here
  const float top = p0.y + label_h * 2 + 4;                   // room for two rows of total labels
  const float bar_space = base - top;
  const float cols_w = avail.x * 0.72f;
  const ImVec2 mouse = ImGui::GetMousePos();

  // Per-layer columns.
  const int L = static_cast<int>(fp.columns.size());
  const float slot = cols_w / static_cast<float>(L);
  const float bw = std::max(2.0f, slot * 0.72f);
  for (const FootprintColumn& c : fp.columns) {
    const float x = p0.x + slot * static_cast<float>(c.layer) + (slot - bw) / 2;
    const float h = static_cast<float>(c.height) * bar_space;
    const ImVec2 a(x, base - h), z(x + bw, base);
    dl->AddRectFilled(a, z, c.writes ? colour::kv_layer : colour::shared);
    if (!c.writes) dl->AddRect(a, z, colour::kv_layer);
    log.rect("footprint.layer." + std::to_string(c.layer), a, z);
    // Tokens held against the budget.
    dl->AddRectFilled(ImVec2(x, base + 2), ImVec2(x + bw, base + 2 + gauge_h),
                      IM_COL32(255, 255, 255, 40));
    dl->AddRectFilled(ImVec2(x, base + 2),
                      ImVec2(x + bw * static_cast<float>(c.fill), base + 2 + gauge_h),
                      c.evicted > 0 ? colour::upward : colour::kv_layer);
    if (slot >= 14 || c.layer % std::max(1, static_cast<int>(20 / slot)) == 0) {
      const std::string n = std::to_string(c.layer);
      const ImVec2 ts = ImGui::CalcTextSize(n.c_str());
      dl->AddText(ImVec2(x + bw / 2 - ts.x / 2, base + gauge_h + 4), colour::text_dim, n.c_str());
    }
    if (ImGui::IsWindowHovered() && mouse.x >= x && mouse.x <= x + bw && mouse.y >= top &&
        mouse.y <= base + gauge_h + 4) {
      ImGui::SetTooltip(
          "layer %d reads bank %d%s\n%lld of %lld tokens, %s\nevicted this step: %lld", c.layer,
          c.bank, c.writes ? " (its own: counted)" : " (shared: not counted)",
          static_cast<long long>(c.tokens_held), static_cast<long long>(c.budget),
          human_bytes(static_cast<double>(c.bytes_held)).c_str(),
          static_cast<long long>(c.evicted));
    }
  }
  dl->AddText(ImVec2(p0.x, p0.y), colour::text_dim, "per layer (bank read)");

  // Totals: this plan against the standard plan.
  const float tx = p0.x + cols_w + 12;
  const float tw = (avail.x - cols_w - 12) / 2;
  const float tbw = std::max(8.0f, tw * 0.6f);
  const struct {
    const char* label;
    double height;
    std::int64_t bytes;
    ImU32 col;
    const char* key;
  } totals[2] = {{"plan", fp.plan_height, fp.bytes_held, colour::kv_layer, "plan"},
                 {"standard", fp.standard_height, fp.standard_bytes, colour::standard, "standard"}};
  float last_label_right = -1e9f, last_label_y = -1e9f;
  for (int i = 0; i < 2; ++i) {
    const float x = tx + tw * static_cast<float>(i) + (tw - tbw) / 2;
    const float h = static_cast<float>(totals[i].height) * bar_space;
    const ImVec2 a(x, base - h), z(x + tbw, base);
    dl->AddRectFilled(a, z, totals[i].col);
    log.rect(std::string("footprint.total.") + totals[i].key, a, z);
    const std::string b = human_bytes(static_cast<double>(totals[i].bytes));
    const ImVec2 bs = ImGui::CalcTextSize(b.c_str());
    ImVec2 at(x + tbw / 2 - bs.x / 2, a.y - label_h - 1);
    // Two labels side by side at about the same height would overlap: lift the second one.
    if (i == 1 && at.x < last_label_right + 4 && std::abs(at.y - last_label_y) < label_h) {
      at.y = last_label_y - label_h;
    }
    dl->AddText(at, IM_COL32(255, 255, 255, 255), b.c_str());
    last_label_right = at.x + bs.x;
    last_label_y = at.y;
    const ImVec2 ls = ImGui::CalcTextSize(totals[i].label);
    dl->AddText(ImVec2(x + tbw / 2 - ls.x / 2, base + gauge_h + 4), colour::text_dim,
                totals[i].label);
  }
  dl->AddLine(ImVec2(p0.x, base), ImVec2(p0.x + avail.x, base), colour::grid);
  ImGui::Dummy(ImVec2(avail.x, chart_h));

  // The total over the run.
  if (fp.history.size() >= 2) {
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "total held per step (%zu steps)", fp.history.size());
    ImGui::SetNextItemWidth(avail.x);  // 1.86 draws nothing for a width of -1
    ImGui::PlotLines("##history", fp.history.data(), static_cast<int>(fp.history.size()), 0,
                     overlay, 0.0f, 1.1f * *std::max_element(fp.history.begin(), fp.history.end()),
                     ImVec2(avail.x, history_h));
  } else {
    ImGui::TextDisabled("step or run to see the total grow token by token");
  }
  log.panels["footprint"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
