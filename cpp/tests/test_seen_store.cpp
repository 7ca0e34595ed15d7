// SeenStore: per-user sets of seen item rows (add, collect, growth, remove_items,
// clear_user) and lock-free readers while writers add.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/seen_store.hpp"

using rtrec::EpochGuard;
using rtrec::SeenStore;

namespace {

std::vector<uint32_t> items_of(const SeenStore& seen, uint32_t user) {
  EpochGuard pin;
  std::vector<uint32_t> out;
  seen.collect(user, out);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE(add_reports_new_pairs_and_collect_lists_them_once) {
  SeenStore seen;
  CHECK(items_of(seen, 0).empty());
  CHECK(items_of(seen, 123456).empty());  // a user never seen, beyond any chunk
  CHECK(seen.add(3, 10));
  CHECK(seen.add(3, 0));  // item row 0 is a real item (slots store row + 1)
  CHECK(!seen.add(3, 10));
  CHECK(seen.add(4, 10));
  CHECK_EQ(seen.pairs(), 3u);
  CHECK((items_of(seen, 3) == std::vector<uint32_t>{0, 10}));
  CHECK((items_of(seen, 4) == std::vector<uint32_t>{10}));
  CHECK(items_of(seen, 5).empty());
}

TEST_CASE(sets_grow_and_keep_every_item) {
  SeenStore seen;
  std::mt19937 rng(3);
  std::set<uint32_t> expected;
  for (int i = 0; i < 5000; ++i) {
    const uint32_t item = rng() % 20000;
    CHECK_EQ(seen.add(7, item), expected.insert(item).second);
  }
  // A user in a later chunk of the directory too.
  for (uint32_t item = 0; item < 100; ++item) CHECK(seen.add(5000, item));
  CHECK((items_of(seen, 7) == std::vector<uint32_t>(expected.begin(), expected.end())));
  CHECK_EQ(items_of(seen, 5000).size(), 100u);
  CHECK_EQ(seen.pairs(), expected.size() + 100);
  CHECK(seen.memory_bytes() > 0);
}

TEST_CASE(remove_items_drops_those_items_from_every_user) {
  SeenStore seen;
  for (uint32_t user = 0; user < 300; ++user)
    for (uint32_t item = 0; item < 20; ++item) seen.add(user, (user + item) % 50);
  const uint64_t before = seen.pairs();
  std::vector<uint8_t> dead(50, 0);
  dead[3] = dead[17] = dead[49] = 1;
  seen.remove_items(dead);
  uint64_t total = 0;
  bool none_dead = true;
  for (uint32_t user = 0; user < 300; ++user) {
    const std::vector<uint32_t> items = items_of(seen, user);
    total += items.size();
    for (uint32_t i : items) none_dead = none_dead && !dead[i];
  }
  CHECK(none_dead);
  CHECK_EQ(seen.pairs(), total);
  CHECK(total < before);
  // A removed item can be added again (it passes its tombstone) and is listed once.
  CHECK(seen.add(3, 3));
  CHECK(!seen.add(3, 3));
  const std::vector<uint32_t> items = items_of(seen, 3);
  CHECK_EQ(std::count(items.begin(), items.end(), 3u), 1);
  // Growth after removals drops the tombstones and keeps the live items.
  for (uint32_t item = 1000; item < 1100; ++item) seen.add(3, item);
  CHECK_EQ(items_of(seen, 3).size(), items.size() + 100);
}

TEST_CASE(clear_user_drops_the_whole_set) {
  SeenStore seen;
  for (uint32_t item = 0; item < 40; ++item) seen.add(9, item);
  seen.add(10, 1);
  const uint64_t bytes = seen.memory_bytes();
  seen.clear_user(9);
  CHECK(items_of(seen, 9).empty());
  CHECK_EQ(seen.pairs(), 1u);
  CHECK(seen.memory_bytes() < bytes);
  CHECK((items_of(seen, 10) == std::vector<uint32_t>{1}));
  seen.clear_user(9);       // already empty
  seen.clear_user(999999);  // never had a chunk
  CHECK(seen.add(9, 5));    // the row starts clean when reused
  CHECK((items_of(seen, 9) == std::vector<uint32_t>{5}));
}

STRESS_CASE(readers_see_every_confirmed_item_while_sets_grow) {
  // Writers add items k = 0, 1, 2, ... to their users in order and publish how far they
  // got; a reader that then collects a user must find every item up to that point, each
  // once, and no item of another user. Sets grow (are copied and republished) many times
  // meanwhile.
  constexpr uint32_t kUsers = 64;
  constexpr uint32_t kItems = 1500;
  SeenStore seen;
  std::vector<std::atomic<uint32_t>> progress(kUsers);  // items [0, progress) are in
  for (auto& p : progress) p.store(0);
  std::atomic<int> writers_done{0};
  std::atomic<uint64_t> collects{0};

  auto writer = [&](uint32_t first_user) {
    for (uint32_t k = 0; k < kItems; ++k) {
      for (uint32_t u = first_user; u < kUsers; u += 2) {
        EpochGuard pin;
        const uint32_t item = u * 100000 + k;
        if (!seen.add(u, item)) rtrec_test::fail(__FILE__, __LINE__, "a new pair was reported as known");
        if (k % 3 == 0 && seen.add(u, item)) rtrec_test::fail(__FILE__, __LINE__, "a pair was added twice");
        progress[u].store(k + 1, std::memory_order_release);
      }
    }
    writers_done.fetch_add(1);
  };
  auto reader = [&](uint64_t seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<uint32_t> out;
    uint64_t n = 0;
    while (writers_done.load() < 2 || n == 0) {
      const uint32_t u = rng() % kUsers;
      const uint32_t confirmed = progress[u].load(std::memory_order_acquire);
      out.clear();
      {
        EpochGuard pin;
        seen.collect(u, out);
      }
      ++n;
      std::sort(out.begin(), out.end());
      if (std::adjacent_find(out.begin(), out.end()) != out.end())
        rtrec_test::fail(__FILE__, __LINE__, "an item was listed twice");
      if (out.size() < confirmed) rtrec_test::fail(__FILE__, __LINE__, "a confirmed item is missing");
      // Sorted, the user's items are u*100000 + 0, 1, 2, ...: every confirmed one first,
      // then some of the ones being added meanwhile (a collect is not a snapshot).
      for (uint32_t j = 0; j < confirmed && j < out.size(); ++j)
        if (out[j] != u * 100000 + j) {
          rtrec_test::fail(__FILE__, __LINE__, "a confirmed item is missing");
          break;
        }
      for (uint32_t item : out)
        if (item < u * 100000 || item >= u * 100000 + kItems)
          rtrec_test::fail(__FILE__, __LINE__, "an item that was never added to this user");
    }
    collects.fetch_add(n);
  };
  std::thread w0(writer, 0), w1(writer, 1), r0(reader, 5), r1(reader, 6);
  w0.join();
  w1.join();
  r0.join();
  r1.join();
  CHECK(collects.load() > 0);
  CHECK_EQ(seen.pairs(), uint64_t(kUsers) * kItems);
  for (uint32_t u = 0; u < kUsers; ++u) CHECK_EQ(items_of(seen, u).size(), kItems);
}
