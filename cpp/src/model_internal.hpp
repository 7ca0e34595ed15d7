// Helpers shared by the translation units of Model and its families. Internal: not part of the core's interface.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "rtrec/model.hpp"

namespace rtrec {
namespace model_detail {

constexpr uint32_t kNoRow = EmbeddingTable::kNotFound;

// Purposes of the derived random streams (see derive_seed), one number each.
constexpr uint64_t kShuffleStream = 1;    // mf fit epochs: per-part shuffles and negatives
constexpr uint64_t kUpdateStream = 3;     // update(): each event's negatives
constexpr uint64_t kPoolStream = 4;       // fit's refill of the popularity pool
constexpr uint64_t kSequenceStream = 5;   // two_tower fit epochs: shuffles and negatives
constexpr uint64_t kPartitionStream = 6;  // ties among users of equal event count

// How many events ahead training prefetches rows: enough to cover a DRAM miss with a few
// events of arithmetic, few enough that prefetched lines are still in L1/L2 when used.
constexpr int64_t kPrefetchAhead = 8;

inline float cosine(const float* a, const float* b, uint32_t stride) noexcept {
  const float norms = std::sqrt(dot(a, a, stride) * dot(b, b, stride));
  return norms > 0.0f && std::isfinite(norms) ? dot(a, b, stride) / norms : 0.0f;
}

inline double wall_clock() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

inline uint32_t lookup(const EmbeddingTable& table, uint64_t key, const std::string* name) noexcept {
  const uint32_t row = table.find(key);
  // A string whose hash matches a different stored string is not that ID.
  if (row != EmbeddingTable::kNotFound && name != nullptr && table.name(row) != *name) return EmbeddingTable::kNotFound;
  return row;
}

// Splits fit events (anything with an `item` row) into `parts` contiguous runs, each run
// holding whole items, balanced by event count; returns the run boundaries (parts + 1).
// Hogwild threads that write the same rows fight over their cache lines; with skewed (Zipf)
// item popularity the popular items' rows are written by every thread all the time. Giving
// each thread a disjoint set of positive items removes that traffic: greedy
// longest-processing-time assignment of items (most events first) to the least loaded
// thread keeps the parts within a few percent of each other.
template <class Event>
std::vector<int64_t> partition_by_item(std::vector<Event>& events, uint32_t n_items, int parts) {
  std::vector<uint32_t> count(n_items, 0);
  for (const Event& r : events) ++count[r.item];
  std::vector<uint32_t> order(n_items);
  for (uint32_t i = 0; i < n_items; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return count[a] > count[b] || (count[a] == count[b] && a < b); });
  std::vector<uint64_t> load(parts, 0);
  std::vector<uint16_t> owner(n_items, 0);
  for (uint32_t item : order) {
    if (count[item] == 0) break;
    const int p = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[item] = static_cast<uint16_t>(p);
    load[p] += count[item];
  }
  std::vector<int64_t> bounds(parts + 1, 0);
  for (int p = 0; p < parts; ++p) bounds[p + 1] = bounds[p] + static_cast<int64_t>(load[p]);
  std::vector<Event> sorted(events.size());
  std::vector<int64_t> next(bounds.begin(), bounds.end() - 1);
  for (const Event& r : events) sorted[next[owner[r.item]]++] = r;
  events.swap(sorted);
  return bounds;
}

// Splits fit events into `parts` contiguous runs, each run holding whole users, balanced by
// event count; returns the run boundaries (parts + 1). The mf fit uses this, not the item
// split above: a thread's run must be a fair sample of the whole batch, because Hogwild
// threads on a busy machine do not interleave finely; measured on 2 shared cores, the two
// runs of a 9k-event epoch ran one after the other in 4 epochs of 5. With runs of whole
// items, each run's positives are its own items only, so every epoch trained one block of
// items up and then the other (the item and feature biases ended wherever the last block
// left them: a two-genre case ranked the users' own genre first for 50-85% of users with 2
// threads, 100% with 1). Runs of whole users hold every item's positives in proportion;
// each user row is still written by one thread only. Users of equal count are ordered by a
// seeded hash, not by row, so that runs do not follow whatever order rows were made in
// (alternating tastes, say).
template <class Event>
std::vector<int64_t> partition_by_user(std::vector<Event>& events, uint32_t n_users, int parts, uint64_t seed) {
  std::vector<uint32_t> count(n_users, 0);
  for (const Event& r : events) ++count[r.user];
  std::vector<uint64_t> tie(n_users);
  for (uint32_t u = 0; u < n_users; ++u) tie[u] = derive_seed(seed, u);
  std::vector<uint32_t> order(n_users);
  for (uint32_t u = 0; u < n_users; ++u) order[u] = u;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return count[a] > count[b] || (count[a] == count[b] && tie[a] < tie[b]); });
  std::vector<uint64_t> load(parts, 0);
  std::vector<uint16_t> owner(n_users, 0);
  for (uint32_t user : order) {
    if (count[user] == 0) break;
    const int p = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[user] = static_cast<uint16_t>(p);
    load[p] += count[user];
  }
  std::vector<int64_t> bounds(parts + 1, 0);
  for (int p = 0; p < parts; ++p) bounds[p + 1] = bounds[p] + static_cast<int64_t>(load[p]);
  std::vector<Event> sorted(events.size());
  std::vector<int64_t> next(bounds.begin(), bounds.end() - 1);
  for (const Event& r : events) sorted[next[owner[r.user]]++] = r;
  events.swap(sorted);
  return bounds;
}

}  // namespace model_detail
}  // namespace rtrec
