// reference/buffer.hpp: every Buffer starts on a 64-byte boundary (the fast paths' bits depend on
// it), one of 2 MiB or more on a 2 MiB boundary (so the huge-page advice covers its whole pages),
// with exactly the elements asked for, zeroed, through resizes and copies.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

#include "reference/buffer.hpp"

namespace {

using kvlab::ref::Buffer;
using kvlab::ref::BufferAllocator;

std::uintptr_t address(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

TEST(Buffer, SmallArraysStartOn64Bytes) {
  for (std::size_t n : {1, 3, 15, 16, 17, 1000, 524287}) {
    Buffer<float> f(n);
    Buffer<double> d(n);
    EXPECT_EQ(address(f.data()) % 64, 0u) << n;
    EXPECT_EQ(address(d.data()) % 64, 0u) << n;
    EXPECT_EQ(f.size(), n);
    EXPECT_EQ(std::accumulate(f.begin(), f.end(), 0.0), 0.0);
  }
}

TEST(Buffer, LargeArraysStartOnA2MiBPage) {
  constexpr std::size_t page = BufferAllocator<float>::kHugePage;
  for (std::size_t bytes : {page, page + 4, 3 * page + 64, 8 * page}) {
    Buffer<float> f(bytes / sizeof(float));
    EXPECT_EQ(address(f.data()) % page, 0u) << bytes;
    EXPECT_EQ(f.size() * sizeof(float), bytes);
    f.back() = 1.5f;  // the tail past the last whole page is usable
    EXPECT_EQ(std::accumulate(f.begin(), f.end(), 0.0), 1.5);
  }
  // Just below the threshold: the ordinary alignment.
  Buffer<double> d(page / sizeof(double) - 1);
  EXPECT_EQ(address(d.data()) % 64, 0u);
}

TEST(Buffer, ResizeAndCopyKeepValuesAndAlignment) {
  constexpr std::size_t page = BufferAllocator<float>::kHugePage;
  Buffer<float> f(100);
  std::iota(f.begin(), f.end(), 0.0f);
  f.resize(page);  // grows past the threshold: moves to a 2 MiB boundary
  EXPECT_EQ(address(f.data()) % page, 0u);
  EXPECT_EQ(f[99], 99.0f);
  EXPECT_EQ(f[100], 0.0f);
  const Buffer<float> g = f;
  EXPECT_EQ(address(g.data()) % page, 0u);
  EXPECT_EQ(g, f);
  f.resize(10);
  f.shrink_to_fit();
  EXPECT_EQ(address(f.data()) % 64, 0u);
  EXPECT_EQ(f[9], 9.0f);
}

TEST(Buffer, ImpossibleSizesThrow) {
  BufferAllocator<double> a;
  EXPECT_THROW((void)a.allocate(static_cast<std::size_t>(-1) / 4), std::bad_array_new_length);
}

}  // namespace
