// Small, fast, seedable random number generator for negative sampling, shuffling and
// initialisation. std::mt19937 is 5 KB of state and slow to seed per thread; this is 8 bytes.
#pragma once

#include <cstdint>

#include "rtrec/hash.hpp"

namespace rtrec {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) noexcept : state_(seed) {}

  uint64_t next() noexcept {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }

  // Uniform integer in [0, n), n > 0. Lemire's multiply-shift: no modulo, negligible bias for
  // the table sizes we sample from (< 2^32).
  uint32_t below(uint32_t n) noexcept {
    return static_cast<uint32_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  // Uniform float in [0, 1).
  float uniform() noexcept { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

 private:
  uint64_t state_;
};

// Derive independent streams from one user seed: (seed, purpose, a, b) -> stream seed.
inline uint64_t derive_seed(uint64_t seed, uint64_t purpose, uint64_t a = 0, uint64_t b = 0) noexcept {
  return mix64(mix64(mix64(seed ^ mix64(purpose)) ^ a) ^ b);
}

}  // namespace rtrec
