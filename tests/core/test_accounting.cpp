// Byte accounting (techniques.md §7): the spec's checks hold exactly.
#include <gtest/gtest.h>

#include "core/accounting.hpp"
#include "core/config.hpp"
#include "core/error.hpp"

using namespace kvlab;

TEST(Accounting, ClaPaper1BMqaShape) {
  const auto& c = find_model_preset("cla-1b").config;
  ASSERT_EQ(c.num_hidden_layers, 20);
  ASSERT_EQ(c.num_key_value_heads, 1);
  ASSERT_EQ(c.head_dim, 128);
  auto bpt = [&](const char* spec) {
    return kv_bytes_per_token(KvPlan::parse(spec, 20), c.num_key_value_heads, c.head_dim,
                              Dtype::f16);
  };
  EXPECT_EQ(bpt("standard"), 10240);
  EXPECT_EQ(bpt("cla:2"), 5120);
  EXPECT_EQ(bpt("cla:3"), 3584);
  EXPECT_EQ(bpt("cla:4"), 2560);
}

TEST(Accounting, TinyLlama) {
  const auto& c = find_model_preset("tinyllama-1.1b").config;
  auto bpt = [&](const char* spec, Dtype d) {
    return kv_bytes_per_token(KvPlan::parse(spec, 22), c.num_key_value_heads, c.head_dim, d);
  };
  EXPECT_EQ(bpt("standard", Dtype::f16), 22528);
  EXPECT_EQ(bpt("lckv:2", Dtype::bf16), 3072);
  EXPECT_EQ(bpt("standard", Dtype::f32), 45056);
  EXPECT_EQ(bpt("standard", Dtype::fp8), 11264);
  EXPECT_EQ(bpt("standard", Dtype::int8), 11264);
}

TEST(Accounting, SequenceBytesCapSlidingBanks) {
  ModelConfig c = find_model_preset("stories15m").config;  // 6 layers, H_kv 6, D 48
  c.sliding_window = 100;
  const KvPlan yoco = KvPlan::parse("yoco", 6);  // 0s 1s 2s 3 3 3
  const auto banks = kv_sequence_banks(yoco, c, 1000, Dtype::f32);
  ASSERT_EQ(banks.size(), 4u);
  EXPECT_EQ(banks[0].tokens, 100);
  EXPECT_EQ(banks[3].tokens, 1000);
  EXPECT_EQ(kv_sequence_bytes(yoco, c, 1000, Dtype::f32), (3 * 100 + 1000) * 6 * 48 * 2 * 4);
  // Reads per decode step: every reader reads its bank (3 readers of bank 3).
  EXPECT_EQ(kv_bytes_read_per_step(yoco, c, 1000, Dtype::f32), (3 * 100 + 3 * 1000) * 6 * 48 * 8);
  const KvPlan cla = KvPlan::parse("cla:2", 6);
  EXPECT_EQ(kv_bytes_read_per_step(cla, c, 10, Dtype::f16),
            kv_bytes_read_per_step(KvPlan::parse("standard", 6), c, 10, Dtype::f16));
}

TEST(Accounting, Dtypes) {
  EXPECT_EQ(parse_dtype("bf16"), Dtype::bf16);
  EXPECT_THROW(parse_dtype("f64"), Error);
  EXPECT_EQ(dtype_bytes(Dtype::fp8), 1);
}
