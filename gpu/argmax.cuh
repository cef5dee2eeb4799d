// Greedy sampling on the GPU: the index of each row's largest logit, checked against
// ref::Sampler::next at temperature 0 (std::max_element: ties to the lowest id) by
// tests/gpu/test_argmax.cpp. Host-only declarations; the kernel lives in argmax.cu.
//
//   out[r] = argmax_v logits[r, v] of logits (rows, V); ties go to the lowest v.
//
// One thread block per row: each thread keeps its best (value, index) over a stride of the row,
// then warp shuffles and shared memory reduce the pairs. A NaN never wins (a row of NaN gives 0);
// the reference's std::max_element is not specified for NaN, so NaN logits are not compared.
#pragma once

#include <cuda_runtime_api.h>

namespace kvlab::gpu {

// Device pointers: out (rows ints), logits (rows*V). Enqueued on `stream`. rows = 0 does nothing;
// rows < 0 or V < 1 throw kvlab::Error before any CUDA call.
void argmax(int* out, const float* logits, int rows, int V, cudaStream_t stream = nullptr);

// Host convenience for one row of device logits: runs argmax into a device int, copies it back
// and waits. `scratch` is a device int (at least one).
int argmax_row(const float* logits, int V, int* scratch, cudaStream_t stream = nullptr);

}  // namespace kvlab::gpu
