// EmbeddingTable: rows for new IDs, the int/str kind rule and hash-collision check, erase /
// release / recycling of rows, and the dense list of live rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "rtrec/embedding_table.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/hash.hpp"

using rtrec::EmbeddingTable;
using rtrec::EpochGuard;
using rtrec::IdKind;
using rtrec::TableOptions;

namespace {

TableOptions options(uint32_t dim = 5, bool adagrad = true, uint64_t seed = 1) {
  TableOptions o;
  o.dim = dim;
  o.with_accumulators = adagrad;
  o.init_std = 0.1f;
  o.seed = seed;
  return o;
}

std::vector<float> vector_of(const EmbeddingTable& t, uint32_t row) {
  return std::vector<float>(t.vector(row), t.vector(row) + t.stride());
}

}  // namespace

TEST_CASE(new_ids_get_rows_in_order_and_known_ids_keep_theirs) {
  EpochGuard pin;
  EmbeddingTable t(options());
  CHECK_EQ(t.size(), 0u);
  CHECK(t.kind() == IdKind::kUnset);
  CHECK_EQ(t.find(10), EmbeddingTable::kNotFound);
  CHECK_EQ(t.find_or_insert(10, nullptr, true, 5.0), 0u);
  CHECK_EQ(t.find_or_insert(20, nullptr), 1u);
  CHECK_EQ(t.find_or_insert(10, nullptr), 0u);
  CHECK_EQ(t.size(), 2u);
  CHECK_EQ(t.live_count(), 2u);
  CHECK(t.kind() == IdKind::kInt);
  CHECK_EQ(t.find(20), 1u);
  CHECK_EQ(t.key(1), 20u);
  CHECK_EQ(t.last_update(0), 5.0);
  CHECK_EQ(t.update_count(0), 0u);
  CHECK(t.is_live(0) && t.is_live(1));
  CHECK(!t.has_erased());
  // Rows past one chunk.
  for (uint64_t k = 100; k < 100 + 3 * EmbeddingTable::kChunkRows; ++k) t.find_or_insert(k, nullptr);
  CHECK_EQ(t.size(), 2 + 3 * EmbeddingTable::kChunkRows);
  CHECK_EQ(t.find(100 + 2500), 2u + 2500u);
  CHECK(t.memory_bytes() > 0);
}

TEST_CASE(rows_start_from_a_deterministic_draw_and_zero_padding) {
  EpochGuard pin;
  EmbeddingTable a(options(5, true, 7)), b(options(5, true, 7)), other_seed(options(5, true, 8));
  CHECK_EQ(a.stride(), 16u);
  b.find_or_insert(999, nullptr);  // another insertion order: the draw depends on (seed, key) only
  const uint32_t ra = a.find_or_insert(1234, nullptr), rb = b.find_or_insert(1234, nullptr);
  CHECK((vector_of(a, ra) == vector_of(b, rb)));
  const uint32_t rc = other_seed.find_or_insert(1234, nullptr);
  CHECK((vector_of(a, ra) != vector_of(other_seed, rc)));
  const float bound = 0.1f * std::sqrt(3.0f) * 1.0001f;
  bool in_range = true, padded = true, nonzero = false;
  for (uint32_t k = 0; k < a.stride(); ++k) {
    const float v = a.vector(ra)[k];
    if (k < a.dim()) {
      in_range = in_range && std::fabs(v) <= bound;
      nonzero = nonzero || v != 0.0f;
    } else {
      padded = padded && v == 0.0f;
    }
  }
  CHECK(in_range);
  CHECK(padded);
  CHECK(nonzero);
  CHECK_EQ(a.bias(ra), 0.0f);
  for (uint32_t k = 0; k < a.stride(); ++k) CHECK_EQ(a.accumulator(ra)[k], 0.0f);
  const uint32_t zero = a.find_or_insert(55, nullptr, /*random_init=*/false);
  for (uint32_t k = 0; k < a.stride(); ++k) CHECK_EQ(a.vector(zero)[k], 0.0f);
  CHECK_THROWS(EmbeddingTable(options(0)), std::invalid_argument);
}

TEST_CASE(a_table_keeps_the_kind_it_started_with) {
  EpochGuard pin;
  EmbeddingTable ints(options());
  ints.find_or_insert(1, nullptr);
  const std::string name = "alice";
  CHECK_THROWS(ints.find_or_insert(rtrec::hash_string_id(name), &name), rtrec::IdKindError);
  CHECK_THROWS(ints.find_or_insert(1, &name), rtrec::IdKindError);  // a known key too
  CHECK_EQ(ints.size(), 1u);
  const uint64_t keys[1] = {rtrec::hash_string_id(name)};
  CHECK_THROWS(ints.check_batch(keys, &name, 1), rtrec::IdKindError);

  EmbeddingTable strings(options());
  const uint32_t row = strings.find_or_insert(rtrec::hash_string_id(name), &name);
  CHECK(strings.kind() == IdKind::kString);
  CHECK_EQ(strings.name(row), name);
  CHECK_THROWS(strings.find_or_insert(7, nullptr), rtrec::IdKindError);
  CHECK_THROWS(strings.check_batch(keys, nullptr, 1), rtrec::IdKindError);
  strings.check_batch(keys, &name, 1);  // the same string again is fine
  CHECK_EQ(strings.size(), 1u);
}

TEST_CASE(two_strings_with_one_hash_are_an_error_not_a_merge) {
  EpochGuard pin;
  EmbeddingTable t(options());
  const std::string a = "a", b = "b";
  const uint64_t key = rtrec::hash_string_id(a);
  t.find_or_insert(key, &a);
  // "b" under "a"'s key stands for a real 64-bit collision.
  CHECK_THROWS(t.find_or_insert(key, &b), std::invalid_argument);
  CHECK_EQ(t.size(), 1u);
  CHECK_EQ(t.name(0), a);
  const uint64_t keys[2] = {key, key};
  const std::string names[2] = {b, b};
  CHECK_THROWS(t.check_batch(keys, names, 1), std::invalid_argument);  // against the table
  const uint64_t fresh[2] = {12345, 12345};
  const std::string two[2] = {"x", "y"};
  CHECK_THROWS(t.check_batch(fresh, two, 2), std::invalid_argument);  // inside the batch
}

TEST_CASE(erased_rows_leave_the_index_and_are_reused_only_after_release) {
  EpochGuard pin;
  EmbeddingTable t(options(4, true, 3));
  for (uint64_t k = 0; k < 10; ++k) t.find_or_insert(1000 + k, nullptr, true, double(k));
  // Train-like changes to rows 2 and 5, so that reuse must reset them.
  for (uint32_t r : {2u, 5u}) {
    t.vector(r)[0] = 9.0f;
    t.accumulator(r)[1] = 3.0f;
    t.bias(r) = 1.5f;
    t.bias_accumulator(r) = 2.5f;
    t.touch(r, 50.0, 1);
  }
  const std::vector<uint32_t> erased = t.erase({5, 2, 2, 77});  // duplicates and bad rows are skipped
  CHECK((erased == std::vector<uint32_t>{5, 2}));
  CHECK(t.has_erased());
  CHECK_EQ(t.find(1002), EmbeddingTable::kNotFound);
  CHECK_EQ(t.find(1005), EmbeddingTable::kNotFound);
  CHECK(!t.is_live(2) && !t.is_live(5));
  CHECK_EQ(t.live_count(), 8u);
  CHECK_EQ(t.size(), 10u);
  CHECK(t.erase({2}).empty());
  // Not released yet: new IDs take fresh rows.
  CHECK_EQ(t.find_or_insert(2000, nullptr), 10u);
  t.reserve_free(2);
  t.release(erased);
  // Released: the lowest free row is reused first, reset like a new row.
  const uint32_t reused = t.find_or_insert(3000, nullptr, true, 77.0);
  CHECK_EQ(reused, 2u);
  CHECK(t.is_live(2));
  CHECK_EQ(t.key(2), 3000u);
  CHECK_EQ(t.bias(2), 0.0f);
  CHECK_EQ(t.bias_accumulator(2), 0.0f);
  CHECK_EQ(t.accumulator(2)[1], 0.0f);
  CHECK_EQ(t.update_count(2), 0u);
  CHECK_EQ(t.last_update(2), 77.0);
  EmbeddingTable fresh(options(4, true, 3));
  const uint32_t f = fresh.find_or_insert(3000, nullptr);
  CHECK((vector_of(t, 2) == vector_of(fresh, f)));  // as if the ID were new
  CHECK_EQ(t.find_or_insert(4000, nullptr), 5u);
  CHECK_EQ(t.find_or_insert(5000, nullptr), 11u);  // no free rows left
  CHECK_EQ(t.live_count(), 12u);
  CHECK_EQ(t.find(1003), 3u);  // untouched rows keep their IDs
}

TEST_CASE(recycled_string_rows_take_the_new_name) {
  EpochGuard pin;
  EmbeddingTable t(options());
  const std::string a = "old", b = "new";
  const uint32_t row = t.find_or_insert(rtrec::hash_string_id(a), &a);
  t.erase({row});
  t.reserve_free(1);
  t.release({row});
  CHECK_EQ(t.find_or_insert(rtrec::hash_string_id(b), &b), row);
  CHECK_EQ(t.name(row), b);
  CHECK_EQ(t.find(rtrec::hash_string_id(a)), EmbeddingTable::kNotFound);
}

TEST_CASE(the_live_row_list_holds_exactly_the_live_rows) {
  EpochGuard pin;
  EmbeddingTable t(options(2, false));
  std::mt19937 rng(5);
  std::vector<uint32_t> released;
  for (int round = 0; round < 30; ++round) {
    for (int j = 0; j < 100; ++j) t.find_or_insert(uint64_t(round) * 1000 + j, nullptr);
    std::vector<uint32_t> victims;
    for (int j = 0; j < 60; ++j) victims.push_back(rng() % t.size());
    const std::vector<uint32_t> erased = t.erase(victims);
    if (round % 2 == 0) {
      t.reserve_free(erased.size());
      t.release(erased);
    }
    std::set<uint32_t> listed;
    for (uint32_t i = 0; i < t.live_count(); ++i) listed.insert(t.live_row(i));
    std::set<uint32_t> live;
    for (uint32_t r = 0; r < t.size(); ++r)
      if (t.is_live(r)) live.insert(r);
    CHECK_EQ(listed.size(), size_t(t.live_count()));  // no row listed twice
    CHECK((listed == live));
  }
}
