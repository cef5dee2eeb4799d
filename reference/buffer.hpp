// Buffers of the reference: contiguous arrays whose start is aligned to 64 bytes. Matrix kernels
// (Eigen, OpenBLAS) pick their vector code paths from the alignment of their operands, so fixed
// alignment is what makes two runs of the same input give bit-identical results.
//
// Arrays of 2 MiB or more (the weights, long K/V banks) start on a 2 MiB boundary and ask the
// kernel for transparent huge pages over their whole 2 MiB pages before anything touches them
// (madvise(MADV_HUGEPAGE): on machines whose THP setting is `madvise`, the usual default, memory
// gets huge pages only when asked). Decode reads every weight once per token; with 4 KiB pages
// that is a TLB miss every 4 KiB, which costs one core's read bandwidth. Nothing is rounded up:
// the tail past the last whole 2 MiB page stays in small pages, so no memory is wasted.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace kvlab::ref {

template <typename T>
struct BufferAllocator {
  using value_type = T;
  static constexpr std::size_t kSmallAlign = 64;
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  BufferAllocator() = default;
  template <typename U>
  BufferAllocator(const BufferAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    const bool huge = bytes >= kHugePage;
    void* p = nullptr;
    if (posix_memalign(&p, huge ? kHugePage : kSmallAlign, bytes == 0 ? 1 : bytes) != 0) {
      throw std::bad_alloc();
    }
#ifdef MADV_HUGEPAGE
    // Advice only: where the kernel has no THP it fails, and the pages stay small.
    if (huge) (void)madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept {
    std::free(p);
  }

  template <typename U>
  bool operator==(const BufferAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename S>
using Buffer = std::vector<S, BufferAllocator<S>>;

}  // namespace kvlab::ref
