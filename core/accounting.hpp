// Memory accounting of the KV cache (techniques.md §7). Every figure kvlab reports for K/V comes
// from these functions, and the engines allocate exactly this many bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/plan.hpp"

namespace kvlab {

enum class Dtype { f64, f32, f16, bf16, fp8, int8 };  // f64: the reference's float64 engine

int dtype_bytes(Dtype d);
std::string dtype_name(Dtype d);
Dtype parse_dtype(const std::string& s);  // "f32" | "f16" | "bf16" | "fp8" | "int8"; throws
// The dtype of an element of `bytes` bytes held by the reference engine (8: f64, 4: f32).
Dtype engine_dtype(int bytes);

// 2 · Σ_{KV layers t} H_kv · D · bytes(dtype): K and V of one token in every bank.
std::int64_t kv_bytes_per_token(const KvPlan& plan, int kv_heads, int head_dim, Dtype dtype);

// K and V of `tokens` tokens in one bank: tokens · H_kv · D · 2 · bytes(dtype).
std::int64_t kv_bank_bytes(std::int64_t tokens, int kv_heads, int head_dim, Dtype dtype);

// Tokens bank `kv_layer` holds after a sequence of `tokens` tokens with no eviction policy: all
// of them, or the window when every reader of the bank is a sliding layer.
std::int64_t bank_tokens_held(const KvPlan& plan, int kv_layer, std::int64_t tokens, int window);

struct BankBytes {
  int kv_layer = 0;
  std::int64_t tokens = 0;
  std::int64_t bytes = 0;
};

// Per-bank and total K/V bytes of one sequence of `tokens` tokens (sliding banks capped).
std::vector<BankBytes> kv_sequence_banks(const KvPlan& plan, const ModelConfig& cfg,
                                         std::int64_t tokens, Dtype dtype);
std::int64_t kv_sequence_bytes(const KvPlan& plan, const ModelConfig& cfg, std::int64_t tokens,
                               Dtype dtype);

// K/V bytes read by one decode step at context `tokens`: every reader layer reads its bank, so
// shared banks are read once per reader (§7: sharing shrinks the cache, not the reads).
std::int64_t kv_bytes_read_per_step(const KvPlan& plan, const ModelConfig& cfg, std::int64_t tokens,
                                    Dtype dtype);

}  // namespace kvlab
