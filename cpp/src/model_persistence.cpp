// Model: the state snapshots and deltas hold, and the lineage protocol (see
// model_persistence.hpp). The file format is snapshot.cpp's.
#include "rtrec/model_persistence.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "model_family.hpp"
#include "rtrec/hash.hpp"

namespace rtrec {
namespace {

uint64_t fresh_id() {
  // Identity of a lineage or a delta: deltas name the link they follow. Wall clock, pid and
  // a counter make collisions between two trainers practically impossible.
  static std::atomic<uint64_t> counter{0};
  const uint64_t now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                       static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  uint64_t id = mix64(now ^ mix64(static_cast<uint64_t>(::getpid())) ^ mix64(counter.fetch_add(1) + 0x51ed));
  return id == 0 ? 1 : id;
}

}  // namespace

// ------------------------------------------------------------------------ read access

LineagePosition Model::StateAccess::position() const noexcept {
  return m_.lineage_.at;
}

ModelCounters Model::StateAccess::counters() const {
  ModelCounters c;
  c.label_sum = m_.label_sum_.load(std::memory_order_relaxed);
  c.weight_sum = m_.weight_sum_.load(std::memory_order_relaxed);
  c.global_bias = m_.global_bias_.load(std::memory_order_relaxed);
  c.updates = m_.updates_.load(std::memory_order_relaxed);
  c.skipped = m_.skipped_.load(std::memory_order_relaxed);
  c.calls = m_.calls_.load(std::memory_order_relaxed);
  c.update_events = m_.update_events_.load(std::memory_order_relaxed);
  c.evicted_users = m_.evicted_users_.load(std::memory_order_relaxed);
  c.evicted_items = m_.evicted_items_.load(std::memory_order_relaxed);
  c.deduplicated = m_.deduplicated_.load(std::memory_order_relaxed);
  c.rate_limited = m_.rate_limited_.load(std::memory_order_relaxed);
  c.clock = m_.clock();
  c.source_position = m_.lineage_.source_position;  // guarded by the lineage lock we hold
  return c;
}

const DenseTower* Model::StateAccess::tower() const noexcept { return m_.family_->tower(); }

uint32_t Model::StateAccess::history(uint32_t user, uint32_t* out) const noexcept {
  return m_.family_->recent_items(user, out);
}

void Model::Import::set_history(uint32_t user, const uint32_t* items, uint32_t n) {
  target_.family_->history()->assign(user, items, n);
}

const EmbeddingTable& Model::StateAccess::feature_table(bool items) const noexcept {
  return (items ? m_.item_features_ : m_.user_features_).table;
}

bool Model::StateAccess::has_feature_lists(bool items) const noexcept {
  return (items ? m_.item_features_ : m_.user_features_).lists.any();
}

const FeatureList* Model::StateAccess::feature_list(bool items, uint32_t id_row) const noexcept {
  return (items ? m_.item_features_ : m_.user_features_).lists.get(id_row);
}

// ------------------------------------------------------------------------ full snapshots

Model::SnapshotCut::SnapshotCut(const Model& model) : StateAccess(model) {
  if (m_.lineage_.started()) return;
  started_lineage_ = true;
  m_.lineage_.start(fresh_id(), m_.generation_.fetch_add(1, std::memory_order_seq_cst) + 1);
  m_.eviction_log_.start();
}

Model::SnapshotCut::~SnapshotCut() {
  if (committed_ || !started_lineage_) return;
  // Nothing was written: no lineage, no delta can follow.
  std::lock_guard<std::mutex> log_lock(m_.eviction_log_.mutex());
  m_.eviction_log_.stop();
  m_.lineage_.abandon();
}

// ------------------------------------------------------------------------ deltas

const DeltaContents& Model::DeltaCut::cut() {
  // Writers re-mark a row if a cut lands while they mark it (EmbeddingTable::mark), so
  // every change since the previous cut carries a generation >= lineage_.next_since.
  generation_ = m_.generation_.fetch_add(1, std::memory_order_seq_cst);
  cut_ = true;
  DeltaContents& d = contents_;
  d.since = m_.lineage_.next_since;
  {
    // The log is taken and the rows chosen under the log's lock, so that no eviction falls
    // between the two (see Model::evict_rows).
    std::lock_guard<std::mutex> log_lock(m_.eviction_log_.mutex());
    const bool overflowed = m_.eviction_log_.take(d.evicted.users, d.evicted.items);
    d.n_users = m_.users_.size();
    d.n_items = m_.items_.size();
    d.users = m_.users_.rows_marked_since(d.n_users, d.since);
    d.items = m_.items_.rows_marked_since(d.n_items, d.since);
    if (overflowed) {
      d.evicted.membership = true;
      d.evicted.live_users = m_.users_.live_keys(d.n_users);
      d.evicted.live_items = m_.items_.live_keys(d.n_items);
    }
  }
  // The hidden set, whole, when it changed since the last delta (version read first: a
  // change racing the cut is carried again by the next delta, and a set applied twice is
  // the same set).
  hidden_version_ = hidden_version();
  d.hidden_changed = hidden_version_ != m_.lineage_.hidden_published;
  if (d.hidden_changed) d.hidden = hidden_keys();
  d.position = LineagePosition{m_.lineage_.at.lineage, m_.lineage_.at.sequence + 1, fresh_id()};
  d.follows = m_.lineage_.at.link;
  return d;
}

std::vector<uint64_t> Model::StateAccess::hidden_keys() const {
  std::vector<uint64_t> keys;
  if (!m_.hidden_.any()) return keys;
  const uint32_t n = m_.items_.size();
  for (uint32_t r = 0; r < n; ++r)
    if (m_.hidden_.get(r) && m_.items_.is_live(r)) keys.push_back(m_.items_.key(r));
  return keys;
}

void Model::DeltaCut::commit() noexcept {
  // Only after success: a failed delta leaves the next one to carry its rows.
  committed_ = true;
  m_.lineage_.advance(contents_.position, generation_ + 1);
  if (contents_.hidden_changed) m_.lineage_.hidden_published = hidden_version_;
}

Model::DeltaCut::~DeltaCut() {
  if (!cut_ || committed_) return;
  // The next delta carries these evictions, or the live keys again if this one was to list
  // them (EvictionLog::give_back). Its rows stay marked >= lineage_.next_since.
  const EvictedKeys& e = contents_.evicted;
  std::lock_guard<std::mutex> log_lock(m_.eviction_log_.mutex());
  m_.eviction_log_.give_back(e.users, e.items, e.membership);
}

// ------------------------------------------------------------------------ import

void Model::Import::evictions(const EvictedKeys& evicted) {
  target_.evict_keys(evicted.users, evicted.items);
  if (evicted.membership) target_.keep_only(evicted.live_users, evicted.live_items);
}

void Model::Import::set_hidden(const std::vector<uint64_t>& keys) {
  Model& m = target_;
  std::vector<uint32_t> rows;
  for (uint64_t key : keys)
    if (const uint32_t r = m.items_.find(key); r != EmbeddingTable::kNotFound) rows.push_back(r);
  std::sort(rows.begin(), rows.end());
  std::lock_guard<std::mutex> lock(m.hidden_mutex_);
  bool changed = false;
  const uint32_t n = m.items_.size();
  size_t next = 0;
  for (uint32_t r = 0; r < n; ++r) {
    const bool hide = next < rows.size() && rows[next] == r;
    if (hide) ++next;
    if (hide || m.hidden_.get(r)) changed = m.hidden_.set(r, hide) || changed;
  }
  if (changed) m.hidden_version_.fetch_add(1, std::memory_order_release);
}

uint32_t Model::Import::row(const EmbeddingTable& table, const RowValues& v) {
  // The model's own table behind the read-only view the caller named.
  Model& m = target_;
  EmbeddingTable* t = &table == &m.users_ ? &m.users_
                      : &table == &m.items_ ? &m.items_
                      : &table == &m.user_features_.table ? &m.user_features_.table
                      : &table == &m.item_features_.table ? &m.item_features_.table
                      : nullptr;
  if (t == nullptr) throw std::logic_error("Model::Import::row: a table of another model");
  const uint32_t row = t->find_or_insert(v.key, v.name, /*random_init=*/false);
  const uint32_t dim = t->dim();
  std::memcpy(t->vector(row), v.vector, size_t(dim) * 4);
  if (t->has_accumulators()) {
    std::memcpy(t->accumulator(row), v.accumulator, size_t(t->has_row_accumulators() ? 1 : dim) * 4);
    t->bias_accumulator(row) = v.bias_accumulator;
  }
  if (t->has_inputs()) {
    std::memcpy(t->input(row), v.input, size_t(dim) * 4);
    if (t->has_accumulators()) t->input_accumulator(row) = v.input_accumulator;
  }
  t->bias(row) = v.bias;
  t->set_metadata(row, v.update_count, v.last_update);
  if (t == &m.items_) m.sync_item(row);  // the compact shadow is rebuilt from the rows, not stored
  return row;
}

void Model::Import::set_features(bool items, uint32_t id_row, const std::vector<uint32_t>& feature_rows) {
  (items ? target_.item_features_ : target_.user_features_).lists.set(id_row, feature_rows);
}

void Model::Import::set_tower(const float* parameters) {
  DenseTower& t = *target_.family_->tower();
  std::copy(parameters, parameters + t.parameter_count(), t.parameters());
}

void Model::Import::set_pool(const std::vector<uint32_t>& items, uint64_t written) noexcept {
  target_.sampler_.restore(items, written);
}

void Model::Import::set_sketch(bool items, const uint16_t* cells) noexcept {
  CountMinSketch& s = *(items ? target_.item_sketch_ : target_.user_sketch_);
  for (size_t i = 0; i < CountMinSketch::cells(); ++i) s.set(i, cells[i]);
}

void Model::Import::restore(const ModelCounters& c) {
  Model& m = target_;
  m.label_sum_.store(c.label_sum);
  m.weight_sum_.store(c.weight_sum);
  m.global_bias_.store(c.global_bias);
  m.updates_.store(c.updates);
  m.skipped_.store(c.skipped);
  m.calls_.store(c.calls);
  m.update_events_.store(c.update_events);
  m.evicted_users_.store(c.evicted_users);
  m.evicted_items_.store(c.evicted_items);
  m.deduplicated_.store(c.deduplicated);
  m.rate_limited_.store(c.rate_limited);
  m.advance_clock(c.clock);
  m.lineage_.source_position = c.source_position;
}

void Model::Import::continue_from(const LineagePosition& p, bool loaded) {
  target_.lineage_.at = p;
  if (loaded) {
    target_.lineage_.next_since = 1;
    target_.eviction_log_.start();
  }
}

void Model::Import::recycle() {
  std::lock_guard<std::mutex> maintenance(target_.maintenance_mutex_);
  target_.recycle();
}

}  // namespace rtrec
