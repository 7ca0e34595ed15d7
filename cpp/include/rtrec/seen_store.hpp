// Which items each user has interacted with (positives), for `exclude_seen` in top-K.
//
// One small open-addressing hash set per user (item row + 1 per slot, 0 = empty), which is
// both the dedup check for writers and the list readers enumerate: one cache-friendly place
// per user instead of a global pair set plus per-user lists. Readers (recommend) walk a
// user's slots without locks while writers (update/fit) insert: a slot is published with a
// release store; when a set is half full a copy twice as large is published and the old one
// retired (freed once no reader can hold it, see EpochDomain: readers must be pinned).
// Writers of one user are serialised by that user's shard mutex.
//
// Eviction: a pair is removed by overwriting its slot with a tombstone (readers skip it,
// writers probe past it, growth drops it); a whole user's set is dropped at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "rtrec/chunk_directory.hpp"
#include "rtrec/epoch.hpp"

namespace rtrec {

class SeenStore {
 public:
  SeenStore() = default;
  ~SeenStore();
  SeenStore(const SeenStore&) = delete;
  SeenStore& operator=(const SeenStore&) = delete;

  // Thread-safe. Returns true when the pair is new.
  bool add(uint32_t user_row, uint32_t item_row);

  // Lock-free (the caller is pinned, as readers are): whether the pair is recorded. A
  // warm fit checks its pairs this way first and takes the shard lock only for new ones.
  bool contains(uint32_t user_row, uint32_t item_row) const noexcept;

  // Lock-free: the slots of the user's set (0: none), a bound of the same order as the
  // number of items seen (the set holds at most half its slots).
  uint32_t capacity_of(uint32_t user_row) const noexcept;

  // Lock-free. Appends the user's items (no duplicates, unordered) to `out`.
  void collect(uint32_t user_row, std::vector<uint32_t>& out) const;

  // Hints that `add(user_row, ...)` comes soon (bulk loading walks users in random order):
  // first the pointer to the user's set, a few events later the set itself.
  void prefetch_slot(uint32_t user_row) const noexcept;
  void prefetch(uint32_t user_row) const noexcept;

  // Drops the user's set and frees it: only for a row being recycled, which no reader can
  // reach or still hold.
  void clear_user(uint32_t user_row);
  // Removes every pair whose item row is flagged in `dead` (indexed by item row).
  void remove_items(const std::vector<uint8_t>& dead);

  uint64_t pairs() const noexcept { return pairs_.load(std::memory_order_relaxed); }
  uint64_t memory_bytes() const noexcept;

 private:
  struct Set {
    uint32_t mask;  // capacity - 1, capacity a power of two
    uint32_t size;  // writer-only: used slots, tombstones included
    std::atomic<uint32_t> slots[1];  // really `capacity` entries: item row + 1, 0 = empty
  };
  static constexpr uint32_t kSetsPerChunk = 1024;
  struct SetChunk {
    SetChunk() {
      for (auto& s : sets) s.store(nullptr, std::memory_order_relaxed);
    }
    std::atomic<Set*> sets[kSetsPerChunk];
  };
  static constexpr uint32_t kShards = 64;
  struct Shard {
    std::mutex mutex;
    RetireList retired;  // grown or dropped sets
  };
  static constexpr uint32_t kTombstone = 0xffffffffu;  // item rows stay below it

  static Set* allocate(uint32_t capacity);
  static bool place(Set* set, uint32_t item_row) noexcept;  // false if already there
  std::atomic<Set*>& slot_for_writer(uint32_t user_row);
  void retire(Shard& shard, Set* set) noexcept;  // shard locked, retired.reserve_one() done

  Shard shards_[kShards];
  std::mutex directory_mutex_;
  ChunkDirectory<SetChunk> directory_;
  std::atomic<uint64_t> pairs_{0};
  std::atomic<uint64_t> set_bytes_{0};
};

}  // namespace rtrec
