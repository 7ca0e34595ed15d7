#include "rtrec/huge_pages.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace rtrec {
namespace {

size_t whole_pages(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

}  // namespace

void* allocate_huge(size_t bytes) {
  const size_t size = whole_pages(bytes == 0 ? 1 : bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Map one page more than needed and trim to a 2 MiB boundary: mmap only promises 4 KiB
  // alignment, and a huge page needs an aligned 2 MiB range.
  void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + size + kHugePage;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, size, MADV_HUGEPAGE);  // a hint: without THP the pages are ordinary ones
  return p;  // anonymous mappings start zeroed
#else
  void* p = std::aligned_alloc(kHugePage, size);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  return p;
#endif
}

void free_huge(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  munmap(p, whole_pages(bytes == 0 ? 1 : bytes));
#else
  (void)bytes;
  std::free(p);
#endif
}

SlabStorage::~SlabStorage() {
  for (const Block& b : blocks_) {
    if (b.huge) free_huge(b.base, b.bytes);
    else std::free(b.base);
  }
}

void* SlabStorage::take(size_t bytes) {
  blocks_.reserve(blocks_.size() + 1);  // may throw: before anything is allocated
  if (taken_ + bytes <= kHugePage) {  // still a small table: ordinary blocks
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    blocks_.push_back(Block{p, bytes, false});
    taken_ += bytes;
    reserved_ += bytes;
    return p;
  }
  if (bytes > slab_left_) {
    // A new slab: room for as many arrays of this size as fit in one huge page (chunks of
    // one table all ask for the same size), or one array if it is larger.
    const size_t slab = whole_pages(bytes);
    void* base = allocate_huge(slab);
    blocks_.push_back(Block{base, slab, true});
    slab_next_ = static_cast<char*>(base);
    slab_left_ = slab;
    reserved_ += slab;
  }
  void* p = slab_next_;
  slab_next_ += bytes;
  slab_left_ -= bytes;
  taken_ += bytes;
  return p;
}

}  // namespace rtrec
