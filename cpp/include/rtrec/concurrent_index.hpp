// Open-addressing hash map uint64 key -> uint32 row, collisionless (full keys are stored and
// compared), with lookups that only load: no lock, no reader counter, nothing written to
// shared memory on the read path.
//
// Publication protocol:
//  * a slot is empty while its `row_plus_one` is 0; a writer stores the key first, then
//    `row_plus_one` with release, so a reader that acquires a non-zero value sees the key;
//  * the table grows by building a larger array off to the side and publishing it with a
//    release store; a reader that still walks the old array sees a consistent (older) view.
//  * old arrays are retired but kept until the index is destroyed: no reader can then hold
//    them, and there is no per-read epoch bookkeeping. Because arrays double, everything
//    retired together is smaller than the live array (at most 2x the index memory).
// Writers must be serialised by the owner (EmbeddingTable holds a mutex around insert).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "rtrec/hash.hpp"

namespace rtrec {

class ConcurrentIndex {
 public:
  static constexpr uint32_t kNotFound = 0xffffffffu;

  explicit ConcurrentIndex(uint64_t initial_capacity = 64) {
    uint64_t capacity = 16;
    while (capacity < initial_capacity) capacity <<= 1;
    publish(std::make_unique<Array>(capacity));
  }

  uint32_t find(uint64_t key) const noexcept {
    const Array* array = current_.load(std::memory_order_acquire);
    uint64_t i = mix64(key) & array->mask;
    for (;;) {
      const Slot& slot = array->slots[i];
      const uint32_t row_plus_one = slot.row_plus_one.load(std::memory_order_acquire);
      if (row_plus_one == 0) return kNotFound;
      if (slot.key.load(std::memory_order_relaxed) == key) return row_plus_one - 1;
      i = (i + 1) & array->mask;
    }
  }

  // Hint that find(key) comes soon: bulk lookups walk keys in random order.
  void prefetch(uint64_t key) const noexcept {
    const Array* array = current_.load(std::memory_order_acquire);
    __builtin_prefetch(&array->slots[mix64(key) & array->mask], 0, 3);
  }

  // Writer only, key known to be absent.
  void insert(uint64_t key, uint32_t row) {
    Array* array = current_.load(std::memory_order_relaxed);
    const uint64_t size = size_.load(std::memory_order_relaxed);
    if ((size + 1) * 10 > (array->mask + 1) * 7) {  // keep the load factor <= 0.7
      auto bigger = std::make_unique<Array>((array->mask + 1) * 2);
      for (uint64_t s = 0; s <= array->mask; ++s) {
        const uint32_t v = array->slots[s].row_plus_one.load(std::memory_order_relaxed);
        if (v != 0) place(*bigger, array->slots[s].key.load(std::memory_order_relaxed), v);
      }
      array = bigger.get();
      publish(std::move(bigger));
    }
    place(*array, key, row + 1);
    size_.store(size + 1, std::memory_order_relaxed);
  }

  uint64_t size() const noexcept { return size_.load(std::memory_order_relaxed); }

  // Bytes held, retired arrays included (reported in stats()). Kept in an atomic so that
  // any thread may ask while a writer grows `arrays_`.
  uint64_t memory_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<uint32_t> row_plus_one{0};
  };
  struct Array {
    explicit Array(uint64_t capacity) : mask(capacity - 1), slots(new Slot[capacity]) {}
    uint64_t mask;
    std::unique_ptr<Slot[]> slots;
  };

  static void place(Array& array, uint64_t key, uint32_t row_plus_one) noexcept {
    uint64_t i = mix64(key) & array.mask;
    while (array.slots[i].row_plus_one.load(std::memory_order_relaxed) != 0) i = (i + 1) & array.mask;
    array.slots[i].key.store(key, std::memory_order_relaxed);
    array.slots[i].row_plus_one.store(row_plus_one, std::memory_order_release);
  }

  void publish(std::unique_ptr<Array> array) {
    Array* raw = array.get();
    const uint64_t bytes = (raw->mask + 1) * sizeof(Slot);
    arrays_.push_back(std::move(array));  // owned first: a throwing push_back must not leave current_ dangling
    current_.store(raw, std::memory_order_release);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }

  std::atomic<Array*> current_{nullptr};
  std::vector<std::unique_ptr<Array>> arrays_;  // writer-only: live one last, retired before it
  std::atomic<uint64_t> size_{0};               // written by the writer only
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace rtrec
