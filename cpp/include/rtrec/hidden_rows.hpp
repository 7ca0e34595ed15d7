// Items hidden from retrieval (out of stock, withdrawn, blocked): one flag per item row.
// A hidden item is still trained and still scored by predict; only retrieval calls skip it.
//
// Scans read a flag lock-free only for the few rows that would enter their result (after the
// score test), so hiding costs the unfiltered scan nothing measurable. Writers (hide, unhide,
// eviction, loading) hold the owner's lock. Flags belong to rows: the owner clears a row's
// flag when its ID is evicted, so a recycled row starts visible.
#pragma once

#include <atomic>
#include <cstdint>

#include "rtrec/chunk_directory.hpp"

namespace rtrec {

class HiddenRows {
 public:
  static constexpr uint32_t kChunkRows = 1024;  // as EmbeddingTable

  HiddenRows() = default;
  HiddenRows(const HiddenRows&) = delete;
  HiddenRows& operator=(const HiddenRows&) = delete;

  // True while any row is hidden: until then scans skip every lookup.
  bool any() const noexcept { return count_.load(std::memory_order_acquire) > 0; }
  uint64_t count() const noexcept { return count_.load(std::memory_order_acquire); }

  bool get(uint32_t row) const noexcept {
    const uint32_t c = row / kChunkRows;
    if (c >= directory_.allocated()) return false;
    return directory_.get(c)->flags[row % kChunkRows].load(std::memory_order_acquire) != 0;
  }

  // Writer side (the owner's lock held). Returns true when the flag changed.
  bool set(uint32_t row, bool hidden) {
    const uint32_t c = row / kChunkRows;
    if (!hidden && c >= directory_.allocated()) return false;
    std::atomic<uint8_t>& flag = directory_.ensure(c)->flags[row % kChunkRows];
    const uint8_t now = hidden ? 1 : 0;
    if (flag.load(std::memory_order_relaxed) == now) return false;
    flag.store(now, std::memory_order_release);
    if (hidden) count_.fetch_add(1, std::memory_order_acq_rel);
    else count_.fetch_sub(1, std::memory_order_acq_rel);
    return true;
  }

  uint64_t memory_bytes() const noexcept { return uint64_t(directory_.allocated()) * sizeof(Chunk); }

 private:
  struct Chunk {
    Chunk() {
      for (auto& f : flags) f.store(0, std::memory_order_relaxed);
    }
    std::atomic<uint8_t> flags[kChunkRows];
  };
  ChunkDirectory<Chunk> directory_;
  std::atomic<uint64_t> count_{0};
};

}  // namespace rtrec
