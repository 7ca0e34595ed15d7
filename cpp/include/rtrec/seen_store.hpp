// Which items each user has interacted with (positives), for `exclude_seen` in top-K.
//
// Readers (recommend) walk a user's list without locks while writers (update/fit) append:
// a list is append-only, its size published with a release store after the new entry is
// written; when it is full a copy twice as large is published and the old one retired (kept
// until destruction, so a reader still holding it reads valid, older data; retired lists sum
// to less than the live ones). Writers of one user are serialised by that user's shard mutex,
// which also guards a writer-only hash set that stops the same pair being stored twice.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "rtrec/chunk_directory.hpp"

namespace rtrec {

class SeenStore {
 public:
  SeenStore() = default;
  ~SeenStore();
  SeenStore(const SeenStore&) = delete;
  SeenStore& operator=(const SeenStore&) = delete;

  // Thread-safe. Returns true when the pair is new.
  bool add(uint32_t user_row, uint32_t item_row);

  // Lock-free. Appends the user's items (no duplicates, arrival order) to `out`.
  void collect(uint32_t user_row, std::vector<uint32_t>& out) const;

  uint64_t pairs() const noexcept { return pairs_.load(std::memory_order_relaxed); }
  uint64_t memory_bytes() const;

 private:
  struct List {
    uint32_t capacity;
    std::atomic<uint32_t> size;
    uint32_t items[1];  // really `capacity` entries (allocated past the struct)
  };
  static constexpr uint32_t kListsPerChunk = 1024;
  struct ListChunk {
    ListChunk() {
      for (auto& l : lists) l.store(nullptr, std::memory_order_relaxed);
    }
    std::atomic<List*> lists[kListsPerChunk];
  };

  // Open-addressing set of (user, item) pairs, writer-only (never read concurrently).
  class PairSet {
   public:
    bool insert(uint64_t pair);  // pair != 0
    uint64_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(uint64_t); }

   private:
    std::vector<uint64_t> slots_;
    uint64_t size_ = 0;
  };

  static constexpr uint32_t kShards = 64;
  struct Shard {
    std::mutex mutex;
    PairSet pairs;
    std::vector<List*> retired;
  };

  static List* allocate_list(uint32_t capacity);
  std::atomic<List*>& slot_for_writer(uint32_t user_row);

  Shard shards_[kShards];
  std::mutex directory_mutex_;
  ChunkDirectory<ListChunk> directory_;
  std::atomic<uint64_t> pairs_{0};
  std::atomic<uint64_t> list_bytes_{0};
  std::atomic<uint64_t> pair_set_bytes_{0};  // kept here so stats() never reads a shard's set
};

}  // namespace rtrec
