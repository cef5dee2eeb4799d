// Speed of GradModel::loss_and_grad against the machine's SGEMM peak (docs/training.md,
// docs/performance.md):
//   bench_train_grad [threads=2] [repeat=5] [precision=f32|f64] [preset=tiny|small]
// A preset's training shape with the shipped tokenizer's vocabulary (1024) and its B, T: tiny is
// L=6, C=128, H=4, D=32, F=384, B=16, T=128; small L=8, C=256, H=8, D=32, F=704, B=16, T=256.
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "reference/train/grad.hpp"
#include "reference/train/ops_grad.hpp"
#include "reference/train/presets.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// FLOP/s of x (M, K) · wᵀ with the gradient code's own tiles (linear_forward), best of `repeat`.
double sgemm_peak(int threads, int repeat) {
  const int M = 2048, K = 512, N = 512;
  std::vector<float> x(static_cast<long>(M) * K, 0.5f), w(static_cast<long>(N) * K, 0.25f),
      out(static_cast<long>(M) * N);
  double best = 1e30;
  for (int r = 0; r < repeat + 1; ++r) {
    const auto t0 = Clock::now();
    kvlab::ref::train::linear_forward(out.data(), x.data(), w.data(), M, K, N, threads);
    if (r > 0) best = std::min(best, seconds_since(t0));
  }
  return 2.0 * M * K * N / best;
}

template <typename S>
void run(int threads, int repeat, const std::string& preset_name) {
  using namespace kvlab;
  const ref::train::TrainPreset& preset = ref::train::find_train_preset(preset_name);
  ModelConfig c = preset.shape;
  c.vocab_size = 1024;
  const int B = preset.batch, T = preset.seq_len;
  std::printf("preset %s: %s\n", preset.name.c_str(), preset.description.c_str());
  for (const char* spec : {"standard", "cla:2", "lckv:2"}) {
    const KvPlan plan = KvPlan::parse(spec, c.num_hidden_layers);
    const auto w = ref::init_random<S>(c, plan, 1);
    std::mt19937_64 rng(3);
    std::vector<int> batch(static_cast<long>(B) * (T + 1));
    for (auto& t : batch) t = static_cast<int>(rng() % c.vocab_size);
    ref::train::TrainPasses passes;  // LCKV: the official 7 + 2
    ref::train::GradModel<S> model(c, plan, passes, threads);
    ref::ModelWeights<S> g;
    double best = 1e30;
    for (int r = 0; r < repeat + 1; ++r) {
      const auto t0 = Clock::now();
      model.loss_and_grad(w, batch.data(), B, T, g);
      if (r > 0) best = std::min(best, seconds_since(t0));
    }
    // Matrix FLOPs of one forward + backward (3x the forward's products), standard pass count.
    const double N = static_cast<double>(B) * T, C = c.hidden_size, F = c.intermediate_size;
    const double H = c.num_attention_heads, D = c.head_dim;
    const double per_layer = 2 * N * C * H * D * 4 + 2 * N * C * F * 3 + 2 * 2 * B * H * T * T * D;
    const double flops = 3 * (per_layer * c.num_hidden_layers + 2 * N * C * c.vocab_size);
    std::printf(
        "%-9s %s threads=%d  %.1f ms/step  %.0f tokens/s  %.1f GFLOP/s (standard-pass "
        "FLOPs)\n",
        spec, sizeof(S) == 4 ? "f32" : "f64", threads, best * 1e3, N / best, flops / best * 1e-9);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int repeat = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::string precision = argc > 3 ? argv[3] : "f32";
  const std::string preset = argc > 4 ? argv[4] : "tiny";
  Eigen::setNbThreads(1);
  std::printf("SGEMM (2048x512 · 512x512, the gradient code's tiles) threads=%d: %.1f GFLOP/s\n",
              threads, sgemm_peak(threads, repeat) * 1e-9);
  if (precision == "f64") {
    run<double>(threads, repeat, preset);
  } else {
    run<float>(threads, repeat, preset);
  }
  return 0;
}
