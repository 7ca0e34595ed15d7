// The model's side of persistence: the state a snapshot or delta holds, read and written
// back through the classes below, and the lineage protocol (cuts, commits, aborts) that
// keeps deltas complete while other threads train. The file format (snapshot.cpp and its
// section files) knows only bytes and talks to the model through these and Model's public
// views; the model knows nothing of the format. Implemented in model_persistence.cpp.
//
// The lineage: every change marks its rows with the current generation (EmbeddingTable::
// mark); a delta cuts a new generation and holds the rows marked since the previous cut.
// The deltas of one model are numbered 1, 2, ... and each is applicable to any copy at the
// previous number, whether that copy followed every delta or loaded a full snapshot taken
// since (a snapshot records the number of the last delta before it). Each delta names the
// delta (or lineage start) it follows, so two writers that continue one lineage from the
// same point cannot be mixed by a follower.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "rtrec/model.hpp"

namespace rtrec {

// The scalar state a file carries besides rows.
struct ModelCounters {
  double label_sum = 0.0, weight_sum = 0.0;
  float global_bias = 0.0f;
  uint64_t updates = 0, skipped = 0, calls = 0, update_events = 0;
  uint64_t evicted_users = 0, evicted_items = 0;
  uint64_t deduplicated = 0, rate_limited = 0;  // noisy-feedback counters (format version >= 5)
  double clock = 0.0;
  std::string source_position;  // see Model::set_source_position
};

// A model's place in its lineage of deltas.

// Keys evicted since the previous delta (empty in full snapshots). When the trainer's
// eviction log overflowed (see Model::log_evictions), `membership` is set and `live_users` /
// `live_items` hold every live key instead: a replica drops every key not in them.
struct EvictedKeys {
  std::vector<uint64_t> users, items;
  bool membership = false;
  std::vector<uint64_t> live_users, live_items;
};

// One row's stored values, for Model::Import::row. The arrays are raw bytes (floats in the
// machine's order, possibly unaligned): `vector` dim floats, `accumulator` the table's
// accumulator floats (AdaGrad only: dim, or 1 for row-wise), `input` dim floats (tables
// with input vectors only).
struct RowValues {
  uint64_t key = 0;
  const std::string* name = nullptr;  // string IDs only
  uint32_t update_count = 0;
  double last_update = 0.0;
  float bias = 0.0f, bias_accumulator = 0.0f, input_accumulator = 0.0f;
  const void* vector = nullptr;
  const void* accumulator = nullptr;
  const void* input = nullptr;
};

// Read-only access to everything a file holds, for as long as it lives: holds the model's
// persistence lock (one save or apply at a time, and the lock that guards the lineage and
// the source position). Values are read while other threads may train: a file is
// Hogwild-consistent, like training itself. The base of the three classes below.
class Model::StateAccess {
 public:
  StateAccess(const StateAccess&) = delete;
  StateAccess& operator=(const StateAccess&) = delete;

  const Model& model() const noexcept { return m_; }
  LineagePosition position() const noexcept;
  ModelCounters counters() const;  // as they are now

  // Side features: the feature table of a side, whether the side has ever had feature
  // lists, and the list of an ID row (null: none; callers are pinned).
  const EmbeddingTable& feature_table(bool items) const noexcept;
  bool has_feature_lists(bool items) const noexcept;
  const FeatureList* feature_list(bool items, uint32_t id_row) const noexcept;
  // The item rows a user has consumed (appended to `out`, unordered).
  void seen_items(uint32_t user, std::vector<uint32_t>& out) const { m_.seen_.collect(user, out); }
  // two_tower: the tower (null for mf) and a user's remembered positives that are still
  // live items, most recent first, into `out` (config().history entries); returns how many.
  const DenseTower* tower() const noexcept;
  uint32_t history(uint32_t user, uint32_t* out) const noexcept;
  // The popularity-negative pool: how many items were ever written to it, and slot i.
  uint64_t pool_written() const noexcept { return m_.sampler_.written(); }
  uint32_t pool_item(uint64_t i) const noexcept { return m_.sampler_.item(i); }
  // The keys of the hidden items (callers are pinned), and the version of that set (bumped
  // by every change; a delta carries the set when it changed since the last delta).
  std::vector<uint64_t> hidden_keys() const;
  uint64_t hidden_version() const noexcept { return m_.hidden_version_.load(std::memory_order_acquire); }
  // A side's admission counts (null unless min_count > 1).
  const CountMinSketch* sketch(bool items) const noexcept { return (items ? m_.item_sketch_ : m_.user_sketch_).get(); }

 protected:
  explicit StateAccess(const Model& model) : m_(model), lock_(model.lineage_.mutex) {}

  const Model& m_;

 private:
  std::lock_guard<std::mutex> lock_;
};

// A full snapshot being written. The first snapshot starts the lineage: deltas from then on
// hold only what changed after this cut. If the snapshot is not committed (nothing was
// written), the lineage is taken back, so no delta can follow a snapshot that does not
// exist. Later snapshots do not cut: replicas that follow the deltas must still get every
// change, and a copy loaded from this file may apply the next delta as well (it repeats
// rows the file already has, with values as new or newer; deltas are idempotent).
class Model::SnapshotCut : public Model::StateAccess {
 public:
  explicit SnapshotCut(const Model& model);
  ~SnapshotCut();
  void commit() noexcept { committed_ = true; }

 private:
  bool started_lineage_ = false;
  bool committed_ = false;
};

// What the next delta holds, chosen by DeltaCut::cut().
struct DeltaContents {
  uint32_t since = 0;                  // rows marked at or after this generation (feature tables too)
  uint32_t n_users = 0, n_items = 0;   // table sizes at the cut: rows beyond wait for the next delta
  std::vector<uint32_t> users, items;  // live rows changed since the previous cut
  EvictedKeys evicted;
  bool hidden_changed = false;       // the hidden set changed since the last delta:
  std::vector<uint64_t> hidden;      // then the whole set (a follower replaces its own)
  LineagePosition position;  // this delta's: sequence = the previous one's + 1, its own link
  uint64_t follows = 0;      // the link it follows
};

// The next delta being written. cut(), called pinned (EpochGuard) so the rows it lists are
// not recycled, closes the current generation and takes the rows changed since the
// previous cut and the keys evicted since, under the eviction log's lock so that no
// eviction falls between the two (see Model::evict_rows). commit(), once the file is
// durable, advances the lineage; a cut that is not committed is undone: the next delta
// carries its evictions (or the live keys again, if this one was to list them) and its
// rows, which stay marked at or after the previous cut.
class Model::DeltaCut : public Model::StateAccess {
 public:
  explicit DeltaCut(const Model& model) : StateAccess(model) {}
  ~DeltaCut();

  // A delta needs a base: a full snapshot saved or loaded first.
  bool has_lineage() const noexcept { return m_.lineage_.started(); }
  const DeltaContents& cut();
  void commit() noexcept;

 private:
  bool cut_ = false, committed_ = false;
  uint32_t generation_ = 0;  // the generation this cut closed
  uint64_t hidden_version_ = 0;  // the hidden set's version this cut took
  DeltaContents contents_;
};

// A snapshot or delta being applied to this model (load applies its file to a new model).
// The caller checks everything that could fail before the first change, so that a refused
// file changes nothing, and stays pinned while it imports rows; rows are overwritten while
// readers go on (Hogwild-consistent, like training).
class Model::Import : public Model::StateAccess {
 public:
  explicit Import(Model& model) : StateAccess(model), target_(model) {}

  // A delta's evictions, applied before its rows (a key evicted and then seen again before
  // the cut comes back as a row). Unknown keys are skipped. Not logged: the trainer's delta
  // already carries them to every follower, and a replica that never publishes would keep
  // the log forever. `membership`: also evicts every row whose key is not listed as live.
  void evictions(const EvictedKeys& evicted);
  // Replaces the hidden set with these keys (unknown keys are skipped).
  void set_hidden(const std::vector<uint64_t>& keys);

  // Writes a row's values into a table (users, items, or a side's feature table): a new ID
  // gets a row, a known one is overwritten (a delta carries absolute values, so applying
  // one twice changes nothing). Returns the row. The caller has checked the ID's kind and
  // name against the table (EmbeddingTable::check_batch).
  uint32_t row(const EmbeddingTable& table, const RowValues& values);
  void add_seen(uint32_t user, uint32_t item) { target_.seen_.add(user, item); }
  // The feature rows of an ID row (replacing its list; empty: none).
  void set_features(bool items, uint32_t id_row, const std::vector<uint32_t>& feature_rows);
  // A two_tower user's history, oldest first.
  void set_history(uint32_t user, const uint32_t* items, uint32_t n);
  // A two_tower model's tower parameters (tower()->parameter_count() floats).
  void set_tower(const float* parameters);
  // The popularity-negative pool (item rows, at most kPoolSize) and how many were written.
  void set_pool(const std::vector<uint32_t>& items, uint64_t written) noexcept;
  // Admission counts of one side (CountMinSketch::cells() values), for models with sketches.
  void set_sketch(bool items, const uint16_t* cells) noexcept;

  // The file's counters.
  void restore(const ModelCounters& counters);
  // The model continues the lineage at the file's position. `loaded` (a full snapshot into
  // a new model): its next delta holds what changes after now (restored rows are unmarked),
  // and evictions are logged for it from now on.
  void continue_from(const LineagePosition& position, bool loaded);
  // After a delta is applied, called unpinned: the rows its evictions took are recycled once
  // no reader holds them (now, unless another thread is mid-call). A replica follows the
  // trainer's evictions and makes none of its own: its ttl / max_rows apply only if it
  // trains itself.
  void recycle();

 private:
  Model& target_;
};

}  // namespace rtrec
