// Text: the prompt and the generated tokens, token by token; generated ones in the KV colour,
// prompt tokens in white; each faded by the share of the banks that no longer hold its K/V.
#include <algorithm>
#include <string>
#include <vector>

#include "core/tokenizers/tokenizer.hpp"
#include "visualizer/panels.hpp"

namespace kvlab::viz {

void draw_text_panel(const Rect& r, const Frame& f, DrawLog& log) {
  if (!begin_panel("Text", r,
                   "The prompt (white) and the greedy continuation (teal), token by token, faded "
                   "by the share of the banks that no longer hold it (by recency).")) {
    ImGui::End();
    return;
  }
  log.panels["text"] = false;  // rendered; true once it shows more than its hint
  const WorkerState& s = f.worker;
  if (s.prompt_pieces.empty()) {
    ImGui::TextDisabled("no sequence yet");
    ImGui::End();
    return;
  }
  // How many banks still hold each token, by recency: a bank holding n tokens keeps the last n
  // (exact for full banks and windows; sinks and heavy hitters are older tokens it keeps too).
  std::vector<std::int64_t> held;
  for (const auto& [bank, e] : f.snap.banks) held.push_back(e.tokens_held);
  const int total = static_cast<int>(s.prompt_pieces.size() + s.generated_pieces.size());
  auto share_held = [&](int i) {
    if (held.empty()) return 1.0f;
    const std::int64_t age = total - 1 - i;  // 0: the newest token
    int n = 0;
    for (std::int64_t h : held) n += age < h;
    return static_cast<float>(n) / static_cast<float>(held.size());
  };
  ImGui::BeginChild("tokens", ImVec2(0, 0), false);
  const float wrap = ImGui::GetContentRegionAvail().x;
  float x = 0;
  for (int i = 0; i < total; ++i) {
    const bool gen = i >= static_cast<int>(s.prompt_pieces.size());
    const std::string t =
        printable_text(gen ? s.generated_pieces[i - s.prompt_pieces.size()] : s.prompt_pieces[i]);
    if (t.empty()) continue;
    const float w = ImGui::CalcTextSize(t.c_str()).x;
    if (x > 0 && x + w <= wrap) {
      ImGui::SameLine(0, 0);
    } else {
      x = 0;
    }
    ImVec4 c = gen ? ImGui::ColorConvertU32ToFloat4(colour::kv_layer) : ImVec4(1, 1, 1, 1);
    c.w = 0.3f + 0.7f * share_held(i);
    ImGui::TextColored(c, "%s", t.c_str());
    x += w;
  }
  if (s.running) ImGui::SetScrollHereY(1.0f);
  ImGui::EndChild();
  log.panels["text"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
