// Layer-condensed KV (techniques.md §3): iterative encoding of a cyclic block over all prompt
// tokens at once. The block's upward targets start with zero K/V; every pass restarts the block
// from the same input; upward readers use the targets' K/V of the previous pass, every other
// reader the K/V computed in this pass. With the diagonal masked for upward readers, pass r makes
// tokens 0..r-1 exact, so r >= T passes equal token-by-token encoding.
#include <algorithm>
#include <cmath>
#include <set>

#include "reference/engine.hpp"

namespace kvlab::ref {
namespace {

struct Delta {
  double max_abs = 0, mean_abs = 0, rel = 0, rel_mean = 0;
};

// |now - before| statistics of n values in the backend's memory, relative to the largest |now|.
template <typename S>
Delta delta(Backend<S>& backend, const S* now, const S* before, long n) {
  Delta d;
  double stats[3] = {0, 0, 0};  // max |now - before|, Σ |now - before|, max |now|
  if (n > 0) backend.diff_stats(stats, now, before, n);
  d.max_abs = stats[0];
  const double sum = stats[1], scale = stats[2];
  d.mean_abs = n == 0 ? 0 : sum / static_cast<double>(n);
  d.rel = scale > 0 ? d.max_abs / scale : (d.max_abs > 0 ? 1.0 : 0.0);
  d.rel_mean = scale > 0 ? d.mean_abs / scale : (d.mean_abs > 0 ? 1.0 : 0.0);
  return d;
}

}  // namespace

template <typename S>
void Engine<S>::run_cyclic_block(int index, S* x, const int* pos, int T, BankRows& rows,
                                 Workspace& ws) {
  const CyclicBlock& blk = blocks_[index];
  const long n = static_cast<long>(T) * w_->config.hidden_size;
  const long kv_size = static_cast<long>(T) * kv_.row_size();

  // The banks that upward readers of this block read: they start from zeros.
  std::set<int> targets;
  for (int l = blk.first; l <= blk.last; ++l) {
    if (plan_.is_upward(l)) targets.insert(kv_.bank_of_layer(l));
  }
  BankRows prev;
  prev.k.resize(kv_.num_banks());
  prev.v.resize(kv_.num_banks());
  for (int b : targets) {
    prev.k[b] = backend_->alloc(kv_size);  // zeros
    prev.v[b] = backend_->alloc(kv_size);
  }

  const bool converge = schedule_.mode == PrefillMode::converge;
  const int max_passes = converge ? schedule_.max_passes : schedule_.passes;
  BackendArray<S> input = backend_->alloc(n);  // (T, C): every pass restarts from here
  backend_->copy(input.data(), x, n);
  int pass = 0;
  for (pass = 1; pass <= max_passes; ++pass) {
    backend_->copy(x, input.data(), n);
    pass_ = pass;
    for (int l = blk.first; l <= blk.last; ++l) {
      importance_.restart(l);  // importance is measured on the last pass
      layer_forward(l, x, pos, T, /*batched=*/true, rows, &prev, ws);
    }
    // How far this pass moved each target's K/V; convergence looks at the largest relative move.
    double worst = 0;
    std::vector<PrefillPassEvent> events;
    for (int b : targets) {
      const Delta dk = delta(*backend_, rows.k[b].data(), prev.k[b].data(), kv_size),
                  dv = delta(*backend_, rows.v[b].data(), prev.v[b].data(), kv_size);
      worst = std::max({worst, dk.rel, dv.rel});
      PrefillPassEvent e;
      e.block = index;
      e.first_layer = blk.first;
      e.last_layer = blk.last;
      e.pass = pass;
      e.target_layer = kv_.bank(b).kv_layer;
      e.tokens = T;
      // Pass r makes rows 0..r-1 exact, given exact input rows: an earlier block that stopped
      // after r' passes (converge mode) leaves only its first r' rows exact.
      e.tokens_exact = std::min({pass, T, exact_rows_});
      e.max_abs_dk = dk.max_abs;
      e.mean_abs_dk = dk.mean_abs;
      e.max_abs_dv = dv.max_abs;
      e.mean_abs_dv = dv.mean_abs;
      e.rel_dk = dk.rel;
      e.rel_dv = dv.rel;
      e.rel_mean_dk = dk.rel_mean;
      e.rel_mean_dv = dv.rel_mean;
      if (exact_k_[b].size() == kv_size) {
        // Error against the exact (token-by-token) K/V: delta() relative to the exact scale.
        e.err_k = delta(*backend_, exact_k_[b].data(), rows.k[b].data(), kv_size).rel;
        e.err_v = delta(*backend_, exact_v_[b].data(), rows.v[b].data(), kv_size).rel;
      }
      events.push_back(e);
    }
    const bool converged = converge && worst < schedule_.eps;
    for (auto& e : events) {
      e.converged = converged;
      observers_.emit(EventKind::prefill_pass, e, &Observer::on_prefill_pass);
    }
    for (int b : targets) {
      if (tapping_) {
        // The pass's upward targets, as the next pass's upward readers will read them.
        const ModelConfig& c = w_->config;
        const std::string name = "prefill.pass" + std::to_string(pass) + ".bank" +
                                 std::to_string(kv_.bank(b).kv_layer) + ".target_";
        const std::vector<std::int64_t> shape = {T, c.num_key_value_heads, c.head_dim};
        tap(name + "k", shape, rows.k[b].data());
        tap(name + "v", shape, rows.v[b].data());
      }
      backend_->copy(prev.k[b].data(), rows.k[b].data(), kv_size);
      backend_->copy(prev.v[b].data(), rows.v[b].data(), kv_size);
    }
    if (converged) break;
    if (schedule_.stop_when_exact && pass >= T) break;  // every row at its fixed point
  }
  pass_ = 0;
  passes_run_.push_back(std::min(pass, max_passes));
  exact_rows_ = std::min(exact_rows_, passes_run_.back());
}

template void Engine<float>::run_cyclic_block(int, float*, const int*, int, BankRows&, Workspace&);
template void Engine<double>::run_cyclic_block(int, double*, const int*, int, BankRows&,
                                               Workspace&);

}  // namespace kvlab::ref
