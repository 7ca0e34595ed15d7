// A growable array of fixed-size chunks that never move. Readers index it without locks:
// a chunk pointer is published with a release store after the chunk is initialised, and a
// reader only asks for indices it learned about through an acquire load (a row count or a
// hash-table slot), so it always sees a fully built chunk. Growth happens under the owner's
// writer lock and never touches existing chunks, so pointers into a chunk stay valid.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace rtrec {

template <class Chunk>
class ChunkDirectory {
 public:
  // 2^18 chunks: with 1024 rows a chunk that is 268M rows per table. The directory itself is
  // calloc'ed, so untouched pages cost no resident memory.
  static constexpr uint32_t kMaxChunks = 1u << 18;

  ChunkDirectory() {
    slots_ = static_cast<std::atomic<Chunk*>*>(std::calloc(kMaxChunks, sizeof(std::atomic<Chunk*>)));
    if (slots_ == nullptr) throw std::bad_alloc();
  }
  ~ChunkDirectory() {
    for (uint32_t c = 0; c < allocated(); ++c) delete slots_[c].load(std::memory_order_relaxed);
    std::free(slots_);
  }
  ChunkDirectory(const ChunkDirectory&) = delete;
  ChunkDirectory& operator=(const ChunkDirectory&) = delete;

  Chunk* get(uint32_t chunk) const noexcept { return slots_[chunk].load(std::memory_order_acquire); }

  // Writer side (caller holds the owner's lock): make sure chunks [0, chunk] exist.
  template <class... Args>
  Chunk* ensure(uint32_t chunk, Args&&... args) {
    if (chunk >= kMaxChunks) throw std::length_error("rtrec: table is full (268M rows per table)");
    uint32_t n = allocated();
    while (n <= chunk) {
      Chunk* fresh = new Chunk(args...);
      slots_[n].store(fresh, std::memory_order_release);
      allocated_.store(++n, std::memory_order_release);
    }
    return slots_[chunk].load(std::memory_order_relaxed);
  }

  // Readable from any thread (memory statistics); chunks below it exist.
  uint32_t allocated() const noexcept { return allocated_.load(std::memory_order_acquire); }

 private:
  std::atomic<Chunk*>* slots_ = nullptr;
  std::atomic<uint32_t> allocated_{0};  // written under the owner's lock only
};

}  // namespace rtrec
