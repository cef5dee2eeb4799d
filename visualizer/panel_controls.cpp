// Controls: the model, the plan, the policy and budget, the prompt; prefill, step, run, pause,
// reset, trace; the run's speed; what the worker holds and its last message or error.
#include <cstdio>

#include <imgui.h>
#include <imgui_stdlib.h>

#include "session/builtin_models.hpp"
#include "visualizer/panels.hpp"

namespace kvlab::viz {
namespace {

// Plans to pick from (any other is typed in the plan field).
const char* const kPlans[] = {"standard",       "cla:2",        "cla:3", "mlkv:2",
                              "lckv:2",         "lckv:4",       "yoco",  "sandwich-middle:2",
                              "pizza-bottom:2", "lasagna-top:2"};

}  // namespace

void draw_controls_panel(const Rect& r, const Frame& f, Controls& c, Worker& w, DrawLog& log) {
  if (!begin_panel("Controls", r,
                   "Pick a model and a plan, type a prompt, then prefill, step or run. "
                   "Keys: P prefill, N step, Space run/pause, R reset, T trace.")) {
    ImGui::End();
    return;
  }
  log.panels["controls"] = false;  // rendered; true once it shows more than its hint
  const WorkerState& s = f.worker;
  const bool typing = ImGui::GetIO().WantTextInput;

  // ---- model
  ImGui::TextColored(ImVec4(0.6f, 0.8f, 0.8f, 1), "Model");
  help_marker(
      "A built-in trained model, a checkpoint directory, a llama2.c .bin, a model "
      "preset (random weights, e.g. stories15m) or a config.json file (random weights).");
  ImGui::SetNextItemWidth(-70);
  ImGui::InputText("##model", &c.model);
  ImGui::SameLine();
  if (ImGui::Button("Load")) post_load(w, c);
  static std::vector<BuiltinModel> builtins = builtin_models();
  if (!builtins.empty()) {
    ImGui::SetNextItemWidth(-1);
    if (ImGui::BeginCombo("##builtins", "built-in models")) {
      for (const BuiltinModel& m : builtins) {
        if (ImGui::Selectable(m.name.c_str())) {
          c.model = m.name;
          post_load(w, c);
        }
      }
      ImGui::EndCombo();
    }
  }
  if (s.loaded) {
    const ModelConfig& m = s.config;
    ImGui::TextWrapped(
        "%s weights: %d layers, %d heads, %d KV heads of dim %d, vocab %d, context %d",
        s.format.c_str(), m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads,
        m.head_dim, m.vocab_size, s.context);
  }
  ImGui::Separator();

  // ---- plan
  ImGui::TextColored(ImVec4(0.6f, 0.8f, 0.8f, 1), "Plan");
  help_marker(
      "Which layer reads which layer's K/V: a generator (cla:2, lckv:2, yoco, ...) or the "
      "text form kv(0)_kv(1)_... with s after sliding layers. Applying re-runs the prompt.");
  ImGui::SetNextItemWidth(-70);
  if (ImGui::BeginCombo("##plans", c.plan.c_str())) {
    for (const char* p : kPlans) {
      if (ImGui::Selectable(p, c.plan == p)) {
        c.plan = p;
        apply_run_options(w, c);
      }
    }
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  if (ImGui::Button("Apply")) apply_run_options(w, c);
  ImGui::SetNextItemWidth(-70);
  if (ImGui::InputText("##plantext", &c.plan, ImGuiInputTextFlags_EnterReturnsTrue)) {
    apply_run_options(w, c);
  }
  ImGui::SameLine();
  ImGui::TextDisabled("text");
  if (s.loaded) {
    ImGui::TextWrapped("runs %s = %s, policy %s%s%s", s.plan_spec.c_str(), s.plan_text.c_str(),
                       s.run.policy.c_str(), s.run.budget.empty() ? "" : " budget ",
                       s.run.budget.c_str());
    if (s.run.squeeze.enabled) {
      ImGui::TextWrapped("SqueezeAttention f0 %.2f, f3 %.2f", s.run.squeeze.f0, s.run.squeeze.f3);
    }
  }
  ImGui::TextUnformatted("policy");
  help_marker(
      "Policy: full, window[:W], streaming[:S], h2o[:R]. Budget: tokens per bank, or a "
      "fraction of the prompt (0.25). Press Apply.");
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.55f);
  ImGui::InputText("##policy", &c.policy);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-60);
  ImGui::InputText("budget", &c.budget);
  ImGui::Separator();

  // ---- prompt and run
  ImGui::TextColored(ImVec4(0.6f, 0.8f, 0.8f, 1), "Prompt");
  ImGui::InputTextMultiline("##prompt", &c.prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 4));
  if (ImGui::Button("Prefill") || (!typing && ImGui::IsKeyPressed('P'))) {
    post_prefill(w, c);
  }
  ImGui::SameLine();
  if (ImGui::Button("Step") || (!typing && ImGui::IsKeyPressed('N'))) {
    WorkerCommand cmd;
    cmd.kind = WorkerCommand::step;
    w.post(cmd);
  }
  ImGui::SameLine();
  // Keys: GLFW key codes (1.86's backend), which are the upper-case letters' ASCII codes.
  const bool space = !typing && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Space));
  if (ImGui::Button(s.running ? "Pause" : "Run") || space) {
    WorkerCommand cmd;
    cmd.kind = s.running ? WorkerCommand::pause : WorkerCommand::run;
    cmd.prompt = c.prompt;
    w.post(cmd);
  }
  ImGui::SameLine();
  if (ImGui::Button("Reset") || (!typing && ImGui::IsKeyPressed('R'))) {
    WorkerCommand cmd;
    cmd.kind = WorkerCommand::reset;
    w.post(cmd);
  }
  if (ImGui::Button("Trace LCKV passes") || (!typing && ImGui::IsKeyPressed('T'))) {
    WorkerCommand cmd;
    cmd.kind = WorkerCommand::trace;
    cmd.prompt = c.prompt;
    w.post(cmd);
  }
  help_marker(
      "Encodes the prompt pass by pass (and token by token, to compare): the LCKV panel "
      "shows each pass's change and its error against the exact K/V.");
  if (ImGui::Button("Compare plans...")) c.compare_open = !c.compare_open;
  help_marker("The same model and prompt under a second plan, side by side: K/V held and text.");
  ImGui::SetNextItemWidth(-90);
  if (ImGui::SliderFloat("tokens/s", &c.speed, 0, 60, c.speed == 0 ? "max" : "%.0f")) {
    w.set_speed(c.speed);
  }
  ImGui::Separator();

  // ---- status
  if (s.loaded) {
    ImGui::Text("sequence %d / %d tokens", s.position, s.context);
    ImGui::ProgressBar(s.context > 0 ? static_cast<float>(s.position) / s.context : 0,
                       ImVec2(-1, 0), "");
    ImGui::TextWrapped("KV held %s of %s allocated",
                       human_bytes(static_cast<double>(s.kv_bytes_held)).c_str(),
                       human_bytes(static_cast<double>(s.kv_bytes_allocated)).c_str());
    ImGui::Text("weights %s", human_bytes(static_cast<double>(s.weight_bytes)).c_str());
    if (s.tokens_per_second > 0) ImGui::Text("decode %.1f tokens/s", s.tokens_per_second);
  }
  ImGui::Text("%s%s", s.busy ? "working... " : "", s.running ? "running" : "");
  if (!s.note.empty()) ImGui::TextWrapped("%s", s.note.c_str());
  if (!s.error.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, colour::error);
    ImGui::TextWrapped("error: %s", s.error.c_str());
    ImGui::PopStyleColor();
  }
  ImGui::TextDisabled("%.0f frames/s", f.fps);
  log.panels["controls"] = true;
  ImGui::End();
}

}  // namespace kvlab::viz
