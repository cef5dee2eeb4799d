// The CUDA backend: ref::Backend<float> over gpu/'s kernels. Contract: gpu/cuda_backend.hpp.
#include "gpu/cuda_backend.hpp"

#include <climits>
#include <string>

#include "core/error.hpp"
#include "gpu/abs_delta.cuh"
#include "gpu/add.cuh"
#include "gpu/attention.cuh"
#include "gpu/cuda_check.hpp"
#include "gpu/device_info.hpp"
#include "gpu/embed.cuh"
#include "gpu/h2o_sums.cuh"
#include "gpu/kv_round.cuh"
#include "gpu/kv_storage.hpp"
#include "gpu/linear.hpp"
#include "gpu/rmsnorm.cuh"
#include "gpu/rope.cuh"
#include "gpu/row_cosines.cuh"
#include "gpu/swiglu.cuh"
#include "reference/kv_dtype.hpp"

namespace kvlab::gpu {
namespace {

bool is_device_memory(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();  // an unregistered host pointer on old runtimes
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

// Grows `buf` to at least n elements (contents not kept). The old buffer may still be read by
// work enqueued on `stream`: wait for it before freeing.
template <typename T>
void reserve(DeviceBuffer<T>& buf, std::size_t n, cudaStream_t stream) {
  if (buf.size() >= n) return;
  if (buf.size() > 0) CUDA_CHECK(cudaStreamSynchronize(stream));
  buf = DeviceBuffer<T>(n);
}

}  // namespace

CudaBackend::CudaBackend() {
  std::string why;
  if (!cuda_available(&why)) throw Error("--backend cuda: no CUDA device: " + why);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  const cublasStatus_t s = cublasCreate(&cublas_);
  if (s != CUBLAS_STATUS_SUCCESS) {
    (void)cudaStreamDestroy(stream_);
    cublas_check(s, "cublasCreate");
  }
  cublas_check(cublasSetStream(cublas_, stream_), "cublasSetStream");
  cublas_check(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

CudaBackend::~CudaBackend() {
  if (stream_) (void)cudaStreamSynchronize(stream_);
  if (cublas_) (void)cublasDestroy(cublas_);
  if (stream_) (void)cudaStreamDestroy(stream_);
}

void CudaBackend::synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- memory
// --------------------------------------------------------------------------------------

float* CudaBackend::allocate(long n) {
  if (n <= 0) fail("CudaBackend allocate n", std::to_string(n), "an element count >= 1");
  float* p = nullptr;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), bytes));
  const cudaError_t err = cudaMemsetAsync(p, 0, bytes, stream_);
  if (err != cudaSuccess) {
    (void)cudaFree(p);
    CUDA_CHECK(err);
  }
  return p;
}

void CudaBackend::deallocate(float* p, long n) noexcept {
  (void)n;
  if (!p) return;
  (void)cudaStreamSynchronize(stream_);  // no kernel may still use it
  (void)cudaFree(p);
}

void CudaBackend::upload(float* dst, const float* host, long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, host, static_cast<std::size_t>(n) * sizeof(float),
                             cudaMemcpyDefault, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(float* host, const float* src, long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host, src, static_cast<std::size_t>(n) * sizeof(float),
                             cudaMemcpyDefault, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(float* dst, const float* src, long n) {
  if (n <= 0) return;
  // Ordered on the stream, where every reader and writer of backend memory runs.
  CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(float),
                             cudaMemcpyDefault, stream_));
}

const float* CudaBackend::resident(const float* host, long n) {
  const auto it = resident_.find(host);
  if (it != resident_.end()) {
    if (static_cast<long>(it->second.size()) < n)
      fail("CudaBackend resident n", std::to_string(n),
           "at most the " + std::to_string(it->second.size()) +
               " elements this host array was first made resident with");
    return it->second.data();
  }
  if (n <= 0) return nullptr;
  DeviceBuffer<float> d(static_cast<std::size_t>(n));
  upload(d.data(), host, n);
  return resident_.emplace(host, std::move(d)).first->second.data();
}

std::size_t CudaBackend::resident_bytes() const {
  std::size_t s = 0;
  for (const auto& entry : resident_) s += entry.second.size() * sizeof(float);
  return s;
}

std::unique_ptr<ref::KvStorage<float>> CudaBackend::make_kv_storage(const std::vector<int>& rows,
                                                                    int H_kv, int D) {
  return std::make_unique<DeviceKvStorage<float>>(rows, H_kv, D, stream_);
}

// ---- reductions
// ----------------------------------------------------------------------------------

void CudaBackend::round_to_dtype(float* x, long n, Dtype d) {
  switch (d) {
    case Dtype::f16:
      return round_to_half(x, n, HalfFormat::f16, stream_);
    case Dtype::bf16:
      return round_to_half(x, n, HalfFormat::bf16, stream_);
    case Dtype::f32:
    case Dtype::f64:
      if (n < 0) fail("round_to_dtype n", std::to_string(n), "an element count >= 0");
      return;  // a float is already an f32 (and an f64) value
    default:
      (void)ref::round_to_dtype(0.0, d);  // throws kvlab::Error naming --dtype, as the reference
      fail("--dtype", dtype_name(d), "not a K/V storage dtype of the CUDA backend");
  }
}

void CudaBackend::h2o_scores(double* score, const float* probs, int H, int T, int N, int H_kv) {
  if (N <= 0 || T <= 0) {  // nothing to add: only the argument checks (N = 0 launches nothing)
    h2o_column_sums(score, probs, H, T, N < 0 ? N : 0, H_kv, true, H2oLayout::cell_major, stream_);
    return;
  }
  if (is_device_memory(score)) {
    h2o_column_sums(score, probs, H, T, N, H_kv, true, H2oLayout::cell_major, stream_);
    return;
  }
  const std::size_t n = static_cast<std::size_t>(N) * H_kv;
  reserve(reduce_, n, stream_);
  CUDA_CHECK(
      cudaMemcpyAsync(reduce_.data(), score, n * sizeof(double), cudaMemcpyDefault, stream_));
  h2o_column_sums(reduce_.data(), probs, H, T, N, H_kv, true, H2oLayout::cell_major, stream_);
  CUDA_CHECK(
      cudaMemcpyAsync(score, reduce_.data(), n * sizeof(double), cudaMemcpyDefault, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::diff_stats(double* out, const float* a, const float* b, long n) {
  if (n < 0) fail("diff_stats n", std::to_string(n), "an element count >= 0");
  reserve(reduce_work_, kAbsDeltaWorkspace, stream_);
  const bool device_out = is_device_memory(out);
  if (!device_out) reserve(reduce_, 3, stream_);
  double* d = device_out ? out : reduce_.data();
  abs_delta(d, a, b, n, reduce_work_.data(), stream_);
  if (!device_out) {
    CUDA_CHECK(cudaMemcpyAsync(out, d, 3 * sizeof(double), cudaMemcpyDefault, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
}

const int* CudaBackend::device_ints(const int* p, std::size_t n, DeviceBuffer<int>& slot) {
  if (n == 0 || is_device_memory(p)) return p;
  reserve(slot, n, stream_);
  CUDA_CHECK(cudaMemcpyAsync(slot.data(), p, n * sizeof(int), cudaMemcpyDefault, stream_));
  return slot.data();
}

void CudaBackend::embed(float* x, const float* table, const int* tokens, int T, int C) {
  if (T > 0 && !is_device_memory(tokens)) {
    for (int t = 0; t < T; ++t)
      if (tokens[t] < 0)
        fail("token id at row " + std::to_string(t), std::to_string(tokens[t]), "an id >= 0");
  }
  const int* d = T > 0 ? device_ints(tokens, static_cast<std::size_t>(T), ints_a_) : tokens;
  gpu::embed(x, table, d, T, C, INT_MAX, stream_);
}

void CudaBackend::rmsnorm(float* out, const float* x, const float* w, int T, int C, double eps) {
  gpu::rmsnorm(out, x, w, T, C, eps, 0, stream_);
}

void CudaBackend::linear(float* out, const float* x, const float* w, int T, int K, int N) {
  gpu::linear(cublas_, out, x, w, T, K, N);
}

void CudaBackend::rope(float* x, const int* pos, int T, int heads, int D, double theta,
                       ref::RopePairing pairing) {
  const int* d = T > 0 ? device_ints(pos, static_cast<std::size_t>(T), ints_a_) : pos;
  gpu::rope(x, d, T, heads, D, theta, pairing, stream_);
}

void CudaBackend::attention(const ref::AttentionArgs<float>& a) {
  ++this->counters_.attention_calls;
  if (a.probs) ++this->counters_.attention_probs;
  AttentionArgs d;
  d.out = a.out, d.q = a.q, d.qpos = a.qpos, d.T = a.T, d.k = a.k, d.v = a.v, d.kpos = a.kpos;
  d.N = a.N, d.kpos_head_stride = a.kpos_head_stride, d.H = a.H, d.H_kv = a.H_kv, d.D = a.D;
  d.set = a.set, d.probs = a.probs, d.scores = a.scores;
  const std::size_t need = attention_workspace_bytes(d);  // checks the arguments first
  if (a.T == 0) return;
  d.qpos = device_ints(a.qpos, static_cast<std::size_t>(a.T), ints_a_);
  if (a.N > 0) {
    const std::size_t nk = static_cast<std::size_t>(a.kpos_head_stride ? a.H_kv : 1) * a.N;
    d.kpos = device_ints(a.kpos, nk, ints_b_);
  }
  reserve(workspace_, need, stream_);
  gpu::attention(d, workspace_.data(), workspace_.size(), stream_);
}

void CudaBackend::swiglu(float* gate, const float* up, long n) {
  gpu::swiglu(gate, up, n, stream_);
}

void CudaBackend::add(float* x, const float* y, long n) {
  gpu::add(x, y, n, stream_);
}

void CudaBackend::row_cosines(double* out, const float* a, const float* b, int T, int C) {
  this->counters_.cosine_rows += T > 0 ? T : 0;
  if (T <= 0) {
    gpu::row_cosines(out, a, b, T, C, stream_);  // checks the arguments; T = 0 does nothing
    return;
  }
  if (is_device_memory(out)) {
    gpu::row_cosines(out, a, b, T, C, stream_);
    return;
  }
  reserve(cosines_, static_cast<std::size_t>(T), stream_);
  gpu::row_cosines(cosines_.data(), a, b, T, C, stream_);
  CUDA_CHECK(cudaMemcpyAsync(out, cosines_.data(), sizeof(double) * T, cudaMemcpyDefault, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace kvlab::gpu
