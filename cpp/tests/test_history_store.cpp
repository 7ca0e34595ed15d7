// HistoryStore (two_tower): each user's ring of recent positive items; push, recent,
// assign, clear, remove_items, and lock-free readers while writers push.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/history_store.hpp"

using rtrec::HistoryStore;

namespace {

std::vector<uint32_t> recent_of(const HistoryStore& h, uint32_t user) {
  std::vector<uint32_t> out(h.capacity());
  out.resize(h.recent(user, out.data()));
  return out;
}

}  // namespace

TEST_CASE(recent_lists_the_last_items_most_recent_first) {
  HistoryStore h(4);
  CHECK(recent_of(h, 0).empty());
  CHECK(recent_of(h, 5000).empty());  // no chunk yet
  h.push(7, 10);
  h.push(7, 11);
  CHECK((recent_of(h, 7) == std::vector<uint32_t>{11, 10}));
  for (uint32_t i = 12; i < 17; ++i) h.push(7, i);  // wraps: only the last 4 stay
  CHECK((recent_of(h, 7) == std::vector<uint32_t>{16, 15, 14, 13}));
  CHECK(recent_of(h, 6).empty());  // neighbours untouched
  CHECK(recent_of(h, 8).empty());
  h.push(3000, 1);  // another chunk
  CHECK((recent_of(h, 3000) == std::vector<uint32_t>{1}));
  CHECK(h.memory_bytes() > 0);
}

TEST_CASE(assign_replaces_and_clear_forgets) {
  HistoryStore h(3);
  const uint32_t items[5] = {1, 2, 3, 4, 5};  // oldest first: only the last 3 stay
  h.assign(2, items, 5);
  CHECK((recent_of(h, 2) == std::vector<uint32_t>{5, 4, 3}));
  h.push(2, 6);
  CHECK((recent_of(h, 2) == std::vector<uint32_t>{6, 5, 4}));
  h.clear(2);
  CHECK(recent_of(h, 2).empty());
  h.push(2, 9);  // a recycled user starts clean
  CHECK((recent_of(h, 2) == std::vector<uint32_t>{9}));
  h.clear(99999);  // never had a chunk
}

TEST_CASE(remove_items_leaves_holes_that_recent_skips) {
  HistoryStore h(5);
  for (uint32_t u = 0; u < 40; ++u)
    for (uint32_t i = 0; i < 7; ++i) h.push(u, (u + i) % 10);
  std::vector<uint8_t> dead(10, 0);
  dead[2] = dead[5] = 1;
  h.remove_items(dead);
  bool none_dead = true;
  for (uint32_t u = 0; u < 40; ++u) {
    const std::vector<uint32_t> items = recent_of(h, u);
    for (uint32_t i : items) none_dead = none_dead && !dead[i];
    CHECK(items.size() <= 5u);
  }
  CHECK(none_dead);
  // User 0 pushed 0..6 (kept 2..6): 2 and 5 are gone, the order of the rest stays.
  CHECK((recent_of(h, 0) == std::vector<uint32_t>{6, 4, 3}));
  h.push(0, 8);
  CHECK((recent_of(h, 0) == std::vector<uint32_t>{8, 6, 4, 3}));
}

STRESS_CASE(readers_see_only_the_users_own_items_while_rings_wrap) {
  // One writer per user pushes u*100000 + k, k = 0, 1, ...; readers check that every entry
  // they get was pushed for that user, once (a push racing with a read may show a newer
  // item in place of an older one, never another user's, never one twice).
  constexpr uint32_t kUsers = 3000;  // three chunks, allocated under the readers
  constexpr uint32_t kPushes = 400;
  HistoryStore h(8);
  std::atomic<int> writers_done{0};
  std::atomic<uint64_t> reads{0};
  auto writer = [&](uint32_t first) {
    for (uint32_t k = 0; k < kPushes; ++k)
      for (uint32_t u = first; u < kUsers; u += 2) h.push(u, u * 100000 + k);
    writers_done.fetch_add(1);
  };
  auto reader = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint32_t> out(h.capacity());
    uint64_t n = 0;
    while (writers_done.load() < 2 || n == 0) {
      const uint32_t u = rng() % kUsers;
      const uint32_t found = h.recent(u, out.data());
      ++n;
      if (found > h.capacity()) rtrec_test::fail(__FILE__, __LINE__, "more items than the ring holds");
      for (uint32_t j = 0; j < found; ++j)
        if (out[j] / 100000 != u || out[j] % 100000 >= kPushes)
          rtrec_test::fail(__FILE__, __LINE__, "an item that was never pushed for this user");
      std::sort(out.begin(), out.begin() + found);
      if (std::adjacent_find(out.begin(), out.begin() + found) != out.begin() + found)
        rtrec_test::fail(__FILE__, __LINE__, "an item listed twice");
    }
    reads.fetch_add(n);
  };
  std::thread w0(writer, 0), w1(writer, 1), r0(reader, 1), r1(reader, 2);
  w0.join();
  w1.join();
  r0.join();
  r1.join();
  CHECK(reads.load() > 0);
  bool last_eight = true;
  for (uint32_t u = 0; u < kUsers; ++u) {
    const std::vector<uint32_t> items = recent_of(h, u);
    last_eight = last_eight && items.size() == 8 && items.front() == u * 100000 + kPushes - 1 &&
                 items.back() == u * 100000 + kPushes - 8;
  }
  CHECK(last_eight);
}
