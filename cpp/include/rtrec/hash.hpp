// Stable 64-bit hashing: string IDs become table keys, and keys are spread over hash slots.
// "Stable" matters: keys end up in snapshots, so the hash must never depend on the process,
// the platform or a random seed.
#pragma once

#include <cstdint>
#include <string_view>

namespace rtrec {

// splitmix64 finaliser: a bijection on 64-bit values with good avalanche. Used to place
// (possibly sequential) integer IDs in an open-addressing table without clustering.
inline uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// FNV-1a over the bytes, then the splitmix finaliser to fix FNV's weak high bits.
// Collisions between distinct strings are detected by the embedding table (it keeps the
// strings), so this only has to be good, not perfect.
inline uint64_t hash_string_id(std::string_view s) noexcept {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return mix64(h ^ s.size());
}

// The partition of a user when a model's users are split over `partitions` trainers: the
// splitmix64 finaliser (mix64) of the user's table key (an integer ID as its 64-bit two's
// complement, a string ID as hash_string_id of its UTF-8 bytes), modulo the partition count.
// Any producer in any language can compute the same (docs/streaming.md).
inline uint32_t partition_of(uint64_t key, uint32_t partitions) noexcept {
  return static_cast<uint32_t>(mix64(key) % partitions);
}

}  // namespace rtrec
