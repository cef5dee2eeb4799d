// Layer budgets (SqueezeAttention): each layer's cosine similarity between the residual stream
// before and after its attention (s_l; higher = the layer changed less = less important), coloured
// by the k-means cluster of its bank, with the budget each bank gets and the clusters' centres.
// Moving f0 or f3 re-runs the prompt and redraws.
#include <algorithm>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_squeeze_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log) {
  if (!begin_panel("Layer budgets (Squeeze)", r,
                   "SqueezeAttention: s_l = cosine of the stream before and after layer l's "
                   "attention. Banks are clustered by it (1 red = most important ... 3 blue = "
                   "least); clusters 1-2 share the budget cluster 3 gives up (f3 of the prompt "
                   "instead of f0).")) {
    ImGui::End();
    return;
  }
  log.panels["squeeze"] = false;  // rendered; true once it shows more than its hint
  bool changed = ImGui::Checkbox("budgets", &c.squeeze);
  help_marker(
      "On: every bank keeps a budget from its cluster (policy window unless you chose "
      "another evicting one). Off: the cosines are measured, nothing is evicted.");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(70);
  ImGui::SliderFloat("f0", &c.f0, 0.05f, 1.0f, "%.2f");
  changed |= ImGui::IsItemDeactivatedAfterEdit() && c.squeeze;
  ImGui::SameLine();
  ImGui::SetNextItemWidth(70);
  if (c.squeeze_p) {
    ImGui::SliderFloat("p", &c.p, 0.0f, 1.0f, "%.2f");
  } else {
    ImGui::SliderFloat("f3", &c.f3, 0.0f, 1.0f, "%.2f");
  }
  changed |= ImGui::IsItemDeactivatedAfterEdit() && c.squeeze;
  ImGui::SameLine();
  changed |= ImGui::Checkbox("as p", &c.squeeze_p) && c.squeeze;
  help_marker(
      "Cluster 3's fraction: f3 of the prompt, or p times f0 (the paper's p: 0.3 to 0.4 "
      "works well).");
  if (changed) apply_run_options(w, c);

  const SqueezeBars& b = f.squeeze;
  const int L = static_cast<int>(b.cos_sim.size());
  if (L == 0) {
    ImGui::TextWrapped("Prefill a prompt to measure each layer's cosine similarity.");
    ImGui::End();
    return;
  }
  if (b.clustered) {
    ImGui::TextWrapped("%d prompt tokens; clusters 1-2 keep %.2f of the prompt", b.prompt_tokens,
                       b.a);
  } else {
    ImGui::TextWrapped("%d prompt tokens; budgets off (all tokens kept)", b.prompt_tokens);
  }
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (avail.x < 80 || avail.y < 50) {
    ImGui::End();
    return;
  }
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float lh = ImGui::GetTextLineHeight();
  const float left = p0.x + 46, right = p0.x + avail.x - 4;
  const float top = p0.y + lh + 4, base = p0.y + avail.y - lh - 4;
  auto Y = [&](double v) {
    return base - (base - top) * static_cast<float>((v - b.lo) / (b.hi - b.lo));
  };
  for (double v : {b.lo, (b.lo + b.hi) / 2, b.hi}) {
    char t[16];
    std::snprintf(t, sizeof t, b.hi - b.lo < 0.01 ? "%.4f" : "%.3f", v);
    dl->AddText(ImVec2(p0.x, Y(v) - 7), colour::text_dim, t);
    dl->AddLine(ImVec2(left, Y(v)), ImVec2(right, Y(v)), colour::grid);
  }
  const float slot = (right - left) / static_cast<float>(L);
  const float bw = std::max(2.0f, slot * 0.7f);
  const ImVec2 mouse = ImGui::GetMousePos();
  for (int l = 0; l < L; ++l) {
    const float x = left + slot * static_cast<float>(l) + (slot - bw) / 2;
    const ImVec2 a(x, Y(b.cos_sim[l])), z(x + bw, base);
    dl->AddRectFilled(a, z, colour::cluster[std::clamp(b.cluster[l], 0, 3)]);
    log.rect("squeeze.layer." + std::to_string(l), a, z);
    if (b.budget[l] >= 0 && slot >= 16) {
      const std::string t = std::to_string(b.budget[l]);
      const ImVec2 ts = ImGui::CalcTextSize(t.c_str());
      dl->AddText(ImVec2(x + bw / 2 - ts.x / 2, a.y - lh), IM_COL32(255, 255, 255, 255), t.c_str());
    }
    if (slot >= 12 || l % 2 == 0) {
      const std::string t = std::to_string(l);
      const ImVec2 ts = ImGui::CalcTextSize(t.c_str());
      dl->AddText(ImVec2(x + bw / 2 - ts.x / 2, base + 2), colour::text_dim, t.c_str());
    }
    if (ImGui::IsWindowHovered() && mouse.x >= x && mouse.x <= x + bw && mouse.y >= top &&
        mouse.y <= base) {
      if (b.clustered) {
        ImGui::SetTooltip("layer %d: s = %.4f, cluster %d, bank budget %d tokens", l, b.cos_sim[l],
                          b.cluster[l], b.budget[l]);
      } else {
        ImGui::SetTooltip("layer %d: s = %.4f (importance %.4f)", l, b.cos_sim[l],
                          1 - b.cos_sim[l]);
      }
    }
  }
  // Cluster centres (of the banks' cosines).
  if (b.clustered) {
    for (int k = 0; k < 3; ++k) {
      if (b.centres[k] == 0) continue;
      const float y = Y(b.centres[k]);
      if (y < top || y > base) continue;
      for (float x = left; x < right; x += 10) {
        dl->AddLine(ImVec2(x, y), ImVec2(std::min(x + 5, right), y), colour::cluster[k + 1], 1.5f);
      }
    }
  }
  dl->AddText(ImVec2(left, p0.y), colour::text_dim,
              b.clustered ? "s_l; numbers: budgets; dashes: centres"
                          : "s_l per layer (higher = less important)");
  ImGui::Dummy(avail);
  log.panels["squeeze"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
