// H2O score accumulation (techniques.md §5, "h2o"): each cell of an H2O bank accumulates the
// attention it receives from every layer that reads the bank, per KV head; `count` records how
// many query rows could see it (for norm=count). The choice of cells to keep is in policies.hpp.
#pragma once

#include <vector>

#include "core/plan.hpp"
#include "core/telemetry.hpp"
#include "reference/backend.hpp"
#include "reference/op_types.hpp"

namespace kvlab::ref {

// The count half of H2O accumulation, on metadata only: cells laid out (N, H_kv) with positions
// pos; a cell's count grows by one for each query row (at qpos (T), under `set`) and query head
// (H of them; head h belongs to KV head h / (H / H_kv)) that could see it.
void accumulate_h2o_counts(double* count, const int* pos, const int* qpos, AttentionSet set, int H,
                           int T, int N, int H_kv);

// Adds attention to cells laid out (N, H_kv): score (Backend::h2o_scores, from probs (H, T, N) in
// the backend's memory) and count (accumulate_h2o_counts). score, count, pos, qpos: host memory.
template <typename S>
void accumulate_h2o(Backend<S>& backend, double* score, double* count, const int* pos,
                    const S* probs, const int* qpos, AttentionSet set, int H, int T, int N,
                    int H_kv) {
  backend.h2o_scores(score, probs, H, T, N, H_kv);
  accumulate_h2o_counts(count, pos, qpos, set, H, T, N, H_kv);
}

// A prompt's H2O scores while its rows are in flight (batched prefill): per reading layer, the
// (T, H_kv) scores and counts of the prompt's own cells, summed over a bank's readers at commit.
class PromptScores {
 public:
  void reset(int layers) { score_.assign(layers, {}), count_.assign(layers, {}); }
  // Records layer l's attention probs (H, T, T) (backend memory) over the prompt rows at
  // positions pos (T).
  template <typename S>
  void record(int l, Backend<S>& backend, const S* probs, const int* pos, AttentionSet set, int H,
              int T, int H_kv);
  // The prompt's scores for the bank of `kv_layer`: the sum over every layer that reads it (§5).
  void sum_for_bank(const KvPlan& plan, int kv_layer, int T, int H_kv, std::vector<double>& score,
                    std::vector<double>& count) const;

 private:
  std::vector<std::vector<double>> score_, count_;  // per layer: (T, H_kv), empty if not recorded
};

// One H2oScoresEvent per KV head of an H2O bank: the positions the head holds and their scores.
// pos, score, count (held, H_kv) as a bank lays them out.
void emit_h2o_scores(const ObserverList& observers, int step, int kv_layer, int held, int H_kv,
                     const int* pos, const double* score, const double* count);

}  // namespace kvlab::ref
