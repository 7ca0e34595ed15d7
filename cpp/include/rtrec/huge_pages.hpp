// Memory for the arrays that training visits in random order (embedding vectors, fit's
// event array), on 2 MiB transparent huge pages where the OS offers them.
//
// A random row access on 4 KiB pages misses the TLB almost every time once a table
// outgrows a few MiB, and a page walk is several more dependent memory accesses (more
// under a hypervisor's nested paging). Measured on the 2-core KVM machine of
// benchmarks/README.md: an MF BPR epoch over 200k users x 50k items took ~1.4-1.8x the CPU
// time on 4 KiB pages. Linux only (madvise(MADV_HUGEPAGE)); elsewhere these are plain
// aligned allocations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace rtrec {

constexpr size_t kHugePage = size_t(2) << 20;

// `bytes` rounded up to whole huge pages, 2 MiB aligned, zeroed; throws std::bad_alloc.
void* allocate_huge(size_t bytes);
// Frees what allocate_huge(bytes) returned.
void free_huge(void* p, size_t bytes) noexcept;

// A std::allocator for large vectors (fit's events): huge pages from kHugePage bytes up.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) return static_cast<T*>(::operator new(bytes));
    return static_cast<T*>(allocate_huge(bytes));
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) ::operator delete(p);
    else free_huge(p, bytes);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const noexcept { return false; }
};

// Bump allocator for a table's per-chunk vector arrays (chunks are made one after another
// and never freed before the table): the first kHugePage bytes in ordinary 64-byte-aligned
// blocks, so a small table stays small; beyond that, huge-page slabs holding several
// chunks' arrays each. Not thread-safe: the table calls it under its insert lock.
class SlabStorage {
 public:
  SlabStorage() = default;
  ~SlabStorage();
  SlabStorage(const SlabStorage&) = delete;
  SlabStorage& operator=(const SlabStorage&) = delete;

  // `bytes` (a multiple of 64) of 64-byte-aligned, uninitialised memory, valid until the
  // storage is destroyed.
  void* take(size_t bytes);
  uint64_t reserved_bytes() const noexcept { return reserved_; }

 private:
  struct Block {
    void* base;
    size_t bytes;
    bool huge;
  };
  std::vector<Block> blocks_;
  char* slab_next_ = nullptr;  // free space left in the current huge slab
  size_t slab_left_ = 0;
  uint64_t taken_ = 0, reserved_ = 0;
};

}  // namespace rtrec
