// Which Backend a session's engine computes with (RunOptions::backend, the CLI's --backend, the
// Python module's backend=): "cpu", the reference (reference/cpu_backend.hpp), or "cuda", the CUDA
// backend (gpu/cuda_backend.hpp; float32 only), built when nvcc was found at configure time.
#pragma once

#include <memory>
#include <string>

#include "reference/backend.hpp"

namespace kvlab {

// The backend names this build knows: "cpu", and "cuda" when it was built with CUDA.
bool cuda_backend_built();

// A new backend `name` with `threads` CPU threads (the CUDA backend runs its own), for an engine
// computing in S. Throws kvlab::Error naming --backend: an unknown name, "cuda" in a build without
// CUDA, with no device (CUDA's reason), or in float64.
template <typename S>
std::unique_ptr<ref::Backend<S>> make_backend(const std::string& name, int threads);

}  // namespace kvlab
