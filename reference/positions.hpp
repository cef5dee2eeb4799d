// Where keys get their rotary position (techniques.md §5, position modes). In `absolute` mode a
// bank holds post-RoPE keys at their original positions (§2) and queries rotate by their own
// position. In `cache` mode (StreamingLLM's pos-shift) a bank holds pre-RoPE keys; at attention
// time the keys are rotated by their slot 0..N-1 in the bank and the query by the slot its token
// has (or will have) there. Both give identical results while nothing has been evicted.
#pragma once

#include "reference/backend.hpp"

namespace kvlab::ref {

enum class PositionMode;  // reference/policies.hpp

// The keys a decode-step query reads from a bank of N cells, and the rotated query. q (1, H*D)
// is rotated in place; returns the keys to read: `bank_k` itself (absolute) or `scratch` holding
// the slot-rotated keys (cache). q, bank_k and scratch: backend memory; kpos (H_kv, N): the
// cells' positions (KV head 0's first), host memory; pos: the query's position.
template <typename S>
const S* rotate_for_bank(Backend<S>& backend, bool cache_mode, S* q, int pos, const S* bank_k,
                         const int* kpos, int N, int H, int H_kv, int D, double theta,
                         BackendArray<S>& scratch);

}  // namespace kvlab::ref
