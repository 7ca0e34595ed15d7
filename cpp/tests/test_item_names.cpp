// ItemNames: set/replace/remove, the generation marks a delta selects by, erase of evicted
// keys, counts and bytes; a delta's cut never misses a name set while it collects.
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rtrec/item_names.hpp"

using rtrec::ItemNames;

TEST_CASE(names_are_set_replaced_and_removed) {
  ItemNames names;
  std::atomic<uint32_t> generation{1};
  const uint64_t keys[] = {1, 2, 3};
  const std::string text[] = {"one", "two", "a name too long for the inline buffer of a string"};
  names.set(keys, text, 3, generation);
  CHECK_EQ(names.size(), 3u);
  const uint64_t bytes = names.memory_bytes();
  CHECK(bytes > text[2].size());
  const auto got = names.get(keys, 3);
  CHECK(got[0].first && got[0].second == "one");
  const std::string replaced[] = {"", "TWO"};
  names.set(keys, replaced, 2, generation);  // "" removes key 1
  const auto after = names.get(keys, 2);
  CHECK(!after[0].first);
  CHECK(after[1].first && after[1].second == "TWO");
  CHECK_EQ(names.size(), 2u);
  names.erase({3, 99});
  CHECK_EQ(names.size(), 1u);
  CHECK(names.memory_bytes() < bytes);
}

TEST_CASE(a_delta_holds_the_names_set_since_its_cut) {
  ItemNames names;
  std::atomic<uint32_t> generation{1};
  const uint64_t a = 10, b = 20;
  const std::string first = "first", second = "second";
  names.set(&a, &first, 1, generation);
  generation.store(2);
  names.set(&b, &second, 1, generation);
  CHECK_EQ(names.since(0).size(), 2u);
  const auto recent = names.since(2);
  CHECK_EQ(recent.size(), 1u);
  CHECK(recent[0].key == b && recent[0].name == "second");
}

TEST_CASE(names_that_are_too_long_or_hold_nul_are_refused) {
  const std::string bad[] = {std::string(ItemNames::kMaxNameBytes + 1, 'x')};
  CHECK_THROWS(ItemNames::check_names(bad, 1), std::invalid_argument);
  const std::string nul[] = {std::string("a\0b", 3)};
  CHECK_THROWS(ItemNames::check_names(nul, 1), std::invalid_argument);
}

STRESS_CASE(a_cut_never_misses_a_name_set_while_it_collects) {
  // A writer sets names while a "publisher" cuts (advances the generation, then collects
  // the names since the previous cut): every name must be in some cut.
  ItemNames names;
  std::atomic<uint32_t> generation{1};
  std::atomic<bool> done{false};
  constexpr uint64_t kNames = 20000;
  std::thread writer([&] {
    for (uint64_t k = 1; k <= kNames; ++k) {
      const std::string n = "n" + std::to_string(k);
      names.set(&k, &n, 1, generation);
    }
    done.store(true);
  });
  std::vector<bool> seen(kNames + 1, false);
  uint32_t since = 1;
  bool last = false;
  while (!last) {
    last = done.load();
    const uint32_t closed = generation.fetch_add(1);  // the cut
    for (const auto& e : names.since(since)) seen[e.key] = true;
    since = closed + 1;
  }
  writer.join();
  for (uint64_t k = 1; k <= kNames; ++k) CHECK(seen[k]);
}
