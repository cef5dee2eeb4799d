// Compare: the same model and prompt under a second plan, run by a second worker, beside the
// first: the K/V each holds against the standard plan, the loss of each plan on the same text (A's
// prompt and continuation), and the two continuations (the first token where they part is
// marked). With "follow", B steps along as A generates and reruns when A starts over.
#include <algorithm>
#include <string>

#include <imgui.h>
#include <imgui_stdlib.h>

#include "core/tokenizers/tokenizer.hpp"
#include "visualizer/panels.hpp"

namespace kvlab::viz {

void post_compare(Worker& b, const WorkerState& a, const Controls& c) {
  // The same weights as A (random ones are drawn under the plan they are loaded with), then
  // A's run options with plan B.
  WorkerCommand load;
  load.kind = WorkerCommand::load;
  load.options = a.loaded_with;
  b.post(load);
  WorkerCommand configure;
  configure.kind = WorkerCommand::configure;
  configure.run_options = a.run;
  configure.run_options.plan = c.compare_plan;
  WorkerCommand attention;  // the panel shows totals and text: no probabilities needed
  attention.kind = WorkerCommand::attention;
  attention.count = 0;
  b.post(attention);
  if (a.sequence.size() >= 2) {  // both plans' loss on A's text, ending under plan B
    WorkerCommand score;
    score.kind = WorkerCommand::score;
    score.tokens = a.sequence;
    score.plans = {a.plan_spec, c.compare_plan};
    b.post(configure);
    b.post(score);
  } else {
    b.post(configure);
  }
  post_prefill(b, c);
  if (!a.generated_pieces.empty()) {
    WorkerCommand step;
    step.kind = WorkerCommand::step;
    step.count = static_cast<int>(a.generated_pieces.size());
    b.post(step);
  }
}

bool follow_compare(Worker& b, const WorkerState& a, const WorkerState& bs, const Controls& c) {
  if (!c.compare_follow || !bs.loaded || bs.busy || !b.idle() || !a.loaded || a.busy) return false;
  if (a.prompt_pieces.empty()) return false;
  if (a.prompt_pieces != bs.prompt_pieces ||
      a.generated_pieces.size() < bs.generated_pieces.size()) {
    post_compare(b, a, c);  // A started over (a new prompt, plan or reset): B runs again
    return true;
  }
  if (a.generated_pieces.size() > bs.generated_pieces.size()) {
    WorkerCommand step;
    step.kind = WorkerCommand::step;
    step.count = static_cast<int>(a.generated_pieces.size() - bs.generated_pieces.size());
    b.post(step);
    return true;
  }
  return false;
}

void draw_compare_panel(const Frame& f, Controls& c, Worker* b, const WorkerState& bs,
                        const Footprint& bf, bool& run_b, DrawLog& log) {
  if (!c.compare_open) return;
  ImGui::SetNextWindowSize(ImVec2(560, 330), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(360, 120), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowBgAlpha(1.0f);  // opaque over the panels below
  if (!ImGui::Begin("Compare plans", &c.compare_open)) {
    ImGui::End();
    return;
  }
  log.panels["compare"] = false;
  ImGui::TextWrapped(
      "The same model and prompt under a second plan (greedy, as many tokens as "
      "the main run has generated).");
  ImGui::SetNextItemWidth(160);
  const bool enter =
      ImGui::InputText("plan B", &c.compare_plan, ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  run_b = ImGui::Button("Run B on this prompt") || enter || run_b;
  ImGui::SameLine();
  ImGui::Checkbox("follow", &c.compare_follow);
  help_marker(
      "B decodes a token whenever A does, and runs again when A starts over (a new prompt, "
      "plan or reset).");
  if (!b || !bs.loaded) {
    if (b && !bs.error.empty())
      ImGui::TextColored(ImVec4(0.94f, 0.31f, 0.31f, 1), "%s", bs.error.c_str());
    ImGui::End();
    return;
  }
  if (!bs.error.empty()) ImGui::TextColored(ImVec4(0.94f, 0.31f, 0.31f, 1), "%s", bs.error.c_str());
  const Footprint& af = f.footprint;
  const WorkerState& as = f.worker;
  // Each plan's perplexity on A's text, from B's worker (the score command).
  auto perplexity_of = [&](const std::string& plan) -> const PlanScore* {
    for (const PlanScore& p : bs.scores) {
      if (p.plan == plan) return &p;
    }
    return nullptr;
  };
  if (ImGui::BeginTable("cmp", 6, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchProp)) {
    ImGui::TableSetupColumn("plan");
    ImGui::TableSetupColumn("map");
    ImGui::TableSetupColumn("banks");
    ImGui::TableSetupColumn("K/V held");
    ImGui::TableSetupColumn("of standard");
    ImGui::TableSetupColumn("perplexity");
    ImGui::TableHeadersRow();
    const struct {
      const WorkerState* s;
      const Footprint* fp;
    } rows[2] = {{&as, &af}, {&bs, &bf}};
    for (const auto& r : rows) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(r.s->plan_spec.c_str());
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(r.s->plan_text.c_str());
      ImGui::TableNextColumn();
      ImGui::Text("%d", r.fp->banks);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(human_bytes(static_cast<double>(r.fp->bytes_held)).c_str());
      ImGui::TableNextColumn();
      ImGui::Text("%.0f%%",
                  r.fp->standard_bytes > 0 ? 100.0 * r.fp->bytes_held / r.fp->standard_bytes : 0.0);
      ImGui::TableNextColumn();
      const PlanScore* p = perplexity_of(r.s == &as ? as.plan_spec : c.compare_plan);
      if (p) {
        ImGui::Text("%.2f", p->perplexity);
      } else {
        ImGui::TextDisabled("-");
      }
    }
    ImGui::EndTable();
  }
  if (!bs.scores.empty()) {
    ImGui::TextDisabled("perplexity of each plan on A's first %d tokens (prompt and continuation)",
                        bs.scores.front().tokens);
  }
  // Bars: A, B and the standard plan on the same tokens.
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float w = ImGui::GetContentRegionAvail().x, h = 18;
  const double top = std::max<double>(
      {1.0, static_cast<double>(af.standard_bytes), static_cast<double>(bf.standard_bytes)});
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const struct {
    const char* label;
    double bytes;
    ImU32 col;
    const char* key;
  } bars[3] = {{"A", static_cast<double>(af.bytes_held), colour::kv_layer, "compare.a"},
               {"B", static_cast<double>(bf.bytes_held), colour::upward, "compare.b"},
               {"std", static_cast<double>(std::max(af.standard_bytes, bf.standard_bytes)),
                colour::standard, "compare.standard"}};
  for (int i = 0; i < 3; ++i) {
    const float y = p0.y + static_cast<float>(i) * (h + 4);
    dl->AddText(ImVec2(p0.x, y + 2), colour::text_dim, bars[i].label);
    const ImVec2 a(p0.x + 30, y),
        z(p0.x + 30 + static_cast<float>(bars[i].bytes / top) * (w - 30), y + h);
    dl->AddRectFilled(a, z, bars[i].col);
    log.rect(bars[i].key, a, z);
  }
  ImGui::Dummy(ImVec2(w, 3 * (h + 4)));
  // The continuations; the first token where they differ is marked.
  const std::size_t n = std::min(as.generated_pieces.size(), bs.generated_pieces.size());
  std::size_t split = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (as.generated_pieces[i] != bs.generated_pieces[i]) {
      split = i;
      break;
    }
  }
  for (const auto* s : {&as, &bs}) {
    std::string a, rest;
    for (std::size_t i = 0; i < s->generated_pieces.size(); ++i) {
      (i < split ? a : rest) += s->generated_pieces[i];
    }
    a = printable_text(a, /*one_line=*/true);
    rest = printable_text(rest, /*one_line=*/true);
    ImGui::TextColored(ImVec4(0.7f, 0.7f, 0.75f, 1), "%s:", s == &as ? "A" : "B");
    ImGui::SameLine();
    ImGui::TextUnformatted(a.c_str());
    if (!rest.empty()) {
      ImGui::SameLine(0, 0);
      ImGui::TextColored(ImVec4(0.94f, 0.55f, 0.16f, 1), "%s", rest.c_str());
    }
  }
  if (split < n) ImGui::TextDisabled("the continuations part at token %zu (orange)", split + 1);
  log.panels["compare"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
