// Sparse, collisionless embedding table: 64-bit ID -> row {vector, bias, optimizer state,
// update count, last-update time}. New IDs get rows on first sight; nothing is sized up front.
//
// Concurrency contract:
//  * structure (index, row allocation, chunks, names) changes only under `insert_mutex_`;
//  * lookups, row counts and row access never lock (see ConcurrentIndex / ChunkDirectory);
//  * row *values* are read and written by many threads without locks (Hogwild by design).
// A row is fully initialised before its count and index entry are published, so a reader
// never sees a half-built row. Rows live in 1024-row chunks that never move.
//
// Rows can be erased (eviction): the key leaves the index at once and the row is marked
// free, but it is handed back for reuse (release()) only by the owner, once no reader can
// still hold it (see EpochDomain) and the owner has dropped its references to the row.
// Readers that scan rows by number (top-K, sampling, saving) skip rows that are not live.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rtrec/chunk_directory.hpp"
#include "rtrec/concurrent_index.hpp"
#include "rtrec/huge_pages.hpp"

namespace rtrec {

enum class IdKind : int { kUnset = 0, kInt = 1, kString = 2 };

// The ID-kind rule, owned here once: the IDs of one table (a model's users, its items) are
// all integers or all strings, the first ID deciding. Every path that takes IDs (training,
// predict, recommend, side features, vector export, deltas) checks it with
// EmbeddingTable::check_kind before changing anything, so the error reads the same
// everywhere: "this model's user IDs are int, got str". (The binding maps it to TypeError.)
class IdKindError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct TableOptions {
  uint32_t dim = 32;
  bool with_accumulators = false;  // AdaGrad keeps accumulators: per coordinate, or
  bool row_accumulators = false;   // one per row (row-wise AdaGrad: accumulator(row) is 1 float)
  float init_std = 0.01f;
  uint64_t seed = 0;
  // A second vector per row, for IDs that play two roles: a two_tower item has an output
  // vector (scored, `vector`) and an input vector (pooled into the encodings of the users who
  // consumed it, `input`), with one AdaGrad accumulator for the whole row. Rows share one
  // key, one life.
  bool with_inputs = false;
  // What the IDs are, for messages: "user", "item".
  const char* side = "ID";
};

class EmbeddingTable {
 public:
  static constexpr uint32_t kChunkShift = 10;
  static constexpr uint32_t kChunkRows = 1u << kChunkShift;
  static constexpr uint32_t kNotFound = ConcurrentIndex::kNotFound;

  explicit EmbeddingTable(const TableOptions& options);

  uint32_t dim() const noexcept { return dim_; }
  // Floats per stored vector: dim rounded up to 16 (one 64-byte cache line) and zero padded,
  // so every SIMD loop runs whole vectors and rows never share a cache line.
  uint32_t stride() const noexcept { return stride_; }
  bool has_accumulators() const noexcept { return with_accumulators_; }
  // Row-wise AdaGrad: one accumulator float per row (else stride floats per row).
  bool has_row_accumulators() const noexcept { return with_accumulators_ && row_accumulators_; }
  bool has_inputs() const noexcept { return with_inputs_; }

  // Rows [0, size()) have been allocated; all are live unless some were erased.
  uint32_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  // Rows that hold an ID now.
  uint32_t live_count() const noexcept { return live_.load(std::memory_order_acquire); }
  bool is_live(uint32_t row) const noexcept { return chunk(row)->live[offset(row)].load(std::memory_order_acquire) != 0; }
  // The live flags of a whole chunk (kChunkRows bytes). A scan that reads them before the
  // values, while pinned, only uses rows that cannot be recycled under it.
  void live_flags(uint32_t chunk_index, uint8_t* out) const noexcept {
    const std::atomic<uint8_t>* live = directory_.get(chunk_index)->live;
    for (uint32_t r = 0; r < kChunkRows; ++r) out[r] = live[r].load(std::memory_order_acquire);
  }
  // A live row by position in [0, live_count()), for sampling uniformly among live rows
  // after evictions (lock-free; a concurrent erase may leave a stale entry: check is_live).
  uint32_t live_row(uint32_t i) const noexcept {
    return live_rows_.get(i >> kChunkShift)->rows[offset(i)].load(std::memory_order_relaxed);
  }
  // True once any row was erased: until then every row below size() is live, and hot loops
  // skip the liveness check.
  bool has_erased() const noexcept { return erased_any_.load(std::memory_order_relaxed); }
  IdKind kind() const noexcept { return static_cast<IdKind>(kind_.load(std::memory_order_acquire)); }
  // Among rows [0, n): the live ones, those of them marked at or after `generation` (see
  // mark()), and the keys of the live ones, in row order. Callers are pinned.
  std::vector<uint32_t> live_rows(uint32_t n) const;
  std::vector<uint32_t> rows_marked_since(uint32_t n, uint32_t generation) const;
  std::vector<uint64_t> live_keys(uint32_t n) const;

  // Lock-free. kNotFound when the key has no row.
  uint32_t find(uint64_t key) const noexcept { return index_.find(key); }

  // Returns the row for `key`, creating it if needed. `name` is the original string for
  // string IDs (nullptr for integer IDs): it is stored so the ID can be returned, and it is
  // compared on every string insert so that two strings with one hash are an error, not a
  // silent merge. Throws std::invalid_argument on such a collision or on an int/str mix.
  // `random_init` false leaves a new row's values zero, for callers that overwrite them at
  // once (loading snapshots and deltas), which saves drawing values that are thrown away.
  // A new row's last-update time is `time` (so that expiry never takes a row that is being
  // created for an event as the oldest one).
  uint32_t find_or_insert(uint64_t key, const std::string* name, bool random_init = true, double time = 0.0);

  // Erases the live rows among `rows` (their keys leave the index; the rows stay allocated
  // until release()); returns those actually erased. Thread-safe against inserts.
  std::vector<uint32_t> erase(const std::vector<uint32_t>& rows);
  // Makes erased rows available to new IDs, only once no reader can hold them. Call
  // reserve_free(rows.size()) first: release itself does not allocate.
  void reserve_free(size_t more);
  void release(const std::vector<uint32_t>& rows) noexcept;

  // Throws std::invalid_argument if inserting these would mix kinds or collide; called on a
  // whole batch before anything is inserted. `names` may be nullptr (integer IDs).
  void check_batch(const uint64_t* keys, const std::string* names, size_t n) const;
  // The ID-kind rule (see IdKindError): throws IdKindError when n IDs, strings if `names`
  // is set and integers if not, cannot join this table. No ID yet: either kind joins.
  void check_kind(const std::string* names, size_t n) const;

  // The random start of a row of `key` (dim floats; `input`: its input vector too, tables with
  // inputs only): what find_or_insert with random_init gives it, a function of (seed, key).
  void initial_vectors(uint64_t key, float* vector, float* input) const noexcept;

  float* vector(uint32_t row) const noexcept { return chunk(row)->vectors + offset(row) * stride_; }
  float* accumulator(uint32_t row) const noexcept { return chunk(row)->accumulators + offset(row) * accumulator_stride_; }
  float* input(uint32_t row) const noexcept { return chunk(row)->inputs + offset(row) * stride_; }
  float& input_accumulator(uint32_t row) const noexcept { return chunk(row)->input_accumulators[offset(row)]; }
  float& bias(uint32_t row) const noexcept { return chunk(row)->bias[offset(row)]; }
  // Row-wise tables keep a row's two accumulators side by side (one cache line per step,
  // not two): accumulator(row)[1] is the bias's.
  float& bias_accumulator(uint32_t row) const noexcept {
    return row_accumulators_ ? chunk(row)->accumulators[2 * size_t(offset(row)) + 1] : chunk(row)->bias_accumulator[offset(row)];
  }
  uint64_t key(uint32_t row) const noexcept { return chunk(row)->keys[offset(row)]; }
  const std::string& name(uint32_t row) const noexcept { return chunk(row)->names[offset(row)]; }

  // Row metadata. Counters are relaxed atomics written with load+store (no lock prefix):
  // concurrent updates of one row may lose a count, like Hogwild loses a gradient.
  // Records, after a change to the row's values, that the row changed in the current delta
  // generation. A delta cut between reading `current` and storing the mark could scan the
  // row just before the store and miss it; so the mark is stored and `current` read again
  // (sequentially consistent: store before load), and re-marked if a cut happened
  // meanwhile. The change then lands in this delta or the next, never in neither.
  void mark(uint32_t row, const std::atomic<uint32_t>& current) const noexcept {
    std::atomic<uint32_t>& slot = meta(row).generation;
    uint32_t g = current.load(std::memory_order_seq_cst);
    for (;;) {
      slot.store(g, std::memory_order_seq_cst);
      const uint32_t now = current.load(std::memory_order_seq_cst);
      if (now == g) return;
      g = now;
    }
  }
  // mark() for many rows with one fence: all are stored, then the generation is read again
  // once; if a cut happened meanwhile, every row is marked again with the full protocol.
  // (A seq_cst store per row costs a locked instruction each.) kNotFound rows are skipped.
  void mark_many(const uint32_t* rows, size_t n, const std::atomic<uint32_t>& current) const noexcept {
    const uint32_t g = current.load(std::memory_order_seq_cst);
    for (size_t k = 0; k < n; ++k)
      if (rows[k] != kNotFound) meta(rows[k]).generation.store(g, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (current.load(std::memory_order_seq_cst) == g) return;
    for (size_t k = 0; k < n; ++k)
      if (rows[k] != kNotFound) mark(rows[k], current);
  }
  // A plain mark; the caller orders it against cuts itself (Model::mark_trained).
  void mark_relaxed(uint32_t row, uint32_t generation) const noexcept {
    meta(row).generation.store(generation, std::memory_order_relaxed);
  }
  uint32_t generation(uint32_t row) const noexcept { return meta(row).generation.load(std::memory_order_seq_cst); }

  void touch(uint32_t row, double time, uint32_t generation) const noexcept {
    RowMeta& m = meta(row);
    m.generation.store(generation, std::memory_order_relaxed);
    m.update_count.store(m.update_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    m.last_update.store(time, std::memory_order_relaxed);
  }
  void set_metadata(uint32_t row, uint32_t update_count, double last_update) const noexcept {
    meta(row).update_count.store(update_count, std::memory_order_relaxed);
    meta(row).last_update.store(last_update, std::memory_order_relaxed);
  }
  uint32_t update_count(uint32_t row) const noexcept { return meta(row).update_count.load(std::memory_order_relaxed); }
  double last_update(uint32_t row) const noexcept { return meta(row).last_update.load(std::memory_order_relaxed); }

  // Bulk paths (fit) look up and touch rows in random order; these hide the cache misses.
  void prefetch_key(uint64_t key) const noexcept { index_.prefetch(key); }
  void prefetch_metadata(uint32_t row) const noexcept { __builtin_prefetch(&meta(row), 1, 3); }

  // Hint that `row` will be read and written soon. Training visits rows in random order, so
  // without this every event waits on several cache misses in turn; issued a few events
  // ahead, the misses overlap with useful work.
  void prefetch(uint32_t row) const noexcept {
    Chunk* c = chunk(row);
    const uint32_t o = offset(row);
    const char* v = reinterpret_cast<const char*>(c->vectors + size_t(o) * stride_);
    for (uint32_t b = 0; b < stride_ * sizeof(float); b += 64) __builtin_prefetch(v + b, 1, 3);
    __builtin_prefetch(c->bias + o, 1, 3);
    if (with_accumulators_) {
      const char* a = reinterpret_cast<const char*>(c->accumulators + size_t(o) * accumulator_stride_);
      for (uint32_t b = 0; b < accumulator_stride_ * sizeof(float); b += 64) __builtin_prefetch(a + b, 1, 3);
      if (!row_accumulators_) __builtin_prefetch(c->bias_accumulator + o, 1, 3);
    }
  }
  // prefetch() without the bias: a BPR step never reads the user's bias.
  void prefetch_vector(uint32_t row) const noexcept {
    Chunk* c = chunk(row);
    const uint32_t o = offset(row);
    const char* v = reinterpret_cast<const char*>(c->vectors + size_t(o) * stride_);
    for (uint32_t b = 0; b < stride_ * sizeof(float); b += 64) __builtin_prefetch(v + b, 1, 3);
    if (with_accumulators_) {
      const char* a = reinterpret_cast<const char*>(c->accumulators + size_t(o) * accumulator_stride_);
      for (uint32_t b = 0; b < accumulator_stride_ * sizeof(float); b += 64) __builtin_prefetch(a + b, 1, 3);
    }
  }
  // The same for a row's input vector (and its accumulator).
  void prefetch_input(uint32_t row) const noexcept {
    Chunk* c = chunk(row);
    const uint32_t o = offset(row);
    const char* v = reinterpret_cast<const char*>(c->inputs + size_t(o) * stride_);
    for (uint32_t b = 0; b < stride_ * sizeof(float); b += 64) __builtin_prefetch(v + b, 1, 3);
    if (with_accumulators_) __builtin_prefetch(c->input_accumulators + o, 1, 3);
  }

  // Contiguous block of vectors for rows [chunk_index*kChunkRows, ...): top-K scans whole chunks.
  const float* chunk_vectors(uint32_t chunk_index) const noexcept { return directory_.get(chunk_index)->vectors; }
  const float* chunk_biases(uint32_t chunk_index) const noexcept { return directory_.get(chunk_index)->bias; }

  uint64_t memory_bytes() const noexcept;

 private:
  // Metadata of a row, together so that touching a row costs one cache miss, not two.
  struct RowMeta {
    std::atomic<double> last_update{0.0};
    std::atomic<uint32_t> update_count{0};
    std::atomic<uint32_t> generation{0};  // last delta generation in which the row changed
  };

  struct Chunk {
    Chunk(uint32_t stride, uint32_t accumulator_stride, bool with_accumulators, bool with_names, bool with_inputs,
          SlabStorage& storage);
    ~Chunk();
    void free_arrays() noexcept;
    float* vectors = nullptr;
    float* accumulators = nullptr;
    float* bias = nullptr;
    float* bias_accumulator = nullptr;
    float* inputs = nullptr;              // with_inputs only
    float* input_accumulators = nullptr;  // with_inputs and accumulators: one per row
    uint64_t* keys = nullptr;
    RowMeta* meta = nullptr;
    std::atomic<uint8_t>* live = nullptr;  // 1 while the row holds an ID
    uint32_t* live_slot = nullptr;         // writer-only: the row's position in live_rows_
    std::unique_ptr<std::string[]> names;
  };

  RowMeta& meta(uint32_t row) const noexcept { return chunk(row)->meta[offset(row)]; }

  Chunk* chunk(uint32_t row) const noexcept { return directory_.get(row >> kChunkShift); }
  static uint32_t offset(uint32_t row) noexcept { return row & (kChunkRows - 1); }
  void initialise_row(Chunk* c, uint32_t o, uint64_t key, bool random_init, double time) const noexcept;

  const uint32_t dim_;
  const uint32_t stride_;
  const bool with_accumulators_;
  const bool row_accumulators_;
  const uint32_t accumulator_stride_;  // stride_, or 2 for row-wise accumulators (row's, bias's)
  const bool with_inputs_;
  const float init_std_;
  const uint64_t seed_;
  const char* const side_;

  std::mutex insert_mutex_;
  std::atomic<int> kind_{static_cast<int>(IdKind::kUnset)};
  std::atomic<uint32_t> size_{0};
  std::atomic<uint32_t> live_{0};
  std::atomic<bool> erased_any_{false};
  std::vector<uint32_t> free_rows_;  // under insert_mutex_: released rows, reused first
  // The live rows, densely (positions [0, live_)), kept by swap-remove under insert_mutex_.
  struct LiveChunk {
    std::atomic<uint32_t> rows[kChunkRows];
  };
  ChunkDirectory<LiveChunk> live_rows_;
  ConcurrentIndex index_;
  SlabStorage storage_;  // the chunks' vector arrays (outlives directory_: declared first)
  ChunkDirectory<Chunk> directory_;
};

}  // namespace rtrec
