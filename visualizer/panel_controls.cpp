// Controls: the model, the plan, the policy and budget, the prompt; prefill, step, run, pause,
// reset, trace; the run's speed; what the worker holds and its last message or error.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

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
const char* const kPolicies[] = {"full", "window", "streaming", "h2o"};

// The policy's kind and its parameter from the text form ("h2o:4" -> h2o, 4; "full" -> full, 0).
std::pair<int, int> policy_parts(const std::string& policy) {
  int kind = 0;
  for (int k = 0; k < 4; ++k) {
    if (policy.rfind(kPolicies[k], 0) == 0) kind = k;
  }
  int param = 0;
  const auto colon = policy.find(':');
  if (colon != std::string::npos) {
    try {
      param = std::stoi(policy.substr(colon + 1));
    } catch (const std::exception&) {
      param = 0;
    }
  }
  return {kind, param};
}

// Policy and budget: a kind, its parameter (the window, the sinks, the recent tokens) and the
// budget in tokens per bank, each applied when chosen; the text fields for every other form.
void draw_policy_picker(Controls& c, Worker& w, const WorkerState& s) {
  ImGui::TextUnformatted("policy");
  help_marker(
      "What each bank keeps. full: everything. window W: the last W tokens (a fixed window). "
      "streaming S: S sink tokens + the most recent, up to the budget. h2o R: R recent + the "
      "heaviest hitters by accumulated attention, up to the budget. The budget is in tokens per "
      "bank; the text fields take every form the CLI takes.");
  auto [kind, param] = policy_parts(c.policy);
  bool apply = false;
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.4f);
  if (ImGui::BeginCombo("##policykind", kPolicies[kind])) {
    for (int k = 0; k < 4; ++k) {
      if (ImGui::Selectable(kPolicies[k], k == kind)) {
        kind = k;
        param = k == 1 ? 32 : 0;  // a window needs its width; the others have defaults
        apply = true;
      }
    }
    ImGui::EndCombo();
  }
  if (kind > 0) {
    ImGui::SameLine();
    ImGui::SetNextItemWidth(-60);
    const char* what = kind == 1 ? "window" : kind == 2 ? "sinks" : "recent";
    ImGui::SliderInt(what, &param, 0, 256, param == 0 ? "default" : "%d");
    apply |= ImGui::IsItemDeactivatedAfterEdit();
  }
  if (apply) {
    c.policy = std::string(kPolicies[kind]) + (param > 0 ? ":" + std::to_string(param) : "");
    if (kind == 0) c.budget.clear();  // full keeps everything: a budget means nothing there
  }
  if (kind == 2 || kind == 3) {
    int budget = 0;
    try {
      budget = c.budget.empty() ? 0 : std::stoi(c.budget);
    } catch (const std::exception&) {
      budget = 0;
    }
    ImGui::SetNextItemWidth(-60);
    const int most = std::max(16, s.context);
    ImGui::SliderInt("budget", &budget, 0, most, budget == 0 ? "none" : "%d tokens");
    if (ImGui::IsItemDeactivatedAfterEdit()) {
      c.budget = budget > 0 ? std::to_string(budget) : "";
      apply = true;
    }
  }
  if (apply) apply_run_options(w, c);
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.55f);
  if (ImGui::InputText("##policy", &c.policy, ImGuiInputTextFlags_EnterReturnsTrue)) {
    apply_run_options(w, c);
  }
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-60);
  if (ImGui::InputText("##budget", &c.budget, ImGuiInputTextFlags_EnterReturnsTrue)) {
    apply_run_options(w, c);
  }
  ImGui::SameLine();
  ImGui::TextDisabled("text");
}

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
  draw_policy_picker(c, w, s);
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
