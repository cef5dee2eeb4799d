#include "reference/h2o.hpp"

namespace kvlab::ref {

void accumulate_h2o_counts(double* count, const int* pos, const int* qpos, AttentionSet set, int H,
                           int T, int N, int H_kv) {
  const int group = H / H_kv;
  for (int h = 0; h < H; ++h) {
    const int g = h / group;
    for (int i = 0; i < T; ++i) {
      for (int j = 0; j < N; ++j) {
        const long c = static_cast<long>(j) * H_kv + g;
        count[c] += set.allows(qpos[i], pos[c]) ? 1.0 : 0.0;
      }
    }
  }
}

template <typename S>
void PromptScores::record(int l, Backend<S>& backend, const S* probs, const int* pos,
                          AttentionSet set, int H, int T, int H_kv) {
  score_[l].assign(static_cast<long>(T) * H_kv, 0.0);
  count_[l].assign(score_[l].size(), 0.0);
  std::vector<int> cell_pos(score_[l].size());  // (T, H_kv): every head holds every prompt token
  for (int t = 0; t < T; ++t) {
    for (int g = 0; g < H_kv; ++g) cell_pos[static_cast<long>(t) * H_kv + g] = pos[t];
  }
  accumulate_h2o(backend, score_[l].data(), count_[l].data(), cell_pos.data(), probs, pos, set, H,
                 T, T, H_kv);
}

void PromptScores::sum_for_bank(const KvPlan& plan, int kv_layer, int T, int H_kv,
                                std::vector<double>& score, std::vector<double>& count) const {
  score.assign(static_cast<long>(T) * H_kv, 0.0);
  count.assign(score.size(), 0.0);
  for (int l : plan.readers(kv_layer)) {
    if (l >= static_cast<int>(score_.size()) || score_[l].empty()) continue;
    for (std::size_t i = 0; i < score.size(); ++i) {
      score[i] += score_[l][i];
      count[i] += count_[l][i];
    }
  }
}

void emit_h2o_scores(const ObserverList& observers, int step, int kv_layer, int held, int H_kv,
                     const int* pos, const double* score, const double* count) {
  for (int g = 0; g < H_kv; ++g) {
    H2oScoresEvent e;
    e.step = step;
    e.bank = kv_layer;
    e.kv_head = g;
    for (int c = 0; c < held; ++c) {
      const long i = static_cast<long>(c) * H_kv + g;
      e.positions.push_back(pos[i]);
      e.scores.push_back(score[i]);
      e.counts.push_back(count[i]);
    }
    observers.emit(EventKind::h2o_scores, e, &Observer::on_h2o_scores);
  }
}

template void PromptScores::record(int, Backend<float>&, const float*, const int*, AttentionSet,
                                   int, int, int);
template void PromptScores::record(int, Backend<double>&, const double*, const int*, AttentionSet,
                                   int, int, int);

}  // namespace kvlab::ref
