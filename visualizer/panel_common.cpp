// Helpers every panel uses, and the commands a control or a script line sends to the worker.
#include <cstdio>

#include "visualizer/panels.hpp"

namespace kvlab::viz {

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 32.0f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

bool begin_panel(const char* title, const Rect& r, const char* explanation) {
  ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
  ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
  const bool open =
      ImGui::Begin(title, nullptr,
                   ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize |
                       ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoBringToFrontOnFocus);
  // The panel's one-line explanation: on hover of its title bar.
  if (ImGui::IsItemHovered() || (ImGui::IsWindowHovered() && ImGui::GetMousePos().y < r.y + 20)) {
    ImGui::SetTooltip("%s", explanation);
  }
  return open;
}

void apply_run_options(Worker& w, const Controls& c) {
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::configure;
  cmd.run_options =
      w.state().run;  // keep what the controls do not set (threads, schedule, context)
  cmd.run_options.plan = c.plan;
  cmd.run_options.policy = c.policy;
  cmd.run_options.budget = c.budget;
  cmd.run_options.squeeze = {};
  if (c.squeeze) {
    cmd.run_options.squeeze.enabled = true;
    cmd.run_options.squeeze.f0 = c.f0;
    cmd.run_options.squeeze.f3 = c.f3;
    if (c.squeeze_p) {
      cmd.run_options.squeeze.p = c.p;
      cmd.run_options.squeeze.f3 = -1;
    }
    // SqueezeAttention sets each bank's budget and needs an evicting policy: keep the recent
    // tokens (window without :W) unless the user chose another.
    if (cmd.run_options.policy == "full" || cmd.run_options.policy.empty())
      cmd.run_options.policy = "window";
    cmd.run_options.budget.clear();
  }
  w.post(cmd);
}

void post_load(Worker& w, const Controls& c) {
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::load;
  cmd.options.model = c.model;
  cmd.options.allow_random = true;  // presets and config.json files: random weights
  cmd.options.run = w.state().run;
  cmd.options.run.plan.clear();  // the model's own plan
  cmd.options.run.policy = "full";
  cmd.options.run.budget.clear();
  cmd.options.run.squeeze = {};
  w.post(cmd);
}

void post_prefill(Worker& w, const Controls& c) {
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::prefill;
  cmd.prompt = c.prompt;
  w.post(cmd);
}

}  // namespace kvlab::viz
