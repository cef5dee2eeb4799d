// The engine on gpu::CudaBackend against the engine on the CPU reference backend (float32 both),
// end to end on the trained tiny models (models/): the same greedy tokens under every plan family
// (standard, CLA, LCKV with its iterative prefill in fixed and converge modes, a plan run over
// another model's weights), every sequence policy (window, streaming, H2O, with budgets that do
// not divide the prompt), SqueezeAttention budgets, and f16/bf16 K/V. The prompt's logits agree
// within 2e-3 + 2e-3·|want|; then 24 greedy steps on each engine must give the same tokens (a step
// whose two best CPU logits are within 2e-3 of each other ends the comparison: a tie, not a bug).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/plan.hpp"
#include "gpu/cuda_backend.hpp"
#include "reference/checkpoint.hpp"
#include "reference/engine.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::Dtype;
using kvlab::KvPlan;
using kvlab::ref::Engine;
using kvlab::ref::EngineOptions;
using kvlab::ref::ModelWeights;
using kvlab::ref::PolicySpec;
using namespace kvlab::gpu::testing;

struct EngineRun {
  const char* name;
  const char* model;
  const char* plan = "";  // "" = the model's own
  const char* policy = "full";
  int budget = 0;
  std::optional<Dtype> dtype = std::nullopt;
  int squeeze = 0;   // 1: --squeeze 0.5,0.2 with the policy
  int schedule = 0;  // 0: automatic, 1: fixed passes, 2: converge
};

const EngineRun kRuns[] = {
    {"standard", "tiny-standard"},
    {"cla2-mqa (its own plan)", "tiny-cla2-mqa"},
    {"lckv2 (iterative prefill)", "tiny-lckv2"},
    {"lckv2, fixed passes", "tiny-lckv2", "", "full", 0, {}, 0, 1},
    {"lckv2, converge", "tiny-lckv2", "", "full", 0, {}, 0, 2},
    {"standard under cla:2", "tiny-standard", "cla:2"},
    {"standard, window:9", "tiny-standard", "", "window:9"},
    {"standard, streaming:2, budget 13", "tiny-standard", "", "streaming:2", 13},
    {"standard, h2o, budget 17", "tiny-standard", "", "h2o", 17},
    {"cla2-mqa, h2o, budget 11", "tiny-cla2-mqa", "", "h2o", 11},
    {"lckv2, h2o, budget 15", "tiny-lckv2", "", "h2o", 15},
    {"standard, h2o + squeeze", "tiny-standard", "", "h2o", 0, {}, 1},
    {"standard, f16 K/V", "tiny-standard", "", "full", 0, Dtype::f16},
    {"cla2-mqa, bf16 K/V", "tiny-cla2-mqa", "", "full", 0, Dtype::bf16},
};

std::shared_ptr<const ModelWeights<float>> weights(const std::string& model) {
  static std::map<std::string, std::shared_ptr<const ModelWeights<float>>> cache;
  auto& w = cache[model];
  if (!w)
    w = std::make_shared<const ModelWeights<float>>(
        kvlab::ref::load_checkpoint<float>(std::string(KVLAB_SOURCE_DIR) + "/models/" + model));
  return w;
}

EngineOptions options(const EngineRun& r, int layers) {
  EngineOptions o;
  if (*r.plan) o.plan = KvPlan::parse(r.plan, layers);
  o.policy = PolicySpec::parse(r.policy);
  if (r.budget > 0) o.budget.tokens = r.budget;
  o.kv_dtype = r.dtype;
  if (r.squeeze) {
    o.squeeze.enabled = true;
    o.squeeze.f0 = 0.5;
    o.squeeze.f3 = 0.2;
  }
  if (r.schedule == 1) o.schedule.mode = kvlab::ref::PrefillMode::fixed;
  if (r.schedule == 2) o.schedule.mode = kvlab::ref::PrefillMode::converge;
  return o;
}

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}
float margin(std::vector<float> v) {
  std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
  return v[0] - v[1];
}

TEST(GpuCudaEngine, GreedyTokensEqualTheReferenceUnderEveryPlanAndPolicy) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  for (const EngineRun& r : kRuns) {
    SCOPED_TRACE(r.name);
    const auto w = weights(r.model);
    const int V = w->config.vocab_size;
    Engine<float> cpu(w, options(r, w->config.num_hidden_layers));
    Engine<float> gpu(w, options(r, w->config.num_hidden_layers),
                      std::make_unique<kvlab::gpu::CudaBackend>());
    EXPECT_EQ(gpu.backend().name(), "cuda-f32");
    std::vector<int> prompt(41);
    for (int t = 0; t < 41; ++t) prompt[t] = (t * 131 + 7) % V;
    const std::vector<float> want = cpu.prefill(prompt);
    const std::vector<float> got = gpu.prefill(prompt);
    ASSERT_EQ(compare(got, want, 2e-3, 2e-3), "") << "prompt logits";
    if (r.schedule != 2) {  // converge: a maximum within float noise of eps may take one more
      EXPECT_EQ(cpu.passes_run(), gpu.passes_run()) << "iterative prefill passes";
    }
    int a = argmax(want), b = argmax(got);
    if (margin(want) < 2e-3f) continue;
    ASSERT_EQ(b, a) << "first token";
    for (int step = 0; step < 24; ++step) {
      const std::vector<float> wl = cpu.decode(a);
      const std::vector<float> gl = gpu.decode(b);
      ASSERT_EQ(compare(gl, wl, 2e-3, 2e-3), "") << "logits at step " << step;
      a = argmax(wl), b = argmax(gl);
      if (margin(wl) < 2e-3f) break;  // a near tie: the two may pick differently
      ASSERT_EQ(b, a) << "token at step " << step;
    }
    EXPECT_EQ(cpu.position(), gpu.position());
    EXPECT_EQ(cpu.backend().counters().attention_calls, gpu.backend().counters().attention_calls);
    EXPECT_EQ(cpu.backend().counters().attention_probs, gpu.backend().counters().attention_probs);
  }
}

}  // namespace
