// Cache map: one row per bank, one column per position of the sequence: the cells the latest step
// read (teal, brighter for more attention), the positions gone from the bank (dark red), and the
// kept positions older than a dropped one: sinks (outlined in amber) or, under H2O, heavy hitters
// (outlined in magenta; the hover shows their accumulated score).
#include <algorithm>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_cache_panel(const Rect& r, const Frame& f, DrawLog& log) {
  if (!begin_panel(
          "Cache map", r,
          "Rows: banks (KV layers); columns: positions. Teal: cells the latest step read "
          "(brighter = more attention); dark red: gone from the bank; outlined: kept though "
          "a later token was dropped: amber a sink, magenta an H2O heavy hitter.")) {
    ImGui::End();
    return;
  }
  log.panels["cache"] = false;
  const CacheMap& m = f.cache;
  if (m.positions == 0 || m.banks.empty()) {
    ImGui::TextDisabled("no sequence yet");
    ImGui::End();
    return;
  }
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float label_w = 52;
  const int R = static_cast<int>(m.banks.size());
  const float cw = (avail.x - label_w) / static_cast<float>(m.positions);
  const float ch = std::min(16.0f, (avail.y - 2) / static_cast<float>(R));
  if (cw <= 0 || ch < 2) {
    ImGui::End();
    return;
  }
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 mouse = ImGui::GetMousePos();
  const ImVec4 kv = ImGui::ColorConvertU32ToFloat4(colour::kv_layer);
  for (int row = 0; row < R; ++row) {
    const float y = p0.y + ch * static_cast<float>(row);
    if (ch >= 10) {
      dl->AddText(ImVec2(p0.x, y + ch / 2 - 7), colour::text_dim,
                  ("bank " + std::to_string(m.banks[row])).c_str());
    }
    for (int p = 0; p < m.positions; ++p) {
      const unsigned char st = m.at(row, p);
      const float x = p0.x + label_w + cw * static_cast<float>(p);
      const ImVec2 a(x, y), z(x + std::max(1.0f, cw - (cw >= 4 ? 1.0f : 0.0f)), y + ch - 1);
      ImU32 col = colour::evicted;
      if (st == CacheMap::kept || st == CacheMap::sink || st == CacheMap::heavy) {
        const float w = m.max_mass > 0
                            ? 0.35f + 0.65f *
                                          m.mass[static_cast<std::size_t>(row) * m.positions + p] /
                                          m.max_mass
                            : 1.0f;
        col = ImGui::ColorConvertFloat4ToU32(ImVec4(kv.x * w, kv.y * w, kv.z * w, 1));
      }
      dl->AddRectFilled(a, z, col);
      if (st == CacheMap::sink) dl->AddRect(a, z, colour::sink);
      if (st == CacheMap::heavy) dl->AddRect(a, z, colour::heavy_hitter);
      if (ImGui::IsWindowHovered() && mouse.x >= x && mouse.x < x + cw && mouse.y >= y &&
          mouse.y < y + ch) {
        const int np = static_cast<int>(f.worker.prompt_pieces.size());
        std::string tok;
        if (p < np) {
          tok = f.worker.prompt_pieces[p];
        } else if (p - np < static_cast<int>(f.worker.generated_pieces.size())) {
          tok = f.worker.generated_pieces[p - np];
        }
        const char* what = st == CacheMap::evicted ? "gone"
                           : st == CacheMap::sink  ? "kept: a sink (older than a dropped token)"
                           : st == CacheMap::heavy ? "kept: a heavy hitter (H2O score)"
                                                   : "kept";
        const std::size_t i = static_cast<std::size_t>(row) * m.positions + p;
        if (m.score[i] >= 0) {
          ImGui::SetTooltip("bank %d, position %d \"%s\": %s, attention %.3f, H2O score %.3f",
                            m.banks[row], p, tok.c_str(), what, m.mass[i], m.score[i]);
        } else {
          ImGui::SetTooltip("bank %d, position %d \"%s\": %s, attention %.3f", m.banks[row], p,
                            tok.c_str(), what, m.mass[i]);
        }
      }
    }
  }
  log.rect("cache.map", ImVec2(p0.x + label_w, p0.y),
           ImVec2(p0.x + avail.x, p0.y + ch * static_cast<float>(R)));
  ImGui::Dummy(ImVec2(avail.x, ch * static_cast<float>(R)));
  if (!m.exact) ImGui::TextDisabled("by recency (record attention for the exact cells)");
  int sinks = 0, heavy = 0;
  for (const unsigned char st : m.state) {
    sinks += st == CacheMap::sink;
    heavy += st == CacheMap::heavy;
  }
  if (sinks + heavy > 0) {
    ImGui::TextDisabled("%d sink cells (amber), %d heavy-hitter cells (magenta)", sinks, heavy);
  }
  log.panels["cache"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
