// Negatives for the losses that sample them (bpr, warp, softmax): uniform over the live item
// rows, or popularity-weighted, drawn from a pool of recent positives' items. The pool is a
// fixed array that never moves, so readers need no lock: fit refills it with a sample of its
// events, update overwrites the oldest slot with each positive's item, and a snapshot saves
// it. Slot races between Hogwild writers only change which recent positive a slot holds.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "rtrec/embedding_table.hpp"
#include "rtrec/random.hpp"

namespace rtrec {

class NegativeSampler {
 public:
  static constexpr uint32_t kPoolSize = 1u << 16;
  static constexpr uint32_t kNone = EmbeddingTable::kNotFound;  // a draw that is not usable

  NegativeSampler(uint32_t negatives, bool popularity) : negatives_(negatives), popularity_(popularity) {}

  // `negatives` draws for one positive into `out`: kNone where the draw hit the positive
  // twice or a row that is not live. After evictions, uniform draws pick among the live rows
  // (a table may be mostly free rows after a big eviction); before, row numbers are the live
  // rows and draw directly, which keeps seeded runs identical to what they always were.
  void draw(const EmbeddingTable& items, uint32_t positive, uint32_t n_items, SplitMix64& rng,
            uint32_t* out) const noexcept {
    const uint64_t pooled = std::min<uint64_t>(written_.load(std::memory_order_relaxed), kPoolSize);
    const bool from_pool = popularity_ && pooled > 0;
    const bool check_live = items.has_erased();
    const uint32_t n_live = check_live ? items.live_count() : n_items;
    auto one = [&]() -> uint32_t {
      if (from_pool) return pool_[rng.below(static_cast<uint32_t>(pooled))].load(std::memory_order_relaxed);
      if (n_live < 2) return kNone;
      return check_live ? items.live_row(rng.below(n_live)) : rng.below(n_items);
    };
    for (uint32_t s = 0; s < negatives_; ++s) {
      uint32_t negative = one();
      if (negative == positive) negative = one();  // one redraw; a repeat is skipped
      const bool usable = negative != positive && negative < n_items && (!check_live || items.is_live(negative));
      out[s] = usable ? negative : kNone;
    }
  }

  // A positive's item joins the pool (popularity sampling only; the caller checks).
  void add(uint32_t item) noexcept {
    const uint64_t at = written_.load(std::memory_order_relaxed);
    pool_[at % kPoolSize].store(item, std::memory_order_relaxed);
    written_.store(at + 1, std::memory_order_release);  // concurrent writers may share a slot: harmless
  }
  // Refills the pool with a sample of `events` (anything with an `item` row).
  template <class Event>
  void refill(const std::vector<Event>& events, SplitMix64& rng) noexcept {
    if (events.empty()) return;
    const uint64_t n = std::min<uint64_t>(kPoolSize, events.size());
    for (uint64_t s = 0; s < n; ++s)
      pool_[s].store(events[rng.below(uint32_t(events.size()))].item, std::memory_order_relaxed);
    if (written_.load(std::memory_order_relaxed) < n) written_.store(n, std::memory_order_release);
  }

  // For persistence: how many items were ever written, slot i, and the pool as a file held it.
  uint64_t written() const noexcept { return written_.load(std::memory_order_relaxed); }
  uint32_t item(uint64_t i) const noexcept { return pool_[i].load(std::memory_order_relaxed); }
  void restore(const std::vector<uint32_t>& items, uint64_t written) noexcept {
    for (size_t i = 0; i < items.size() && i < kPoolSize; ++i) pool_[i].store(items[i], std::memory_order_relaxed);
    written_.store(written, std::memory_order_relaxed);
  }

 private:
  const uint32_t negatives_;
  const bool popularity_;
  std::unique_ptr<std::atomic<uint32_t>[]> pool_{new std::atomic<uint32_t>[kPoolSize]};
  std::atomic<uint64_t> written_{0};
};

}  // namespace rtrec
