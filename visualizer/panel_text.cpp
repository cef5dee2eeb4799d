// Text: the prompt and the generated tokens, token by token; generated ones in the KV colour,
// prompt tokens in white, tokens whose K/V some bank no longer holds dimmed.
#include <algorithm>
#include <string>

#include "visualizer/panels.hpp"

namespace kvlab::viz {
namespace {

// Printable form of a token's bytes (control characters as \xNN; newlines as a return symbol).
std::string printable(const std::string& bytes) {
  std::string out;
  for (unsigned char ch : bytes) {
    if (ch == '\n') {
      out += "\\n";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

}  // namespace

void draw_text_panel(const Rect& r, const Frame& f, DrawLog& log) {
  if (!begin_panel("Text", r,
                   "The prompt (white) and the greedy continuation (teal), token by token. A "
                   "dimmed token is one that some bank has evicted.")) {
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
  // The smallest number of tokens any bank holds: older tokens are gone from some bank.
  std::int64_t least_held = -1;
  for (const auto& [bank, e] : f.snap.banks) {
    least_held = least_held < 0 ? e.tokens_held : std::min(least_held, e.tokens_held);
  }
  const int total = static_cast<int>(s.prompt_pieces.size() + s.generated_pieces.size());
  const int first_everywhere =
      least_held < 0 ? 0 : std::max<int>(0, total - static_cast<int>(least_held));
  ImGui::BeginChild("tokens", ImVec2(0, 0), false);
  const float wrap = ImGui::GetContentRegionAvail().x;
  float x = 0;
  for (int i = 0; i < total; ++i) {
    const bool gen = i >= static_cast<int>(s.prompt_pieces.size());
    const std::string t =
        printable(gen ? s.generated_pieces[i - s.prompt_pieces.size()] : s.prompt_pieces[i]);
    if (t.empty()) continue;
    const float w = ImGui::CalcTextSize(t.c_str()).x;
    if (x > 0 && x + w <= wrap) {
      ImGui::SameLine(0, 0);
    } else {
      x = 0;
    }
    ImVec4 c = gen ? ImGui::ColorConvertU32ToFloat4(colour::kv_layer) : ImVec4(1, 1, 1, 1);
    if (i < first_everywhere) c.w = 0.35f;
    ImGui::TextColored(c, "%s", t.c_str());
    x += w;
  }
  if (s.running) ImGui::SetScrollHereY(1.0f);
  ImGui::EndChild();
  log.panels["text"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
