// ConcurrentIndex: the lock-free uint64 -> row hash index (insert, find, tombstones,
// rebuilds) and its readers running while a writer inserts and erases.
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/concurrent_index.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/hash.hpp"

using rtrec::ConcurrentIndex;
using rtrec::EpochGuard;

namespace {

// `count` keys whose home slot in a table of `capacity` slots is 0: they form one probe chain.
std::vector<uint64_t> colliding_keys(uint64_t capacity, size_t count) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; keys.size() < count; ++k)
    if ((rtrec::mix64(k) & (capacity - 1)) == 0) keys.push_back(k);
  return keys;
}

}  // namespace

TEST_CASE(insert_then_find) {
  EpochGuard pin;
  ConcurrentIndex index;
  // Key 0 and the largest key are ordinary keys (emptiness is the row field, not the key).
  const std::vector<uint64_t> keys = {0, 1, 2, 0xffffffffffffffffULL, 0x8000000000000000ULL, 42, 1ULL << 40};
  for (uint32_t r = 0; r < keys.size(); ++r) index.insert(keys[r], r);
  CHECK_EQ(index.size(), keys.size());
  for (uint32_t r = 0; r < keys.size(); ++r) CHECK_EQ(index.find(keys[r]), r);
  CHECK_EQ(index.find(3), ConcurrentIndex::kNotFound);
  CHECK_EQ(index.find(0xfffffffffffffffeULL), ConcurrentIndex::kNotFound);
}

TEST_CASE(erase_leaves_a_tombstone_that_lookups_probe_past) {
  EpochGuard pin;
  ConcurrentIndex index(16);
  const std::vector<uint64_t> chain = colliding_keys(16, 6);  // slots 0..5, in insertion order
  for (uint32_t r = 0; r < chain.size(); ++r) index.insert(chain[r], 100 + r);
  CHECK_EQ(index.erase(chain[0]), 100u);
  CHECK_EQ(index.erase(chain[2]), 102u);
  // Were an erased slot marked empty, the keys after it in the chain would be lost.
  CHECK_EQ(index.find(chain[0]), ConcurrentIndex::kNotFound);
  CHECK_EQ(index.find(chain[1]), 101u);
  CHECK_EQ(index.find(chain[2]), ConcurrentIndex::kNotFound);
  CHECK_EQ(index.find(chain[3]), 103u);
  CHECK_EQ(index.find(chain[5]), 105u);
  CHECK_EQ(index.size(), 4u);
  // Erasing twice, or a key never inserted, finds nothing.
  CHECK_EQ(index.erase(chain[0]), ConcurrentIndex::kNotFound);
  CHECK_EQ(index.erase(777777), ConcurrentIndex::kNotFound);
  CHECK_EQ(index.size(), 4u);
  // An erased key comes back with its new row (the tombstone is not reused in place).
  index.insert(chain[0], 7);
  CHECK_EQ(index.find(chain[0]), 7u);
  CHECK_EQ(index.find(chain[5]), 105u);
  CHECK_EQ(index.size(), 5u);
}

TEST_CASE(growth_and_tombstone_rebuilds_keep_every_live_entry) {
  EpochGuard pin;
  ConcurrentIndex index;
  std::mt19937_64 rng(1);
  std::vector<uint64_t> keys(50000);
  for (auto& k : keys) k = rng();
  for (uint32_t r = 0; r < keys.size(); ++r) index.insert(keys[r], r);
  for (uint32_t r = 0; r < keys.size(); r += 2) CHECK_EQ(index.erase(keys[r]), r);
  for (uint32_t r = 0; r < 20000; ++r) index.insert(rng() | 1, 1000000 + r);  // more rebuilds
  bool all = true;
  for (uint32_t r = 0; r < keys.size(); ++r)
    all = all && index.find(keys[r]) == (r % 2 == 0 ? ConcurrentIndex::kNotFound : r);
  CHECK(all);
  CHECK_EQ(index.size(), 25000u + 20000u);
}

TEST_CASE(churn_at_a_steady_size_rebuilds_in_place) {
  // Insert/erase churn fills the array with tombstones; rebuilds must shed them without
  // growing the array (the size stays 1000), and retired arrays are freed when unpinned.
  ConcurrentIndex index;
  uint64_t next = 0;
  for (; next < 1000; ++next) {
    EpochGuard pin;
    index.insert(next, static_cast<uint32_t>(next));
  }
  for (int round = 0; round < 200000; ++round, ++next) {
    EpochGuard pin;
    index.insert(next, static_cast<uint32_t>(next % 4000000));
    CHECK_EQ(index.erase(next - 1000), static_cast<uint32_t>((next - 1000) % 4000000));
  }
  index.collect();
  CHECK_EQ(index.size(), 1000u);
  // 1000 keys at load <= 0.7 after a rebuild to load <= 0.5: 2048 or 4096 slots of 16 bytes.
  CHECK(index.memory_bytes() <= 4096 * 16);
  EpochGuard pin;
  for (uint64_t k = next - 1000; k < next; ++k) CHECK_EQ(index.find(k), static_cast<uint32_t>(k % 4000000));
  CHECK_EQ(index.find(next - 1001), ConcurrentIndex::kNotFound);
}

TEST_CASE(replaced_arrays_wait_for_pinned_readers) {
  ConcurrentIndex index;
  const uint64_t empty_bytes = index.memory_bytes();
  uint64_t held;
  {
    EpochGuard pin;  // a reader that may still walk every array published so far
    for (uint32_t k = 0; k < 5000; ++k) index.insert(k, k);
    held = index.memory_bytes();
    index.collect();
    CHECK_EQ(index.memory_bytes(), held);  // nothing freed while pinned
  }
  index.collect();
  const uint64_t after = index.memory_bytes();
  CHECK(after < held);
  CHECK(after > empty_bytes);
  // Only the current array remains: another collect frees nothing more.
  index.collect();
  CHECK_EQ(index.memory_bytes(), after);
}

namespace {

// Stable keys are odd (row = key / 2) and are never erased; churn keys are even (row =
// key / 2 as well, so any hit can be checked) and come and go.
constexpr uint32_t kStable = 2000;
uint32_t row_of(uint64_t key) { return static_cast<uint32_t>(key / 2); }

}  // namespace

STRESS_CASE(readers_during_inserts_erases_and_rebuilds) {
  ConcurrentIndex index;
  {
    EpochGuard pin;
    for (uint64_t i = 0; i < kStable; ++i) index.insert(2 * i + 1, row_of(2 * i + 1));
  }
  std::atomic<bool> done{false};
  std::atomic<uint64_t> lookups{0};
  // Highest churn key inserted so far (readers probe below it).
  std::atomic<uint64_t> churn_top{0};

  std::thread writer([&] {
    // Rounds of inserting a block of new churn keys, then erasing most of the previous block:
    // the array grows, fills with tombstones and is rebuilt many times under the readers.
    uint64_t next = 0;
    std::vector<uint64_t> live;
    for (int round = 0; round < 400; ++round) {
      EpochGuard pin;  // the writer also reads (erase probes the current array)
      for (int j = 0; j < 256; ++j, ++next) {
        const uint64_t key = 2 * (next + 1);
        index.insert(key, row_of(key));
        live.push_back(key);
      }
      churn_top.store(2 * (next + 1), std::memory_order_release);
      const size_t keep = 64 + (round % 7) * 32;
      while (live.size() > keep) {
        const uint64_t key = live.front();
        live.erase(live.begin());
        if (index.erase(key) != row_of(key)) rtrec_test::fail(__FILE__, __LINE__, "erase returned a wrong row");
      }
    }
    done.store(true);
  });

  auto reader = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    uint64_t n = 0;
    while (!done.load(std::memory_order_relaxed) || n == 0) {
      EpochGuard pin;  // one pin per batch, so replaced arrays get freed meanwhile
      for (int j = 0; j < 64; ++j, ++n) {
        const uint64_t stable = 2 * (rng() % kStable) + 1;
        const uint32_t found = index.find(stable);
        if (found != row_of(stable)) rtrec_test::fail(__FILE__, __LINE__, "a stable key was lost or got a wrong row");
        const uint64_t top = churn_top.load(std::memory_order_acquire);
        if (top > 0) {
          const uint64_t churn = 2 * (1 + rng() % (top / 2));
          const uint32_t row = index.find(churn);
          if (row != ConcurrentIndex::kNotFound && row != row_of(churn))
            rtrec_test::fail(__FILE__, __LINE__, "a churn key was paired with another key's row");
        }
      }
    }
    lookups.fetch_add(n);
  };
  std::thread r1(reader, 11), r2(reader, 12);
  writer.join();
  r1.join();
  r2.join();
  CHECK(lookups.load() > 0);
  EpochGuard pin;
  CHECK_EQ(index.size(), kStable + 64 + (399 % 7) * 32);
  for (uint64_t i = 0; i < kStable; ++i) CHECK_EQ(index.find(2 * i + 1), row_of(2 * i + 1));
}
