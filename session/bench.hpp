// Speed of the reference engine (Session::bench; `kvlab bench`) and of the machine's memory.
#pragma once

#include <string>

namespace kvlab {

struct BenchSetup {
  std::string mode = "decode";  // decode | prefill
  int context = -1;             // decode: cache depth (default 0); prefill: prompt tokens (512)
  int tokens = 0;               // decode: tokens timed (default 32)
  int repeat = 3;               // best of, [1, 100]

  // The defaults filled in; throws kvlab::Error naming --repeat, mode or --context.
  BenchSetup resolved() const;
  bool decode() const { return mode == "decode"; }
  // The positions a run needs (a random-weight model's max_position_embeddings grows to this).
  int positions_needed() const { return context + tokens + 2; }
};

struct BenchResult {
  BenchSetup setup;                   // resolved
  double tokens_per_s = 0;            // best of setup.repeat
  double seconds_per_token = 0;       // best run
  double weight_bytes_per_token = 0;  // decode: every weight matrix once (0 for prefill)
  double kv_bytes_per_token = 0;      // decode: every reader's bank at the run's mean depth
  double achieved_gb_s = 0;           // decode: (weights + KV) x tokens/s
};

// Read bandwidth of a 1 GiB float array summed by `threads` threads, best of `repeat`: what a
// decode step can hope for. Throws kvlab::Error naming --threads or --repeat.
struct MemoryBench {
  int threads = 1, repeat = 3;
  double read_gb_s = 0;
  double checksum = 0;  // the sums (keeps the reads from being optimised away)
};
MemoryBench measure_read_bandwidth(int threads, int repeat);

}  // namespace kvlab
