// Small types shared by the reference's operations and the Backend interface (no Eigen here, so
// that the CUDA backend can include them).
#pragma once

namespace kvlab::ref {

// Which keys a query may see (techniques.md §2). `strict`: j < i (upward layers, or
// force_nodiag); otherwise j ≤ i. `window` > 0: additionally j > i - window (sliding layers).
struct AttentionSet {
  bool strict = false;
  int window = 0;

  bool allows(int query_pos, int key_pos) const {
    const bool causal = strict ? key_pos < query_pos : key_pos <= query_pos;
    return causal && (window <= 0 || key_pos > query_pos - window);
  }
};

// Which dimensions RoPE rotates together. kvlab computes with `half` (Hugging Face: i with
// i + D/2); checkpoints in `interleaved` pairing (Meta, llama2.c, GGUF: 2i with 2i+1) are
// converted on load by permuting the rows of W_Q and W_K (rope_rows_interleaved_to_half).
enum class RopePairing { half, interleaved };

}  // namespace kvlab::ref
