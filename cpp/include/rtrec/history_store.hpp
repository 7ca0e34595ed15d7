// Each user's most recent positive items (two_tower): a ring of `capacity` item rows per user
// row, which the user encoder pools. Rings live in chunks of 1024 users that never move,
// allocated when a user of the chunk first gets an item.
//
// Concurrency: readers (encoding a user for recommend/predict/training) load a ring without
// locks; writers push without locks too. A ring is fixed-size storage of atomic slots, so
// racing on one user's ring (two threads updating the same user at once) can only lose or
// repeat an entry — a value race like Hogwild's, never a torn or structural one. Chunk
// allocation is the only structural change and happens under `mutex_` (published with a
// release store, see ChunkDirectory).
//
// Eviction: an item row evicted from the items table is replaced by kEmpty in every ring
// before the row is reused (remove_items, called by the model's recycling, when no reader
// that could still find the item is running); a recycled user's ring is cleared.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "rtrec/chunk_directory.hpp"

namespace rtrec {

class HistoryStore {
 public:
  static constexpr uint32_t kChunkRows = 1024;  // as EmbeddingTable
  static constexpr uint32_t kEmpty = 0xffffffffu;

  explicit HistoryStore(uint32_t capacity) : capacity_(capacity) {}
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;

  uint32_t capacity() const noexcept { return capacity_; }

  // Appends an item to the user's ring, dropping the oldest once full. May allocate the
  // user's chunk (std::bad_alloc); otherwise lock-free.
  void push(uint32_t user, uint32_t item) {
    Chunk* c = writable(user);
    std::atomic<uint32_t>* ring = c->ring(user % kChunkRows, capacity_);
    const uint32_t head = ring[0].load(std::memory_order_relaxed);
    ring[1 + head % capacity_].store(item, std::memory_order_relaxed);
    ring[0].store(head + 1, std::memory_order_release);
  }

  // Lock-free: up to capacity item rows of the user, most recent first, into `out`
  // (capacity entries); returns how many. Holes left by evicted items are skipped.
  uint32_t recent(uint32_t user, uint32_t* out) const noexcept {
    const Chunk* c = chunk_of(user);
    if (c == nullptr) return 0;
    const std::atomic<uint32_t>* ring = c->ring(user % kChunkRows, capacity_);
    const uint32_t head = ring[0].load(std::memory_order_acquire);
    const uint32_t n = head < capacity_ ? head : capacity_;
    uint32_t found = 0;
    for (uint32_t k = 0; k < n; ++k) {
      const uint32_t item = ring[1 + (head - 1 - k) % capacity_].load(std::memory_order_relaxed);
      if (item != kEmpty) out[found++] = item;
    }
    return found;
  }

  // Replaces the user's ring with `items` (oldest first; only the last capacity count).
  void assign(uint32_t user, const uint32_t* items, uint32_t n) {
    Chunk* c = writable(user);
    std::atomic<uint32_t>* ring = c->ring(user % kChunkRows, capacity_);
    const uint32_t first = n > capacity_ ? n - capacity_ : 0;
    for (uint32_t k = first; k < n; ++k) ring[1 + (k - first)].store(items[k], std::memory_order_relaxed);
    ring[0].store(n - first, std::memory_order_release);
  }

  // Forgets a user's items: only for a row being recycled, which no reader can reach.
  void clear(uint32_t user) noexcept {
    Chunk* c = chunk_of(user);
    if (c != nullptr) c->ring(user % kChunkRows, capacity_)[0].store(0, std::memory_order_release);
  }

  // Replaces every entry whose item row is flagged in `dead` (indexed by item row) with a
  // hole. A concurrent push is never overwritten (compare-exchange).
  void remove_items(const std::vector<uint8_t>& dead) noexcept {
    const uint32_t chunks = directory_.allocated();
    for (uint32_t ci = 0; ci < chunks; ++ci) {
      Chunk* c = directory_.get(ci);
      for (uint32_t r = 0; r < kChunkRows; ++r) {
        std::atomic<uint32_t>* ring = c->ring(r, capacity_);
        const uint32_t head = ring[0].load(std::memory_order_acquire);
        const uint32_t n = head < capacity_ ? head : capacity_;
        for (uint32_t k = 0; k < n; ++k) {
          uint32_t item = ring[1 + k].load(std::memory_order_relaxed);
          if (item < dead.size() && dead[item]) ring[1 + k].compare_exchange_strong(item, kEmpty, std::memory_order_relaxed);
        }
      }
    }
  }

  uint64_t memory_bytes() const noexcept {
    return uint64_t(directory_.allocated()) * kChunkRows * (capacity_ + 1) * sizeof(uint32_t);
  }

 private:
  struct Chunk {
    explicit Chunk(uint32_t capacity) : slots(new std::atomic<uint32_t>[size_t(kChunkRows) * (capacity + 1)]) {
      for (size_t i = 0; i < size_t(kChunkRows) * (capacity + 1); ++i) slots[i].store(0, std::memory_order_relaxed);
    }
    std::atomic<uint32_t>* ring(uint32_t row, uint32_t capacity) const noexcept {
      return slots.get() + size_t(row) * (capacity + 1);  // [0]: pushes so far, [1..]: the ring
    }
    std::unique_ptr<std::atomic<uint32_t>[]> slots;
  };

  const Chunk* chunk_of(uint32_t user) const noexcept {
    const uint32_t c = user / kChunkRows;
    return c < directory_.allocated() ? directory_.get(c) : nullptr;
  }
  Chunk* chunk_of(uint32_t user) noexcept {
    const uint32_t c = user / kChunkRows;
    return c < directory_.allocated() ? directory_.get(c) : nullptr;
  }
  Chunk* writable(uint32_t user) {
    const uint32_t c = user / kChunkRows;
    if (c < directory_.allocated()) return directory_.get(c);
    std::lock_guard<std::mutex> lock(mutex_);
    return directory_.ensure(c, capacity_);
  }

  const uint32_t capacity_;
  std::mutex mutex_;
  ChunkDirectory<Chunk> directory_;
};

}  // namespace rtrec
