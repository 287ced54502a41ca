// Internal: std::vector on 64-byte (cache-line) aligned storage, for the CPU encoder's
// activations, packed weights and kernel scratch.
//
// Why: an AMX tile load reads 16 rows of 64 bytes; from a row that starts off a cache line each
// row touches two lines. glibc's malloc aligns to 16 bytes, and large blocks (mmap) start 16 bytes
// into a page, so every row was split: a 2 x 2-tile GEMM ran at ~650 GFLOP/s from such buffers
// and ~1,300 from aligned ones (same code, same data), and the bf16 encoder's 32 x 128 batch went
// from ~75 to ~58 ms when its activations and scratch moved here (docs/benchmarks.md).
//
//   AlignedVector<uint16_t> x16(rows * k);  // x16.data() % 64 == 0
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace tipperary::model::internal {

inline constexpr std::size_t kCacheLine = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{kCacheLine}));
  }
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{kCacheLine});
  }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace tipperary::model::internal
