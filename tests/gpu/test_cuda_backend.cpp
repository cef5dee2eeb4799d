// gpu::CudaBackend against ref::CpuBackend<float>, operation by operation through the Backend
// interface (device float arrays; int arrays from host and from device memory), the counters the
// CPU backend keeps, and a whole Llama layer chained (embed, rmsnorm, Q/K/V through linears, rope,
// GQA attention, output projection, residual, SwiGLU MLP, logits) ending in the same greedy token.
// Without a device, constructing the backend must fail naming CUDA's reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gpu/argmax.cuh"
#include "gpu/cuda_backend.hpp"
#include "gpu/device_info.hpp"
#include "gpu/kv_storage.hpp"
#include "reference/cpu_backend.hpp"
#include "reference/kv_dtype.hpp"
#include "reference/sampling.hpp"
#include "tests/gpu/gpu_compare.hpp"
#include "tests/gpu/gpu_test.hpp"

namespace {

using kvlab::Dtype;
using kvlab::gpu::CudaBackend;
using kvlab::gpu::DeviceBuffer;
using namespace kvlab::gpu::testing;

// With a device the backend constructs; without one the constructor names CUDA's reason. Never
// skipped (scripts/gpu-check fails on any skipped test).
TEST(GpuCudaBackend, ConstructsOnADeviceOrNamesCudasReason) {
  std::string why;
  if (kvlab::gpu::cuda_available(&why)) {
    CudaBackend b;
    EXPECT_EQ(b.name(), "cuda-f32");
    EXPECT_NE(b.stream(), nullptr);
    return;
  }
  try {
    CudaBackend b;
    FAIL() << "constructed without a device";
  } catch (const kvlab::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--backend cuda: no CUDA device: " + why),
              std::string::npos)
        << e.what();
  }
}

template <typename T>
std::vector<T> down(const DeviceBuffer<T>& d, CudaBackend& b) {
  b.synchronize();
  return to_host(d);
}

TEST(GpuCudaBackend, EachOperationMatchesTheCpuBackend) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  CudaBackend gpu;
  kvlab::ref::CpuBackend<float> cpu;
  EXPECT_EQ(gpu.name(), "cuda-f32");
  const int T = 7, C = 96, V = 33;

  // embed, host ids and device ids
  const auto table = uniform(static_cast<std::size_t>(V) * C, 1);
  const std::vector<int> tokens = {3, 0, 32, 3, 17, 9, 1};
  std::vector<float> want(static_cast<std::size_t>(T) * C);
  cpu.embed(want.data(), table.data(), tokens.data(), T, C);
  DeviceBuffer<float> dtable = to_device(table), dx(want.size());
  DeviceBuffer<int> dtokens = to_device(tokens);
  gpu.embed(dx.data(), dtable.data(), tokens.data(), T, C);
  EXPECT_EQ(compare(down(dx, gpu), want, 0, 0), "") << "embed, host ids";
  CUDA_CHECK(cudaMemset(dx.data(), 0xFF, want.size() * 4));
  gpu.embed(dx.data(), dtable.data(), dtokens.data(), T, C);
  EXPECT_EQ(compare(down(dx, gpu), want, 0, 0), "") << "embed, device ids";
  const std::vector<int> bad = {1, -4};
  EXPECT_THROW(gpu.embed(dx.data(), dtable.data(), bad.data(), 2, C), kvlab::Error);

  // rmsnorm
  const auto x = uniform(want.size(), 2), w = uniform(C, 3, 0.5, 1.5);
  DeviceBuffer<float> dxin = to_device(x), dw = to_device(w), dout(x.size());
  cpu.rmsnorm(want.data(), x.data(), w.data(), T, C, 1e-5);
  gpu.rmsnorm(dout.data(), dxin.data(), dw.data(), T, C, 1e-5);
  EXPECT_EQ(compare(down(dout, gpu), want, 1e-6, 1e-5), "") << "rmsnorm";

  // linear and linears
  const int N = 50;
  const auto W = uniform(static_cast<std::size_t>(N) * C, 4), W2 = uniform(W.size(), 5);
  std::vector<float> want2(static_cast<std::size_t>(T) * N), want3(want2.size());
  cpu.linear(want2.data(), x.data(), W.data(), T, C, N);
  DeviceBuffer<float> dW = to_device(W), dW2 = to_device(W2), dl(want2.size()), dl2(want2.size());
  gpu.linear(dl.data(), dxin.data(), dW.data(), T, C, N);
  EXPECT_EQ(compare(down(dl, gpu), want2, 1e-4, 1e-5), "") << "linear";
  const kvlab::ref::LinearOut<float> couts[2] = {{want2.data(), W.data(), N},
                                                 {want3.data(), W2.data(), N}};
  cpu.linears(couts, 2, x.data(), T, C);
  const kvlab::ref::LinearOut<float> gouts[2] = {{dl.data(), dW.data(), N},
                                                 {dl2.data(), dW2.data(), N}};
  gpu.linears(gouts, 2, dxin.data(), T, C);
  EXPECT_EQ(compare(down(dl, gpu), want2, 1e-4, 1e-5), "") << "linears 0";
  EXPECT_EQ(compare(down(dl2, gpu), want3, 1e-4, 1e-5), "") << "linears 1";

  // rope (host positions)
  const std::vector<int> pos = {0, 1, 2, 9, 100, 4000, 65000};
  want = x;
  cpu.rope(want.data(), pos.data(), T, 3, 32, 10000.0, kvlab::ref::RopePairing::interleaved);
  DeviceBuffer<float> drope = to_device(x);
  gpu.rope(drope.data(), pos.data(), T, 3, 32, 10000.0, kvlab::ref::RopePairing::interleaved);
  EXPECT_EQ(compare(down(drope, gpu), want, 2e-6, 2e-6), "") << "rope";

  // swiglu, add
  want = x;
  cpu.swiglu(want.data(), w.data(), C);
  DeviceBuffer<float> dg = to_device(x);
  gpu.swiglu(dg.data(), dw.data(), C);
  EXPECT_EQ(compare(down(dg, gpu), want, 1e-6, 1e-6), "") << "swiglu";
  want = x;
  cpu.add(want.data(), x.data(), static_cast<long>(x.size()));
  DeviceBuffer<float> da = to_device(x);
  gpu.add(da.data(), da.data(), static_cast<long>(x.size()));  // y aliasing x: doubling
  EXPECT_EQ(compare(down(da, gpu), want, 0, 0), "") << "add";

  // row_cosines into host memory and into device memory
  std::vector<double> wc(T), gc(T, -9);
  cpu.row_cosines(wc.data(), x.data(), table.data(), T, C);
  gpu.row_cosines(gc.data(), dxin.data(), dtable.data(), T, C);
  EXPECT_EQ(compare(gc, wc, 1e-12, 0), "") << "row_cosines, host out";
  DeviceBuffer<double> dc(T);
  gpu.row_cosines(dc.data(), dxin.data(), dtable.data(), T, C);
  EXPECT_EQ(compare(down(dc, gpu), wc, 1e-12, 0), "") << "row_cosines, device out";

  // attention with probs, per-head kpos from host memory; then without, kpos on the device
  const int H = 4, H_kv = 2, D = 24, Nk = 29;
  const auto q = uniform(static_cast<std::size_t>(T) * H * D, 6, -2, 2);
  const auto k = uniform(static_cast<std::size_t>(Nk) * H_kv * D, 7);
  const auto v = uniform(k.size(), 8);
  std::vector<int> qpos(T), kpos(static_cast<std::size_t>(H_kv) * Nk);
  std::iota(qpos.begin(), qpos.end(), Nk - T + 3);
  for (int g = 0; g < H_kv; ++g)
    for (int j = 0; j < Nk; ++j) kpos[static_cast<std::size_t>(g) * Nk + j] = j + (j > 10 ? g : 0);
  std::vector<float> wout(q.size()), wprobs(static_cast<std::size_t>(H) * T * Nk);
  kvlab::ref::AttentionArgs<float> a;
  a.out = wout.data(), a.q = q.data(), a.qpos = qpos.data(), a.T = T, a.k = k.data();
  a.v = v.data(), a.kpos = kpos.data(), a.N = Nk, a.kpos_head_stride = Nk, a.H = H, a.H_kv = H_kv;
  a.D = D, a.set = {true, 12}, a.probs = wprobs.data();
  cpu.attention(a);
  DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v), dao(q.size()),
                      dprobs(wprobs.size());
  auto g = a;
  g.out = dao.data(), g.q = dq.data(), g.k = dk.data(), g.v = dv.data(), g.probs = dprobs.data();
  gpu.attention(g);
  EXPECT_EQ(compare(down(dao, gpu), wout, 2e-5, 1e-4), "") << "attention";
  EXPECT_EQ(compare(down(dprobs, gpu), wprobs, 1e-6, 1e-4), "") << "attention probs";
  DeviceBuffer<int> dkpos = to_device(kpos), dqpos = to_device(qpos);
  g.probs = nullptr, g.kpos = dkpos.data(), g.qpos = dqpos.data();
  CUDA_CHECK(cudaMemset(dao.data(), 0xFF, q.size() * 4));
  gpu.attention(g);
  EXPECT_EQ(compare(down(dao, gpu), wout, 2e-5, 1e-4), "") << "attention, device positions";

  EXPECT_EQ(gpu.counters().attention_calls, 2);
  EXPECT_EQ(gpu.counters().attention_probs, 1);
  EXPECT_EQ(gpu.counters().cosine_rows, 2 * T);
  EXPECT_EQ(cpu.counters().attention_calls, 1);
  EXPECT_EQ(cpu.counters().cosine_rows, T);
}

// The memory seam (reference/backend.hpp): alloc gives zeros, upload/download/copy move the
// values, resident keeps one copy per host array, make_kv_storage gives device banks.
TEST(GpuCudaBackend, MemoryMembers) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  CudaBackend gpu;
  const long n = 1001;
  auto a = gpu.alloc(n), b = gpu.alloc(n);
  std::vector<float> h(n, 7.0f);
  gpu.download(h.data(), a.data(), n);
  EXPECT_EQ(h, std::vector<float>(n, 0.0f)) << "alloc is zeroed";
  const auto x = uniform(n, 9);
  gpu.upload(a.data(), x.data(), n);
  gpu.copy(b.data() + 1, a.data(), n - 1);
  gpu.download(h.data(), b.data(), n);
  EXPECT_EQ(h[0], 0.0f);
  EXPECT_TRUE(std::equal(x.begin(), x.end() - 1, h.begin() + 1)) << "upload, copy, download";
  EXPECT_TRUE(gpu.alloc(0).empty());
  const float* r1 = gpu.resident(x.data(), n);
  EXPECT_EQ(gpu.resident(x.data(), n), r1) << "one copy per host array";
  EXPECT_EQ(gpu.resident_bytes(), n * sizeof(float));
  std::vector<float> back(n);
  gpu.download(back.data(), r1, n);
  EXPECT_EQ(back, x);
  auto kv = gpu.make_kv_storage({5, 0}, 2, 8);
  ASSERT_NE(dynamic_cast<kvlab::gpu::DeviceKvStorage<float>*>(kv.get()), nullptr);
  EXPECT_EQ(kv->bytes_allocated(), 2 * 5 * 16 * static_cast<std::int64_t>(sizeof(float)));
}

// The reductions the engine runs on the backend: the CPU backend's defaults are the truth.
TEST(GpuCudaBackend, ReductionsMatchTheCpuBackend) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  CudaBackend gpu;
  kvlab::ref::CpuBackend<float> cpu;
  const long n = 70001;
  const auto x = uniform(n, 10, -70000, 70000);
  for (Dtype d : {Dtype::f16, Dtype::bf16, Dtype::f32}) {
    SCOPED_TRACE(kvlab::dtype_name(d));
    std::vector<float> want = x;
    cpu.round_to_dtype(want.data(), n, d);
    auto dx = gpu.alloc(n);
    gpu.upload(dx.data(), x.data(), n);
    gpu.round_to_dtype(dx.data(), n, d);
    std::vector<float> got(n);
    gpu.download(got.data(), dx.data(), n);
    EXPECT_EQ(compare(got, want, 0, 0), "");
  }
  auto dx = gpu.alloc(4);
  EXPECT_THROW(gpu.round_to_dtype(dx.data(), 4, Dtype::fp8), kvlab::Error);

  // H2O: host scores (N, H_kv) that already hold values, the same bits.
  const int H = 8, H_kv = 2, T = 5, N = 77;
  const auto probs = uniform(static_cast<std::size_t>(H) * T * N, 11, 0, 1);
  const auto start = uniform(static_cast<std::size_t>(N) * H_kv, 12, 0, 9);
  std::vector<double> sw(start.begin(), start.end()), sg = sw;
  cpu.h2o_scores(sw.data(), probs.data(), H, T, N, H_kv);
  auto dp = gpu.alloc(static_cast<long>(probs.size()));
  gpu.upload(dp.data(), probs.data(), static_cast<long>(probs.size()));
  gpu.h2o_scores(sg.data(), dp.data(), H, T, N, H_kv);
  EXPECT_EQ(compare(sg, sw, 0, 0), "") << "h2o_scores";

  // diff_stats: maxima exact, the sum within 1e-12 relative.
  auto y = x;
  for (long i = 0; i < n; i += 3) y[i] += 0.25f;
  auto da = gpu.alloc(n), db = gpu.alloc(n);
  gpu.upload(da.data(), x.data(), n);
  gpu.upload(db.data(), y.data(), n);
  double w3[3], g3[3];
  cpu.diff_stats(w3, x.data(), y.data(), n);
  gpu.diff_stats(g3, da.data(), db.data(), n);
  EXPECT_EQ(g3[0], w3[0]);
  EXPECT_NEAR(g3[1], w3[1], 1e-12 * w3[1]);
  EXPECT_EQ(g3[2], w3[2]);
}

// One Llama layer and the logits on both backends: a prompt of 9 tokens, then one decode step.
struct LayerWeights {
  int V = 97, C = 128, H = 8, H_kv = 2, D = 16, F = 200;
  std::vector<float> emb, n1, wq, wk, wv, wo, n2, wg, wu, wd, nf;
  LayerWeights() {
    unsigned s = 40;
    emb = uniform(static_cast<std::size_t>(V) * C, s++);
    n1 = uniform(C, s++, 0.5, 1.5);
    wq = uniform(static_cast<std::size_t>(H) * D * C, s++, -0.2, 0.2);
    wk = uniform(static_cast<std::size_t>(H_kv) * D * C, s++, -0.2, 0.2);
    wv = uniform(wk.size(), s++, -0.2, 0.2);
    wo = uniform(static_cast<std::size_t>(C) * H * D, s++, -0.2, 0.2);
    n2 = uniform(C, s++, 0.5, 1.5);
    wg = uniform(static_cast<std::size_t>(F) * C, s++, -0.2, 0.2);
    wu = uniform(wg.size(), s++, -0.2, 0.2);
    wd = uniform(static_cast<std::size_t>(C) * F, s++, -0.2, 0.2);
    nf = uniform(C, s++, 0.5, 1.5);
  }
};

// Runs tokens (T) at positions pos through the layer on backend `b`, the arrays given by `mem`
// (host vectors for the CPU, device buffers for the GPU), K/V appended to kcache/vcache at the
// rows [N0, N0 + T). Returns the logits (T, V) through `logits`.
template <typename Mem>
void run_layer(kvlab::ref::Backend<float>& b, Mem& m, const int* tokens, const int* pos,
               const int* kpos, int T, int N0) {
  const LayerWeights& w = m.w;
  const int C = w.C, HD = w.H * w.D, KD = w.H_kv * w.D;
  b.embed(m.x(), m.emb(), tokens, T, C);
  b.rmsnorm(m.h(), m.x(), m.n1(), T, C, 1e-5);
  b.linear(m.q(), m.h(), m.wq(), T, C, HD);
  const kvlab::ref::LinearOut<float> kv[2] = {{m.kc() + static_cast<long>(N0) * KD, m.wk(), KD},
                                              {m.vc() + static_cast<long>(N0) * KD, m.wv(), KD}};
  b.linears(kv, 2, m.h(), T, C);
  b.rope(m.q(), pos, T, w.H, w.D, 10000.0, kvlab::ref::RopePairing::half);
  b.rope(m.kc() + static_cast<long>(N0) * KD, pos, T, w.H_kv, w.D, 10000.0,
         kvlab::ref::RopePairing::half);
  kvlab::ref::AttentionArgs<float> a;
  a.out = m.att(), a.q = m.q(), a.qpos = pos, a.T = T, a.k = m.kc(), a.v = m.vc(), a.kpos = kpos;
  a.N = N0 + T, a.H = w.H, a.H_kv = w.H_kv, a.D = w.D;
  b.attention(a);
  b.linear(m.h(), m.att(), m.wo(), T, HD, C);
  b.add(m.x(), m.h(), static_cast<long>(T) * C);
  b.rmsnorm(m.h(), m.x(), m.n2(), T, C, 1e-5);
  const kvlab::ref::LinearOut<float> gu[2] = {{m.g(), m.wg(), w.F}, {m.u(), m.wu(), w.F}};
  b.linears(gu, 2, m.h(), T, C);
  b.swiglu(m.g(), m.u(), static_cast<long>(T) * w.F);
  b.linear(m.h(), m.g(), m.wd(), T, w.F, C);
  b.add(m.x(), m.h(), static_cast<long>(T) * C);
  b.rmsnorm(m.h(), m.x(), m.nf(), T, C, 1e-5);
  b.linear(m.logits(), m.h(), m.emb(), T, C, w.V);  // tied embeddings
}

template <template <typename> class Arr>
struct Memory {
  const LayerWeights& w;
  Arr<float> emb_, n1_, wq_, wk_, wv_, wo_, n2_, wg_, wu_, wd_, nf_;
  Arr<float> x_, h_, q_, kc_, vc_, att_, g_, u_, logits_;
  Memory(const LayerWeights& lw, int T, int N)
      : w(lw),
        emb_(make(lw.emb)),
        n1_(make(lw.n1)),
        wq_(make(lw.wq)),
        wk_(make(lw.wk)),
        wv_(make(lw.wv)),
        wo_(make(lw.wo)),
        n2_(make(lw.n2)),
        wg_(make(lw.wg)),
        wu_(make(lw.wu)),
        wd_(make(lw.wd)),
        nf_(make(lw.nf)),
        x_(zeros(T * lw.C)),
        h_(zeros(T * lw.C)),
        q_(zeros(T * lw.H * lw.D)),
        kc_(zeros(N * lw.H_kv * lw.D)),
        vc_(zeros(N * lw.H_kv * lw.D)),
        att_(zeros(T * lw.H * lw.D)),
        g_(zeros(T * lw.F)),
        u_(zeros(T * lw.F)),
        logits_(zeros(T * lw.V)) {}
  static Arr<float> make(const std::vector<float>& v);
  static Arr<float> zeros(int n);
  float* x() { return x_.data(); }
  float* h() { return h_.data(); }
  float* q() { return q_.data(); }
  float* kc() { return kc_.data(); }
  float* vc() { return vc_.data(); }
  float* att() { return att_.data(); }
  float* g() { return g_.data(); }
  float* u() { return u_.data(); }
  float* logits() { return logits_.data(); }
  const float* emb() { return emb_.data(); }
  const float* n1() { return n1_.data(); }
  const float* wq() { return wq_.data(); }
  const float* wk() { return wk_.data(); }
  const float* wv() { return wv_.data(); }
  const float* wo() { return wo_.data(); }
  const float* n2() { return n2_.data(); }
  const float* wg() { return wg_.data(); }
  const float* wu() { return wu_.data(); }
  const float* wd() { return wd_.data(); }
  const float* nf() { return nf_.data(); }
};
template <typename T>
using HostVec = std::vector<T>;
template <>
HostVec<float> Memory<HostVec>::make(const std::vector<float>& v) {
  return v;
}
template <>
HostVec<float> Memory<HostVec>::zeros(int n) {
  return HostVec<float>(n, 0.0f);
}
template <>
DeviceBuffer<float> Memory<DeviceBuffer>::make(const std::vector<float>& v) {
  return to_device(v);
}
template <>
DeviceBuffer<float> Memory<DeviceBuffer>::zeros(int n) {
  DeviceBuffer<float> d(n);
  CUDA_CHECK(cudaMemset(d.data(), 0, static_cast<std::size_t>(n) * 4));
  return d;
}

TEST(GpuCudaBackend, ALayerChainGivesTheCpusLogitsAndToken) {
  KVLAB_REQUIRE_CUDA_DEVICE();
  const LayerWeights w;
  const int T = 9, N = 10;
  const std::vector<int> prompt = {5, 17, 17, 3, 96, 0, 44, 8, 61}, next = {23};
  std::vector<int> pos(N);
  std::iota(pos.begin(), pos.end(), 0);
  kvlab::ref::CpuBackend<float> cpu;
  CudaBackend gpu;
  Memory<HostVec> hm(w, T, N);
  Memory<DeviceBuffer> dm(w, T, N);
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE(step == 0 ? "prompt (prefill)" : "one decode step");
    const int rows = step == 0 ? T : 1, N0 = step == 0 ? 0 : T;
    const int* toks = step == 0 ? prompt.data() : next.data();
    run_layer(cpu, hm, toks, pos.data() + N0, pos.data(), rows, N0);
    run_layer(gpu, dm, toks, pos.data() + N0, pos.data(), rows, N0);
    gpu.synchronize();
    std::vector<float> want(hm.logits_.begin(), hm.logits_.begin() + rows * w.V);
    std::vector<float> got(static_cast<std::size_t>(rows) * w.V);
    dm.logits_.download(got.data(), got.size());
    EXPECT_EQ(compare(got, want, 1e-4, 1e-4), "") << "logits";
    DeviceBuffer<int> scratch(1);
    const int last = rows - 1;
    const std::vector<float> last_row(want.begin() + static_cast<long>(last) * w.V,
                                      want.begin() + static_cast<long>(last + 1) * w.V);
    kvlab::ref::Sampler greedy(0.0, 1.0, 1);
    std::vector<float> sorted = last_row;
    std::sort(sorted.rbegin(), sorted.rend());
    // The same token when the top two logits are further apart than the logits' tolerance.
    if (sorted[0] - sorted[1] > 1e-3f) {
      EXPECT_EQ(kvlab::gpu::argmax_row(dm.logits() + static_cast<long>(last) * w.V, w.V,
                                       scratch.data(), gpu.stream()),
                greedy.next(last_row));
    }
  }
}

}  // namespace
