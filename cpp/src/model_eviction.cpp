// Model: the clock, expiry and eviction (evict_before, ttl / max_rows maintenance, recycling).
#include "rtrec/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model_family.hpp"
#include "model_internal.hpp"
#include "rtrec/epoch.hpp"

namespace rtrec {
using namespace model_detail;

void Model::advance_clock(double time) noexcept {
  double now = clock_.load(std::memory_order_relaxed);
  while (time > now) {
    if (clock_.compare_exchange_weak(now, time, std::memory_order_relaxed)) {
      if (now == 0.0 && unstamped_.exchange(false)) stamp_untouched(time);
      return;
    }
  }
}

void Model::stamp_untouched(double time) noexcept {
  // Rows that set_features created before the clock started (no event yet, no time to give
  // them): they count as updated when the stream starts, whatever its time scale.
  for (const EmbeddingTable* table : {&users_, &items_})
    for (uint32_t r = 0, n = table->size(); r < n; ++r)
      if (table->is_live(r) && table->update_count(r) == 0 && table->last_update(r) == 0.0)
        table->set_metadata(r, 0, time);
}

std::vector<uint32_t> Model::rows_before(const EmbeddingTable& table, double cutoff) const {
  std::vector<uint32_t> rows;
  const uint32_t n = table.size();
  for (uint32_t r = 0; r < n; ++r)
    if (table.is_live(r) && table.last_update(r) < cutoff) rows.push_back(r);
  return rows;
}

std::vector<uint32_t> Model::oldest_rows(const EmbeddingTable& table, uint64_t count) const {
  struct Aged {
    double time;
    uint32_t row;
  };
  std::vector<Aged> live;
  live.reserve(table.live_count());
  const uint32_t n = table.size();
  for (uint32_t r = 0; r < n; ++r)
    if (table.is_live(r)) live.push_back(Aged{table.last_update(r), r});
  count = std::min<uint64_t>(count, live.size());
  auto older = [](const Aged& a, const Aged& b) { return a.time < b.time || (a.time == b.time && a.row < b.row); };
  std::nth_element(live.begin(), live.begin() + count, live.end(), older);
  std::vector<uint32_t> rows(count);
  for (uint64_t i = 0; i < count; ++i) rows[i] = live[i].row;
  return rows;
}

uint64_t Model::evict_rows(const std::vector<uint32_t>& user_rows, const std::vector<uint32_t>& item_rows, bool log) {
  Pending p;
  {
    // Erased and logged under one lock with the delta's cut (save_delta takes the log and
    // chooses its rows under it): an eviction is wholly before a cut, in that delta, or
    // wholly after it, in the next one — so a key evicted and then seen again always has
    // its new row in the delta that carries its eviction, or in a later one.
    std::lock_guard<std::mutex> lock(eviction_log_.mutex());
    p.users = users_.erase(user_rows);
    p.items = items_.erase(item_rows);
    if (p.users.empty() && p.items.empty()) return 0;
    if (log && eviction_log_.logging()) log_evictions(p);
  }
  if (!p.items.empty()) {  // an evicted item is no longer hidden (see hidden_mutex_)
    std::lock_guard<std::mutex> lock(hidden_mutex_);
    bool changed = false;
    for (uint32_t r : p.items) changed = hidden_.set(r, false) || changed;
    if (changed) hidden_version_.fetch_add(1, std::memory_order_release);
  }
  if (!p.items.empty() && item_names_.size() > 0) {  // an evicted item's name goes with it
    std::vector<uint64_t> keys;
    for (uint32_t r : p.items) keys.push_back(items_.key(r));  // erased, not yet recycled
    item_names_.erase(keys);
  }
  evicted_users_.fetch_add(p.users.size(), std::memory_order_relaxed);
  evicted_items_.fetch_add(p.items.size(), std::memory_order_relaxed);
  const uint64_t n = p.users.size() + p.items.size();
  p.tag = EpochDomain::instance().advance();
  pending_.push_back(std::move(p));
  has_pending_.store(true, std::memory_order_release);
  changes_.fetch_add(1, std::memory_order_release);  // a publisher has something to write
  return n;
}

void Model::log_evictions(const Pending& p) {
  // The keys go into the next delta so that replicas drop them (the rows are erased but not
  // recycled, so their keys are still readable).
  std::vector<uint64_t> users, items;
  users.reserve(p.users.size());
  items.reserve(p.items.size());
  for (uint32_t r : p.users) users.push_back(users_.key(r));
  for (uint32_t r : p.items) items.push_back(items_.key(r));
  eviction_log_.record(users, items, uint64_t(users_.live_count()) + items_.live_count());
}

void Model::recycle() {
  if (pending_.empty()) return;
  const uint64_t safe_below = EpochDomain::instance().min_pinned();
  std::vector<uint32_t> users, items;
  for (const Pending& p : pending_) {
    if (p.tag >= safe_below) continue;
    users.insert(users.end(), p.users.begin(), p.users.end());
    items.insert(items.end(), p.items.begin(), p.items.end());
  }
  if (users.empty() && items.empty()) return;
  // Everything that can fail (allocations) comes first, and every step until the rows are
  // released can run twice: if one throws, the rows stay pending and the next call redoes it.
  std::vector<uint8_t> dead(items.empty() ? 0 : items_.size(), 0);
  users_.reserve_free(users.size());
  items_.reserve_free(items.size());
  // No reader holds these rows now, and no one can find them: drop their seen pairs and
  // features (a recycled row must start clean), then hand them back to the tables.
  for (uint32_t u : users) seen_.clear_user(u);
  for (uint32_t u : users)
    if (user_features_.lists.get(u) != nullptr) user_features_.lists.set(u, {});
  for (uint32_t i : items)
    if (item_features_.lists.get(i) != nullptr) item_features_.lists.set(i, {});
  if (!items.empty()) {
    for (uint32_t i : items) dead[i] = 1;
    seen_.remove_items(dead);
  }
  family_->forget(users, dead);  // two_tower: the users' rings, the items in any ring
  if (compact_ != nullptr)
    for (uint32_t i : items) compact_->clear(i);  // a recycled row never scores as its old item
  users_.release(users);  // reserved: cannot throw
  items_.release(items);
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.tag < safe_below; }),
                 pending_.end());
  has_pending_.store(!pending_.empty(), std::memory_order_release);
}

void Model::evict_keys(const std::vector<uint64_t>& user_keys, const std::vector<uint64_t>& item_keys) {
  if (user_keys.empty() && item_keys.empty()) return;
  std::vector<uint32_t> users, items;
  for (uint64_t k : user_keys)
    if (const uint32_t r = users_.find(k); r != kNoRow) users.push_back(r);
  for (uint64_t k : item_keys)
    if (const uint32_t r = items_.find(k); r != kNoRow) items.push_back(r);
  std::lock_guard<std::mutex> lock(maintenance_mutex_);
  // Not logged: the trainer's delta already carries these to every follower, and a replica
  // that never publishes would keep the log forever.
  evict_rows(users, items, /*log=*/false);
  // Recycled by apply_delta once it has unpinned.
}

void Model::keep_only(const std::vector<uint64_t>& user_keys, const std::vector<uint64_t>& item_keys) {
  auto absent = [](const EmbeddingTable& t, std::vector<uint64_t> keep) {
    std::sort(keep.begin(), keep.end());
    std::vector<uint32_t> rows;
    for (uint32_t r = 0, n = t.size(); r < n; ++r)
      if (t.is_live(r) && !std::binary_search(keep.begin(), keep.end(), t.key(r))) rows.push_back(r);
    return rows;
  };
  const std::vector<uint32_t> users = absent(users_, user_keys), items = absent(items_, item_keys);
  std::lock_guard<std::mutex> lock(maintenance_mutex_);
  evict_rows(users, items, /*log=*/false);
}

uint64_t Model::evict_before(double cutoff) {
  if (std::isnan(cutoff)) throw std::invalid_argument("the eviction time must not be NaN");
  std::lock_guard<std::mutex> lock(maintenance_mutex_);
  const uint64_t n = evict_rows(rows_before(users_, cutoff), rows_before(items_, cutoff));
  recycle();
  return n;
}

void Model::maintain() {
  const uint64_t cap = config_.max_rows;
  const double ttl = config_.ttl;
  // The common case costs a few relaxed loads: nothing to recycle, under the cap, no sweep due.
  const bool over_cap = cap != 0 && (users_.live_count() > cap || items_.live_count() > cap);
  const bool sweep_due = ttl > 0.0 && clock() - last_ttl_sweep_.load(std::memory_order_relaxed) >= ttl / 8;
  if (!over_cap && !sweep_due && !has_pending_.load(std::memory_order_acquire)) return;
  // Over the cap, wait for a concurrent maintainer (the cap holds when this call returns);
  // otherwise leave the chores to it.
  std::unique_lock<std::mutex> lock(maintenance_mutex_, std::defer_lock);
  if (over_cap) lock.lock();
  else if (!lock.try_lock()) return;
  recycle();
  if (sweep_due) {
    const double now = clock();
    last_ttl_sweep_.store(now, std::memory_order_relaxed);
    evict_rows(rows_before(users_, now - ttl), rows_before(items_, now - ttl));
  }
  if (cap != 0) {
    // Down to a little under the cap, so the scan for the oldest rows runs once per
    // ~cap/32 new rows, not once per new row.
    const uint64_t target = cap - std::max<uint64_t>(1, cap / 32);
    const uint64_t users = users_.live_count(), items = items_.live_count();
    std::vector<uint32_t> old_users, old_items;
    if (users > cap) old_users = oldest_rows(users_, users - target);
    if (items > cap) old_items = oldest_rows(items_, items - target);
    evict_rows(old_users, old_items);
  }
  recycle();  // usually at once: this thread is not pinned, and others rarely are for long
}

}  // namespace rtrec
