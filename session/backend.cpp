#include "session/backend.hpp"

#include "core/error.hpp"
#include "reference/cpu_backend.hpp"

#ifdef KVLAB_HAVE_CUDA
#include "gpu/cuda_backend.hpp"
#include "gpu/device_info.hpp"
#endif

namespace kvlab {

bool cuda_backend_built() {
#ifdef KVLAB_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

// An unknown name, or "cuda" in a build without CUDA: a named error, before any device is touched.
void check_backend_name(const std::string& name) {
  if (name == "cpu") return;
  if (name != "cuda") fail("--backend", name, "must be cpu or cuda");
  if (!cuda_backend_built()) {
    fail("--backend", name,
         "this kvlab was built without the CUDA backend (no nvcc when it was configured; "
         "docs/gpu-validation.md says how to build it)");
  }
}

}  // namespace

template <typename S>
std::unique_ptr<ref::Backend<S>> make_backend(const std::string& name, int threads) {
  check_backend_name(name);
  if (name == "cpu") return std::make_unique<ref::CpuBackend<S>>(threads);
  if constexpr (!std::is_same_v<S, float>) {
    fail("--backend", name, "computes in float32: use --precision f32 with it");
  } else {
#ifdef KVLAB_HAVE_CUDA
    std::string why;
    if (!gpu::cuda_available(&why)) fail("--backend", name, "no CUDA device: " + why);
    return std::make_unique<gpu::CudaBackend>();
#endif
  }
  return nullptr;  // not reached: check_backend_name refused "cuda" in a build without it
}

template std::unique_ptr<ref::Backend<float>> make_backend(const std::string&, int);
template std::unique_ptr<ref::Backend<double>> make_backend(const std::string&, int);

}  // namespace kvlab
