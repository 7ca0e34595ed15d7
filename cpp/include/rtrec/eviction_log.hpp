// The keys a model evicted since its last delta, for replicas to drop. Logging starts once the
// model has a lineage (a first snapshot); before that no delta can follow. A model that evicts
// a lot and publishes no delta would grow the log without end: past the size of the live key
// set the log is dropped and marked overflowed, and the next delta lists the live keys instead
// (replicas drop every key not in it), so the log never outgrows the index.
//
// The lock is the model's too: evictions erase rows and log their keys under it, and a delta
// takes the log and chooses its rows under it, so an eviction falls wholly before or after a
// cut. Every member but logging() is called with the lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace rtrec {

class EvictionLog {
 public:
  std::mutex& mutex() const noexcept { return mutex_; }
  bool logging() const noexcept { return logging_.load(std::memory_order_relaxed); }
  void start() noexcept { logging_.store(true); }
  // Stops logging and forgets everything (a lineage that was not started after all).
  void stop() noexcept {
    logging_.store(false);
    users_.clear();
    items_.clear();
    overflowed_ = false;
  }
  // Appends evicted keys, or drops the log once it would hold more than `live_keys` keys
  // (at least 65536).
  void record(const std::vector<uint64_t>& users, const std::vector<uint64_t>& items, uint64_t live_keys) {
    if (overflowed_) return;
    const uint64_t limit = live_keys > 65536 ? live_keys : 65536;
    if (users_.size() + items_.size() + users.size() + items.size() > limit) {
      overflowed_ = true;
      std::vector<uint64_t>().swap(users_);
      std::vector<uint64_t>().swap(items_);
      return;
    }
    users_.insert(users_.end(), users.begin(), users.end());
    items_.insert(items_.end(), items.begin(), items.end());
  }
  // Moves the log into a delta's lists; returns whether it overflowed (the delta must then
  // list the live keys), which it no longer is.
  bool take(std::vector<uint64_t>& users, std::vector<uint64_t>& items) noexcept {
    users.swap(users_);
    items.swap(items_);
    const bool overflowed = overflowed_;
    overflowed_ = false;
    return overflowed;
  }
  // A delta that was not written gives its keys back, ahead of any logged since (order
  // matters only for a key evicted twice, and evicting it twice is the same as once), or its
  // overflow if it was to list the live keys.
  void give_back(const std::vector<uint64_t>& users, const std::vector<uint64_t>& items, bool overflowed) {
    if (overflowed) {
      overflowed_ = true;
      return;
    }
    users_.insert(users_.begin(), users.begin(), users.end());
    items_.insert(items_.begin(), items.begin(), items.end());
  }

 private:
  mutable std::mutex mutex_;
  std::atomic<bool> logging_{false};
  std::vector<uint64_t> users_, items_;
  bool overflowed_ = false;
};

}  // namespace rtrec
