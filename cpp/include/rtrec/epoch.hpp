// Epoch-based reclamation: when may memory (or a row) that was unlinked from a shared
// structure be freed or reused, given that lock-free readers may still hold it?
//
// Every operation that looks rows up pins the calling thread for its duration (EpochGuard):
// it publishes the global epoch it started in, in a slot of its own (one store to a cache
// line no other thread writes; nothing shared is written on the read path). A writer that
// unlinks something tags it with advance(): the epoch before the increment. Once no thread
// is pinned at an epoch <= that tag (min_pinned() > tag), every operation that could have
// found the thing has finished, and later ones cannot find it: it may be freed or reused.
//
// Why the pin re-reads the epoch: a reclaimer that scans the slots after advance() must see
// every reader that read the old epoch. The reader stores its slot, then loads the epoch
// again (both sequentially consistent); if the epoch moved, it pins again at the new value.
// Either the scan sees the slot, or the reader's re-load saw the new epoch, in which case it
// started after the unlink and cannot reach the unlinked thing.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace rtrec {

class EpochDomain {
 public:
  static constexpr uint32_t kSlots = 4096;  // threads that use rtrec at the same time

  // One domain per process: a thread pinned for one model is pinned for all, which only
  // delays reclamation elsewhere a little and keeps the per-thread slot simple.
  static EpochDomain& instance() {
    static EpochDomain domain;
    return domain;
  }

  void pin() {
    ThreadState& t = thread_state();
    if (t.depth++ > 0) return;  // nested: already pinned
    std::atomic<uint64_t>& slot = slots_[t.slot].epoch;
    uint64_t e = epoch_.load(std::memory_order_seq_cst);
    for (;;) {
      slot.store(e, std::memory_order_seq_cst);
      const uint64_t now = epoch_.load(std::memory_order_seq_cst);
      if (now == e) return;
      e = now;
    }
  }
  void unpin() noexcept {
    ThreadState& t = thread_state();
    if (--t.depth == 0) slots_[t.slot].epoch.store(kIdle, std::memory_order_release);
  }

  // Call after unlinking: the returned tag may be reclaimed once min_pinned() > tag.
  uint64_t advance() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the unlink before the new epoch
    return epoch_.fetch_add(1, std::memory_order_seq_cst);
  }

  // The oldest epoch any thread is pinned at (the current epoch if none is).
  uint64_t min_pinned() const noexcept {
    uint64_t least = epoch_.load(std::memory_order_seq_cst);
    const uint32_t used = used_.load(std::memory_order_seq_cst);
    for (uint32_t s = 0; s < used; ++s) {
      const uint64_t e = slots_[s].epoch.load(std::memory_order_seq_cst);
      if (e != kIdle && e < least) least = e;
    }
    return least;
  }

 private:
  static constexpr uint64_t kIdle = 0;  // epochs start at 1

  struct alignas(64) Slot {
    std::atomic<uint64_t> epoch{kIdle};
    std::atomic<bool> owned{false};
  };

  // A thread's slot is claimed on first use and handed back when the thread exits.
  struct ThreadState {
    uint32_t slot;
    uint32_t depth = 0;
    explicit ThreadState(EpochDomain& d) : slot(d.claim()) { current_slot = slot; }
    ~ThreadState() { EpochDomain::instance().slots_[slot].owned.store(false, std::memory_order_release); }
  };

  ThreadState& thread_state() {
    thread_local ThreadState state(*this);
    return state;
  }

  uint32_t claim() {
    std::lock_guard<std::mutex> lock(claim_mutex_);
    for (uint32_t s = 0; s < kSlots; ++s) {
      bool expected = false;
      if (slots_[s].owned.compare_exchange_strong(expected, true)) {
        if (s >= used_.load(std::memory_order_relaxed)) used_.store(s + 1, std::memory_order_seq_cst);
        return s;
      }
    }
    throw std::length_error("rtrec: more than 4096 threads use the library at once");
  }

  EpochDomain() { ::pthread_atfork(nullptr, nullptr, &EpochDomain::after_fork_in_child); }

  // A forked child has only the thread that forked: slots of the parent's other threads
  // would stay pinned for ever (nothing would be reclaimed again), and one of them may have
  // held the claim mutex. Free them all but the forking thread's own.
  static void after_fork_in_child() {
    EpochDomain& d = instance();
    new (&d.claim_mutex_) std::mutex();
    const int64_t mine = current_slot;
    for (uint32_t s = 0; s < kSlots; ++s) {
      if (int64_t(s) == mine) continue;
      d.slots_[s].epoch.store(kIdle, std::memory_order_relaxed);
      d.slots_[s].owned.store(false, std::memory_order_relaxed);
    }
  }

  static thread_local int64_t current_slot;  // this thread's slot once claimed, else -1

  std::atomic<uint64_t> epoch_{1};
  std::atomic<uint32_t> used_{0};  // slots [0, used_) have ever been claimed
  std::mutex claim_mutex_;
  Slot slots_[kSlots];
};

inline thread_local int64_t EpochDomain::current_slot = -1;

// Pins the calling thread for a scope (see EpochDomain).
class EpochGuard {
 public:
  EpochGuard() { EpochDomain::instance().pin(); }
  ~EpochGuard() { EpochDomain::instance().unpin(); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;
};

// Things unlinked by one writer (the owner serialises calls), freed once no reader can
// hold them.
class RetireList {
 public:
  RetireList() = default;
  RetireList(const RetireList&) = delete;
  RetireList& operator=(const RetireList&) = delete;
  ~RetireList() {
    for (auto& r : retired_) r.second();  // the owner is being destroyed: no reader is left
  }

  // `free` runs once no reader can hold the thing; reserve first, so that a throwing
  // allocation happens before the caller unlinks anything.
  void reserve_one() {
    if (retired_.size() == retired_.capacity()) retired_.reserve(retired_.size() < 8 ? 16 : 2 * retired_.size());
  }
  void retire(std::function<void()> free) noexcept {
    retired_.emplace_back(EpochDomain::instance().advance(), std::move(free));
  }
  size_t size() const noexcept { return retired_.size(); }

  // Frees what is safe now; returns how many are still waiting.
  size_t collect() {
    if (retired_.empty()) return 0;
    const uint64_t safe_below = EpochDomain::instance().min_pinned();
    size_t kept = 0;
    for (auto& r : retired_) {
      if (r.first < safe_below) {
        r.second();
      } else {
        if (&retired_[kept] != &r) retired_[kept] = std::move(r);
        ++kept;
      }
    }
    retired_.erase(retired_.begin() + kept, retired_.end());
    return kept;
  }

 private:
  std::vector<std::pair<uint64_t, std::function<void()>>> retired_;
};

}  // namespace rtrec
