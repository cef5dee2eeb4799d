// kvlab-gpu-bench: the CUDA backend's attention against the device's own measured bandwidth.
//   1. copy: cudaMemcpy device to device of a 1 GiB buffer (or a quarter of the free memory),
//      bandwidth = 2 x bytes / time (read + write), the best of 10 after a warm-up;
//   2. decode attention (T = 1, H = 32, H_kv = 8, D = 128, causal, float32) at 4k, 16k and 64k
//      cells: bytes read (K and V of every cell: 2 x N x H_kv x D x 4) per second, and that as a
//      share of the copy bandwidth (goal: >= 85 % at long context);
//   3. prefill attention (T = N = 4096, same heads, causal): TFLOP/s counting 4 x H x D flops per
//      (query, key) pair the causal mask allows.
// Times: CUDA events around each repetition, the median of 20 after 3 warm-ups.
// Prints one short table (--json: one JSON object instead). Without a device: prints
// "no CUDA device: <reason>" and exits 1; usage errors exit 2.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/attention.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_info.hpp"

namespace {

using kvlab::gpu::DeviceBuffer;

constexpr int kH = 32, kHkv = 8, kD = 128;

// Median seconds of `reps` runs of f (each timed with events) after `warm` untimed runs.
double time_median(const std::function<void()>& f, int warm = 3, int reps = 20) {
  for (int i = 0; i < warm; ++i) f();
  CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(a));
    f();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e-3);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Fills a device buffer with small values (a cheap pattern; the values do not change the timing
// beyond avoiding NaN and overflow).
void fill(DeviceBuffer<float>& d, float scale) {
  std::vector<float> h(d.size());
  for (std::size_t i = 0; i < h.size(); ++i)
    h[i] = scale * static_cast<float>(static_cast<int>((i * 2654435761u) % 2001) - 1000) / 1000.0f;
  d.upload(h.data(), h.size());
}

struct Row {
  std::string what;
  double seconds, value;  // value: GB/s or TFLOP/s
  std::string unit;
  double share = -1;  // of the copy bandwidth, decode rows only
};

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: kvlab-gpu-bench [--json]\n"
          "Measures device copy bandwidth, decode attention (4k/16k/64k cells) as a share of it,\n"
          "and prefill attention TFLOP/s (H=32, H_kv=8, D=128, float32). Exit 1 without a "
          "device.\n");
      return 0;
    } else {
      std::fprintf(stderr, "kvlab-gpu-bench: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  std::string why;
  if (!kvlab::gpu::cuda_available(&why)) {
    std::printf("no CUDA device: %s\n", why.c_str());
    return 1;
  }
  try {
    const auto devices = kvlab::gpu::list_devices();
    const kvlab::gpu::DeviceInfo& dev = devices.at(0);
    std::vector<Row> rows;

    // 1. Copy bandwidth.
    std::size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const std::size_t copy_bytes = std::min<std::size_t>(std::size_t(1) << 30, free_b / 4);
    double copy_bw = 0;
    {
      DeviceBuffer<char> src(copy_bytes), dst(copy_bytes);
      CUDA_CHECK(cudaMemset(src.data(), 1, copy_bytes));
      const double s = time_median(
          [&] {
            CUDA_CHECK(
                cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice));
          },
          2, 10);
      copy_bw = 2.0 * static_cast<double>(copy_bytes) / s;
      rows.push_back(
          {"copy D2D " + std::to_string(copy_bytes >> 20) + " MiB", s, copy_bw / 1e9, "GB/s"});
    }

    // 2. Decode attention.
    for (int N : {4096, 16384, 65536}) {
      const std::size_t kv = static_cast<std::size_t>(N) * kHkv * kD;
      DeviceBuffer<float> q(kH * kD), k(kv), v(kv), out(kH * kD);
      DeviceBuffer<int> qpos(1), kpos(N);
      fill(q, 1.0f), fill(k, 1.0f), fill(v, 1.0f);
      std::vector<int> pos(N);
      for (int j = 0; j < N; ++j) pos[j] = j;
      kpos.upload(pos.data(), N);
      const int qp = N - 1;
      qpos.upload(&qp, 1);
      kvlab::gpu::AttentionArgs a;
      a.out = out.data(), a.q = q.data(), a.qpos = qpos.data(), a.T = 1, a.k = k.data();
      a.v = v.data(), a.kpos = kpos.data(), a.N = N, a.H = kH, a.H_kv = kHkv, a.D = kD;
      const std::size_t wb = kvlab::gpu::attention_workspace_bytes(a);
      DeviceBuffer<char> work(wb);
      const double s = time_median([&] { kvlab::gpu::attention(a, work.data(), wb); });
      const double bytes = 2.0 * static_cast<double>(kv) * sizeof(float);
      Row r{"decode attention " + std::to_string(N / 1024) + "k (" +
                std::to_string(kvlab::gpu::attention_decode_splits(a)) + " chunks)",
            s, bytes / s / 1e9, "GB/s"};
      r.share = bytes / s / copy_bw;
      rows.push_back(r);
    }

    // 3. Prefill attention.
    {
      const int T = 4096;
      const std::size_t qn = static_cast<std::size_t>(T) * kH * kD;
      const std::size_t kv = static_cast<std::size_t>(T) * kHkv * kD;
      DeviceBuffer<float> q(qn), k(kv), v(kv), out(qn);
      DeviceBuffer<int> pos_d(T);
      fill(q, 1.0f), fill(k, 1.0f), fill(v, 1.0f);
      std::vector<int> pos(T);
      for (int j = 0; j < T; ++j) pos[j] = j;
      pos_d.upload(pos.data(), T);
      kvlab::gpu::AttentionArgs a;
      a.out = out.data(), a.q = q.data(), a.qpos = pos_d.data(), a.T = T, a.k = k.data();
      a.v = v.data(), a.kpos = pos_d.data(), a.N = T, a.H = kH, a.H_kv = kHkv, a.D = kD;
      const double s = time_median([&] { kvlab::gpu::attention(a, nullptr, 0); }, 2, 10);
      const double pairs = static_cast<double>(T) * (T + 1) / 2;
      const double flops = 4.0 * kH * kD * pairs;
      rows.push_back({"prefill attention 4k causal", s, flops / s / 1e12, "TFLOP/s"});
    }

    if (json) {
      std::printf("{\"device\": \"%s\", \"cc\": \"%d.%d\", \"rows\": [", dev.name.c_str(),
                  dev.cc_major, dev.cc_minor);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("%s{\"what\": \"%s\", \"ms\": %.4f, \"value\": %.3f, \"unit\": \"%s\"",
                    i ? ", " : "", r.what.c_str(), r.seconds * 1e3, r.value, r.unit.c_str());
        if (r.share >= 0) std::printf(", \"share_of_copy\": %.4f", r.share);
        std::printf("}");
      }
      std::printf("]}\n");
    } else {
      std::printf("kvlab-gpu-bench: %s (cc %d.%d, %d SMs), %s\n", dev.name.c_str(), dev.cc_major,
                  dev.cc_minor, dev.sm_count, kvlab::gpu::cuda_versions().c_str());
      std::printf("attention shape: H=%d H_kv=%d D=%d float32, causal\n", kH, kHkv, kD);
      std::printf("%-36s %10s %12s %10s\n", "what", "ms", "rate", "of copy");
      for (const Row& r : rows) {
        char share[16] = "";
        if (r.share >= 0) std::snprintf(share, sizeof share, "%.0f %%", 100 * r.share);
        std::printf("%-36s %10.3f %7.1f %-7s %7s\n", r.what.c_str(), r.seconds * 1e3, r.value,
                    r.unit.c_str(), share);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab-gpu-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
