// Count-min sketch of how often each ID has been seen, for admission (min_count): an ID gets
// a row only once it has been seen min_count times, and counting it costs no row.
//
// `depth` rows of 2^width_log2 saturating 16-bit counters. An estimate never undercounts;
// it overcounts by at most e/2^width_log2 x (sightings so far) with probability at least
// 1 - e^-depth (Cormode & Muthukrishnan). Conservative update (only the counters that hold
// the current minimum are raised) makes the overcount much smaller in practice. So a rare ID
// may be admitted a little early, never late. Counters are relaxed atomics: concurrent
// sightings of one ID may be counted once (a value race, never a structural one).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "rtrec/hash.hpp"

namespace rtrec {

class CountMinSketch {
 public:
  static constexpr uint32_t kDepth = 4;
  static constexpr uint32_t kWidthLog2 = 20;  // 4 x 2^20 x 2 bytes = 8 MiB

  CountMinSketch() : cells_(new std::atomic<uint16_t>[size_t(kDepth) << kWidthLog2]) {
    for (size_t i = 0; i < (size_t(kDepth) << kWidthLog2); ++i) cells_[i].store(0, std::memory_order_relaxed);
  }

  // Records one sighting; returns the estimated count including it.
  uint32_t add(uint64_t key) noexcept {
    size_t at[kDepth];
    uint32_t low = UINT32_MAX;
    for (uint32_t d = 0; d < kDepth; ++d) {
      at[d] = cell(key, d);
      low = std::min<uint32_t>(low, cells_[at[d]].load(std::memory_order_relaxed));
    }
    if (low == UINT16_MAX) return low;
    for (uint32_t d = 0; d < kDepth; ++d)  // conservative update
      if (cells_[at[d]].load(std::memory_order_relaxed) == low)
        cells_[at[d]].store(static_cast<uint16_t>(low + 1), std::memory_order_relaxed);
    return low + 1;
  }

  uint32_t estimate(uint64_t key) const noexcept {
    uint32_t low = UINT32_MAX;
    for (uint32_t d = 0; d < kDepth; ++d) low = std::min<uint32_t>(low, cells_[cell(key, d)].load(std::memory_order_relaxed));
    return low;
  }

  // Raw counters, for snapshots.
  static constexpr size_t cells() noexcept { return size_t(kDepth) << kWidthLog2; }
  uint16_t get(size_t i) const noexcept { return cells_[i].load(std::memory_order_relaxed); }
  void set(size_t i, uint16_t v) noexcept { cells_[i].store(v, std::memory_order_relaxed); }
  static constexpr uint64_t memory_bytes() noexcept { return cells() * sizeof(uint16_t); }

 private:
  static size_t cell(uint64_t key, uint32_t d) noexcept {
    const uint64_t h = mix64(key ^ (0x9e3779b97f4a7c15ULL * (d + 1)));
    return (size_t(d) << kWidthLog2) | (h >> (64 - kWidthLog2));
  }

  std::unique_ptr<std::atomic<uint16_t>[]> cells_;
};

}  // namespace rtrec
