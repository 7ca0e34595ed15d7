// Open-addressing hash map uint64 key -> uint32 row, collisionless (full keys are stored and
// compared), with lookups that only load: no lock, no reader counter, nothing written to
// shared memory on the read path.
//
// Publication protocol:
//  * a slot is empty while its `row_plus_one` is 0; a writer stores the key first, then
//    `row_plus_one` with release, so a reader that acquires a non-zero value sees the key;
//  * a slot is written once: erasing stores a tombstone in `row_plus_one` (readers probe
//    past it) and the slot is never reused in this array, so a reader can never pair one
//    key with another key's row;
//  * the table grows (or sheds its tombstones) by building a new array off to the side and
//    publishing it with a release store; a reader that still walks the old array sees a
//    consistent, older view. Old arrays are retired and freed once no reader can hold them
//    (EpochDomain): every caller of find() must be pinned.
// Writers must be serialised by the owner (EmbeddingTable holds a mutex around insert/erase).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "rtrec/epoch.hpp"
#include "rtrec/hash.hpp"
#include "rtrec/huge_pages.hpp"

namespace rtrec {

class ConcurrentIndex {
 public:
  static constexpr uint32_t kNotFound = 0xffffffffu;

  explicit ConcurrentIndex(uint64_t initial_capacity = 64) {
    uint64_t capacity = 16;
    while (capacity < initial_capacity) capacity <<= 1;
    publish(new Array(capacity));
  }
  ~ConcurrentIndex() { delete current_.load(std::memory_order_relaxed); }
  ConcurrentIndex(const ConcurrentIndex&) = delete;
  ConcurrentIndex& operator=(const ConcurrentIndex&) = delete;

  uint32_t find(uint64_t key) const noexcept {
    const Array* array = current_.load(std::memory_order_acquire);
    uint64_t i = mix64(key) & array->mask;
    for (;;) {
      const Slot& slot = array->slots[i];
      const uint32_t row_plus_one = slot.row_plus_one.load(std::memory_order_acquire);
      if (row_plus_one == 0) return kNotFound;
      if (row_plus_one != kTombstone && slot.key.load(std::memory_order_relaxed) == key) return row_plus_one - 1;
      i = (i + 1) & array->mask;
    }
  }

  // Hint that find(key) comes soon: bulk lookups walk keys in random order.
  void prefetch(uint64_t key) const noexcept {
    const Array* array = current_.load(std::memory_order_acquire);
    __builtin_prefetch(&array->slots[mix64(key) & array->mask], 0, 3);
  }

  // Writer only: makes room for one more key (the only step of an insert that can throw).
  void reserve_one() {
    const Array* array = current_.load(std::memory_order_relaxed);
    const uint64_t size = size_.load(std::memory_order_relaxed);
    if ((size + tombstones_ + 1) * 10 > (array->mask + 1) * 7) rebuild(size + 1);  // load <= 0.7
  }

  // Writer only, key known to be absent.
  void insert(uint64_t key, uint32_t row) {
    reserve_one();
    Array* array = current_.load(std::memory_order_relaxed);
    const uint64_t size = size_.load(std::memory_order_relaxed);
    place(*array, key, row + 1);
    size_.store(size + 1, std::memory_order_relaxed);
  }

  // Writer only. Removes the key if present; returns its row or kNotFound.
  uint32_t erase(uint64_t key) noexcept {
    Array* array = current_.load(std::memory_order_relaxed);
    uint64_t i = mix64(key) & array->mask;
    for (;;) {
      Slot& slot = array->slots[i];
      const uint32_t row_plus_one = slot.row_plus_one.load(std::memory_order_relaxed);
      if (row_plus_one == 0) return kNotFound;
      if (row_plus_one != kTombstone && slot.key.load(std::memory_order_relaxed) == key) {
        slot.row_plus_one.store(kTombstone, std::memory_order_release);
        ++tombstones_;
        size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        return row_plus_one - 1;
      }
      i = (i + 1) & array->mask;
    }
  }

  // Writer only: frees retired arrays no reader can hold any more.
  void collect() { retired_.collect(); }

  uint64_t size() const noexcept { return size_.load(std::memory_order_relaxed); }

  // Bytes held, retired arrays not yet freed included (reported in stats()). Kept in an
  // atomic so that any thread may ask while a writer rebuilds.
  uint64_t memory_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<uint32_t> row_plus_one{0};
  };
  // Slots of a large index live on huge pages (see huge_pages.hpp): lookups land on random
  // slots, and a TLB miss per lookup doubled the cost of resolving a batch's IDs.
  struct Array {
    explicit Array(uint64_t capacity) : mask(capacity - 1), bytes(capacity * sizeof(Slot)) {
      huge = bytes >= kHugePage;
      slots = huge ? static_cast<Slot*>(allocate_huge(bytes)) : static_cast<Slot*>(::operator new(bytes));
      for (uint64_t i = 0; i < capacity; ++i) new (&slots[i]) Slot();
    }
    ~Array() {
      if (huge) free_huge(slots, bytes);
      else ::operator delete(slots);
    }
    Array(const Array&) = delete;
    Array& operator=(const Array&) = delete;
    uint64_t mask;
    size_t bytes;
    bool huge;
    Slot* slots;
  };

  static constexpr uint32_t kTombstone = 0xffffffffu;  // rows stay below kNotFound

  static void place(Array& array, uint64_t key, uint32_t row_plus_one) noexcept {
    uint64_t i = mix64(key) & array.mask;
    while (array.slots[i].row_plus_one.load(std::memory_order_relaxed) != 0) i = (i + 1) & array.mask;
    array.slots[i].key.store(key, std::memory_order_relaxed);
    array.slots[i].row_plus_one.store(row_plus_one, std::memory_order_release);
  }

  // A fresh array for `needed` keys at load <= 0.5 (never smaller than now, so a table that
  // churns at a steady size rebuilds in place, every ~0.2 x capacity erasures), holding the
  // live entries; the old one is retired.
  Array* rebuild(uint64_t needed) {
    Array* old = current_.load(std::memory_order_relaxed);
    uint64_t capacity = old->mask + 1;
    while (needed * 10 > capacity * 5) capacity <<= 1;
    std::unique_ptr<Array> fresh(new Array(capacity));
    retired_.reserve_one();
    for (uint64_t s = 0; s <= old->mask; ++s) {
      const uint32_t v = old->slots[s].row_plus_one.load(std::memory_order_relaxed);
      if (v != 0 && v != kTombstone) place(*fresh, old->slots[s].key.load(std::memory_order_relaxed), v);
    }
    const uint64_t old_bytes = bytes_of(old);
    std::function<void()> free_old = [this, old, old_bytes] {  // may allocate: before publishing
      delete old;
      bytes_.fetch_sub(old_bytes, std::memory_order_relaxed);
    };
    Array* raw = fresh.release();
    publish(raw);
    tombstones_ = 0;
    retired_.retire(std::move(free_old));
    retired_.collect();
    return raw;
  }

  static uint64_t bytes_of(const Array* array) noexcept { return (array->mask + 1) * sizeof(Slot); }

  void publish(Array* array) noexcept {
    current_.store(array, std::memory_order_release);
    bytes_.fetch_add(bytes_of(array), std::memory_order_relaxed);
  }

  std::atomic<uint64_t> bytes_{0};     // first: retired arrays' deleters update it
  std::atomic<Array*> current_{nullptr};
  RetireList retired_;                // writer-only: arrays replaced by rebuilds
  uint64_t tombstones_ = 0;           // writer-only: erased slots in the current array
  std::atomic<uint64_t> size_{0};     // written by the writer only
};

}  // namespace rtrec
