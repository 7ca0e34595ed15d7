// Display names of items (a movie's title, a product's name): item key -> name, kept with the
// model so that snapshots, deltas and replicas show the same names as the trainer.
//
// Names are not on any hot path (a reply names at most k items), so one mutex guards the
// map; the count and bytes are also kept in atomics so that stats() reads them without it.
// Every name carries the model generation at which it was set: a delta holds the names set
// at or after its cut's `since`, exactly like the rows it holds. A name may belong to an item
// the model has no row for yet (a catalogue lists items before anyone has rated them); the
// names of evicted items are dropped with their rows.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rtrec {

class ItemNames {
 public:
  static constexpr size_t kMaxNameBytes = 4096;  // longer names are refused, not cut

  struct Entry {
    uint64_t key;
    std::string name;
  };

  // Sets (or replaces) the names of `keys`, marked with the model's generation read under the
  // lock (so a delta's cut, which advances it before it collects, never misses a name). An
  // empty name removes the key's name. The caller has validated the batch (check_names).
  void set(const uint64_t* keys, const std::string* names, size_t n, const std::atomic<uint32_t>& generation);
  // Throws std::invalid_argument (naming the offending entry) if a name is too long or holds
  // a NUL byte; nothing is set then.
  static void check_names(const std::string* names, size_t n);
  // For each key: {true, name} if it has one, else {false, ""}.
  std::vector<std::pair<bool, std::string>> get(const uint64_t* keys, size_t n) const;
  // Names set at or after `since` (all of them for since == 0), in key order.
  std::vector<Entry> since(uint32_t generation) const;
  // Drops the names of these keys (evicted items); unknown keys are skipped.
  void erase(const std::vector<uint64_t>& keys);

  uint64_t size() const noexcept { return count_.load(std::memory_order_relaxed); }
  // Heap bytes held: the map's nodes and buckets and the names' own buffers.
  uint64_t memory_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Value {
    std::string name;
    uint32_t generation;
  };
  static uint64_t entry_bytes(const std::string& name) noexcept;
  void publish_counts() noexcept;  // mutex_ held

  mutable std::mutex mutex_;
  std::unordered_map<uint64_t, Value> map_;  // under mutex_
  uint64_t name_bytes_ = 0;                  // under mutex_
  std::atomic<uint64_t> count_{0}, bytes_{0};
};

}  // namespace rtrec
