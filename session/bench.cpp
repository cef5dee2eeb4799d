// Session::bench (decode and prefill speed on the session's engine) and the memory read bandwidth
// to put the decode figures beside.
#include "session/bench.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <vector>

#include "core/accounting.hpp"
#include "core/error.hpp"
#include "session/session_impl.hpp"

namespace kvlab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void check_repeat(int repeat) {
  if (repeat < 1 || repeat > 100) fail("--repeat", std::to_string(repeat), "must be in [1, 100]");
}

}  // namespace

BenchSetup BenchSetup::resolved() const {
  check_repeat(repeat);
  if (mode != "decode" && mode != "prefill") {
    fail("mode", mode, "must be decode, prefill or memory");
  }
  BenchSetup r = *this;
  r.context = context >= 0 ? context : (decode() ? 0 : 512);
  r.tokens = tokens > 0 ? tokens : 32;
  if (r.context > (1 << 20) || (!decode() && r.context < 1)) {
    fail("--context", std::to_string(r.context),
         std::string(decode() ? "the cache depth" : "the prompt length") + " must be in [" +
             (decode() ? "0" : "1") + ", 1048576]");
  }
  return r;
}

MemoryBench measure_read_bandwidth(int threads, int repeat) {
  if (threads < 1 || threads > 256) {
    fail("--threads", std::to_string(threads), "must be in [1, 256]");
  }
  check_repeat(repeat);
  // Sum of a 1 GiB float array, each thread a contiguous slice (Eigen's vectorised sum).
  const long n = (1L << 30) / sizeof(float);
  std::vector<float> a(n, 1.0f);
  double best = 1e30, sink = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const long per = n / omp_get_num_threads(), first = per * omp_get_thread_num();
      total += Eigen::Map<const Eigen::VectorXf>(a.data() + first, per).sum();
    }
    best = std::min(best, seconds_since(t0));
    sink += total;
  }
  MemoryBench m;
  m.threads = threads;
  m.repeat = repeat;
  m.read_gb_s = static_cast<double>(n) * sizeof(float) / best / 1e9;
  m.checksum = sink;
  return m;
}

namespace detail {

template <typename S>
BenchResult bench(ref::Engine<S>& e, const BenchSetup& setup) {
  BenchResult res;
  const BenchSetup o = setup.resolved();
  res.setup = o;
  const bool decode = o.decode();
  const ModelConfig& c = e.config();
  const int context = o.context, tokens = o.tokens;
  const int needed = decode ? context + 1 + tokens : context;
  if (needed > e.context()) {
    fail("--context", std::to_string(context),
         std::string(decode ? "a cache depth plus the " + std::to_string(tokens + 1) +
                                  " tokens decoded"
                            : "the prompt") +
             " must fit the session's context of " + std::to_string(e.context()) + " tokens");
  }
  double best = 1e30;
  for (int r = 0; r < o.repeat; ++r) {
    e.reset();
    if (decode) {
      e.fill_random_cache(context);
      e.decode(1);  // warm-up step
      const auto t0 = Clock::now();
      for (int t = 0; t < tokens; ++t) e.decode((t * 31 + 7) % c.vocab_size);
      best = std::min(best, seconds_since(t0) / tokens);
    } else {
      std::vector<int> prompt(context);
      for (int t = 0; t < context; ++t) prompt[t] = (t * 31 + 7) % c.vocab_size;
      const auto t0 = Clock::now();
      e.prefill(prompt);
      best = std::min(best, seconds_since(t0) / context);
    }
  }
  res.seconds_per_token = best;
  res.tokens_per_s = 1.0 / best;
  // Per decoded token: every weight matrix once (the embedding row aside; a tied classifier is
  // the embedding read in full), and every reader's bank at the mean depth of the run.
  const auto& w = e.weights();
  const double weight_bytes =
      static_cast<double>(w.bytes()) -
      (c.tie_word_embeddings ? 0.0 : static_cast<double>(w.embed.size()) * sizeof(S));
  const double kv_bytes = decode ? static_cast<double>(kv_bytes_read_per_step(
                                       e.plan(), c, context + 1 + tokens / 2, e.kv_dtype()))
                                 : 0.0;
  res.weight_bytes_per_token = decode ? weight_bytes : 0.0;
  res.kv_bytes_per_token = kv_bytes;
  res.achieved_gb_s = decode ? (weight_bytes + kv_bytes) * res.tokens_per_s / 1e9 : 0.0;
  return res;
}

template BenchResult bench(ref::Engine<float>&, const BenchSetup&);
template BenchResult bench(ref::Engine<double>&, const BenchSetup&);

}  // namespace detail
}  // namespace kvlab
