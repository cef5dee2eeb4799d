#include "core/accounting.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace kvlab {

int dtype_bytes(Dtype d) {
  switch (d) {
    case Dtype::f64:
      return 8;
    case Dtype::f32:
      return 4;
    case Dtype::f16:
    case Dtype::bf16:
      return 2;
    case Dtype::fp8:
    case Dtype::int8:
      return 1;
  }
  return 0;
}

std::string dtype_name(Dtype d) {
  switch (d) {
    case Dtype::f64:
      return "f64";
    case Dtype::f32:
      return "f32";
    case Dtype::f16:
      return "f16";
    case Dtype::bf16:
      return "bf16";
    case Dtype::fp8:
      return "fp8";
    case Dtype::int8:
      return "int8";
  }
  return "?";
}

Dtype engine_dtype(int bytes) {
  return bytes == 8 ? Dtype::f64 : Dtype::f32;
}

Dtype parse_dtype(const std::string& s) {
  for (Dtype d : {Dtype::f32, Dtype::f16, Dtype::bf16, Dtype::fp8, Dtype::int8}) {
    if (s == dtype_name(d)) return d;
  }
  fail("--dtype", s, "must be one of f32, f16, bf16, fp8, int8");
}

std::int64_t kv_bank_bytes(std::int64_t tokens, int kv_heads, int head_dim, Dtype dtype) {
  return tokens * kv_heads * head_dim * 2 * dtype_bytes(dtype);
}

std::int64_t kv_bytes_per_token(const KvPlan& plan, int kv_heads, int head_dim, Dtype dtype) {
  return plan.num_kv_layers() * kv_bank_bytes(1, kv_heads, head_dim, dtype);
}

std::int64_t bank_tokens_held(const KvPlan& plan, int kv_layer, std::int64_t tokens, int window) {
  return plan.bank_is_sliding(kv_layer) ? std::min<std::int64_t>(tokens, window) : tokens;
}

std::vector<BankBytes> kv_sequence_banks(const KvPlan& plan, const ModelConfig& cfg,
                                         std::int64_t tokens, Dtype dtype) {
  std::vector<BankBytes> out;
  for (int t : plan.kv_layers()) {
    BankBytes b;
    b.kv_layer = t;
    b.tokens = bank_tokens_held(plan, t, tokens, cfg.sliding_window);
    b.bytes = kv_bank_bytes(b.tokens, cfg.num_key_value_heads, cfg.head_dim, dtype);
    out.push_back(b);
  }
  return out;
}

std::int64_t kv_sequence_bytes(const KvPlan& plan, const ModelConfig& cfg, std::int64_t tokens,
                               Dtype dtype) {
  std::int64_t total = 0;
  for (const auto& b : kv_sequence_banks(plan, cfg, tokens, dtype)) total += b.bytes;
  return total;
}

std::int64_t kv_bytes_read_per_step(const KvPlan& plan, const ModelConfig& cfg, std::int64_t tokens,
                                    Dtype dtype) {
  std::int64_t total = 0;
  for (int l = 0; l < plan.layers(); ++l) {
    const int t = plan.kv_of(l);
    // A sliding reader reads only its window even when the bank holds more.
    std::int64_t seen = bank_tokens_held(plan, t, tokens, cfg.sliding_window);
    if (plan.sliding(l)) seen = std::min<std::int64_t>(seen, cfg.sliding_window);
    total += kv_bank_bytes(seen, cfg.num_key_value_heads, cfg.head_dim, dtype);
  }
  return total;
}

}  // namespace kvlab
