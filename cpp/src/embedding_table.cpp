#include "rtrec/embedding_table.hpp"

#include <algorithm>
#include <functional>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "rtrec/random.hpp"

namespace rtrec {
namespace {

constexpr uint64_t kInitStream = 0x1417;
constexpr uint64_t kInputInitStream = 0x1418;

template <class T>
T* aligned_array(size_t n) {
  // 64-byte alignment: each padded vector starts on its own cache line.
  const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<T*>(p);
}

uint32_t padded(uint32_t dim) { return (dim + 15u) & ~15u; }

}  // namespace

EmbeddingTable::Chunk::Chunk(uint32_t stride, uint32_t accumulator_stride, bool with_accumulators, bool with_names,
                             bool with_inputs, SlabStorage& storage) {
  // Rows are initialised one by one as they are allocated; only the metadata arrays need
  // constructing here. On a throw, the destructor is not run, so free by hand. The arrays
  // that training and fit's bookkeeping read in random row order (vectors, biases,
  // accumulators, metadata) come from the table's slab storage, on huge pages once the
  // table is large, and are freed with it.
  auto floats = [&storage](size_t n) { return static_cast<float*>(storage.take(sizeof(float) * ((n + 15) & ~size_t(15)))); };
  try {
    vectors = floats(size_t(kChunkRows) * stride);
    bias = floats(kChunkRows);
    keys = aligned_array<uint64_t>(kChunkRows);
    if (with_accumulators) {
      accumulators = floats(size_t(kChunkRows) * accumulator_stride);
      // Row-wise (accumulator_stride 2): the bias accumulators sit beside the rows' ones.
      if (accumulator_stride != 2) bias_accumulator = floats(kChunkRows);
    }
    if (with_inputs) {
      inputs = floats(size_t(kChunkRows) * stride);
      if (with_accumulators) input_accumulators = floats(kChunkRows);
    }
    meta = static_cast<RowMeta*>(storage.take(sizeof(RowMeta) * kChunkRows));
    for (uint32_t i = 0; i < kChunkRows; ++i) new (&meta[i]) RowMeta();
    live = new std::atomic<uint8_t>[kChunkRows];
    live_slot = new uint32_t[kChunkRows];
    for (uint32_t i = 0; i < kChunkRows; ++i) live[i].store(0, std::memory_order_relaxed);
    if (with_names) names.reset(new std::string[kChunkRows]);
  } catch (...) {
    free_arrays();  // `names` is allocated last: nothing else to undo
    throw;
  }
}

EmbeddingTable::Chunk::~Chunk() { free_arrays(); }

void EmbeddingTable::Chunk::free_arrays() noexcept {
  // vectors, biases, accumulators and metadata belong to the table's SlabStorage (RowMeta
  // is atomics: nothing to destroy).
  std::free(keys);
  delete[] live;
  delete[] live_slot;
  vectors = accumulators = bias = bias_accumulator = inputs = input_accumulators = nullptr;
  keys = nullptr;
  meta = nullptr;
  live = nullptr;
  live_slot = nullptr;
}

EmbeddingTable::EmbeddingTable(const TableOptions& options)
    : dim_(options.dim),
      stride_(padded(options.dim)),
      with_accumulators_(options.with_accumulators),
      row_accumulators_(options.row_accumulators),
      accumulator_stride_(options.row_accumulators ? 2 : stride_),
      with_inputs_(options.with_inputs),
      init_std_(options.init_std),
      seed_(options.seed),
      side_(options.side) {
  if (options.dim == 0) throw std::invalid_argument("dim must be >= 1");
}

void EmbeddingTable::initialise_row(Chunk* c, uint32_t o, uint64_t key, bool random_init, double time) const noexcept {
  // The initial vector depends only on (seed, key): a row gets the same start whichever
  // thread creates it and in whatever order, which keeps multi-threaded fits comparable and
  // single-threaded ones bit-for-bit reproducible. Uniform(-a, a) with a = std*sqrt(3).
  float* v = c->vectors + size_t(o) * stride_;
  float* in = with_inputs_ ? c->inputs + size_t(o) * stride_ : nullptr;
  std::memset(v, 0, sizeof(float) * stride_);
  if (in != nullptr) std::memset(in, 0, sizeof(float) * stride_);
  if (random_init) initial_vectors(key, v, in);
  c->bias[o] = 0.0f;
  if (with_accumulators_) {
    std::memset(c->accumulators + size_t(o) * accumulator_stride_, 0, sizeof(float) * accumulator_stride_);
    if (!row_accumulators_) c->bias_accumulator[o] = 0.0f;
  }
  if (with_inputs_ && with_accumulators_) c->input_accumulators[o] = 0.0f;
  c->keys[o] = key;
  c->meta[o].update_count.store(0, std::memory_order_relaxed);
  c->meta[o].last_update.store(time, std::memory_order_relaxed);
  c->meta[o].generation.store(0, std::memory_order_relaxed);
}

void EmbeddingTable::initial_vectors(uint64_t key, float* vector, float* input) const noexcept {
  const float a = init_std_ * 1.7320508f;
  SplitMix64 rng(derive_seed(seed_, kInitStream, key));
  for (uint32_t k = 0; k < dim_; ++k) vector[k] = (2.0f * rng.uniform() - 1.0f) * a;
  if (input == nullptr || !with_inputs_) return;
  SplitMix64 input_rng(derive_seed(seed_, kInputInitStream, key));
  for (uint32_t k = 0; k < dim_; ++k) input[k] = (2.0f * input_rng.uniform() - 1.0f) * a;
}

namespace {
[[noreturn]] void throw_collision(const std::string& a, const std::string& b) {
  throw std::invalid_argument("string IDs '" + a + "' and '" + b +
                              "' have the same 64-bit hash; rename one of them");
}
}  // namespace

uint32_t EmbeddingTable::find_or_insert(uint64_t key, const std::string* name, bool random_init, double time) {
  const IdKind wanted = name != nullptr ? IdKind::kString : IdKind::kInt;
  // Fast path, lock-free: the ID is known. A stored name never changes after publication.
  uint32_t row = index_.find(key);
  if (row != kNotFound) {
    check_kind(name, 1);
    if (name != nullptr && *name != this->name(row)) throw_collision(*name, this->name(row));
    return row;
  }
  std::lock_guard<std::mutex> lock(insert_mutex_);
  check_kind(name, 1);  // under the lock: the kind cannot be set meanwhile
  const IdKind have = kind();
  row = index_.find(key);  // another writer may have inserted it meanwhile
  if (row != kNotFound) {
    if (name != nullptr && *name != this->name(row)) throw_collision(*name, this->name(row));
    return row;
  }
  if (have == IdKind::kUnset) kind_.store(static_cast<int>(wanted), std::memory_order_release);

  const bool reuse = !free_rows_.empty();
  row = reuse ? free_rows_.back() : size_.load(std::memory_order_relaxed);
  if (row >= kNotFound - 1) throw std::length_error("rtrec: table is full");
  Chunk* c = reuse ? chunk(row) : directory_.ensure(row >> kChunkShift, stride_, accumulator_stride_, with_accumulators_, name != nullptr,
                                                      with_inputs_, storage_);
  const uint32_t live = live_.load(std::memory_order_relaxed);
  LiveChunk* slot_chunk = live_rows_.ensure(live >> kChunkShift);
  index_.reserve_one();  // may throw: before anything is changed
  initialise_row(c, offset(row), key, random_init, time);
  if (name != nullptr) c->names[offset(row)] = *name;
  // Publish: row live and counted first (scans then see an initialised row), then the index
  // entry.
  c->live[offset(row)].store(1, std::memory_order_release);
  if (reuse) free_rows_.pop_back();
  else size_.store(row + 1, std::memory_order_release);
  slot_chunk->rows[offset(live)].store(row, std::memory_order_relaxed);
  c->live_slot[offset(row)] = live;
  live_.store(live + 1, std::memory_order_release);
  index_.insert(key, row);
  return row;
}

std::vector<uint32_t> EmbeddingTable::erase(const std::vector<uint32_t>& rows) {
  std::vector<uint32_t> erased;
  erased.reserve(rows.size());
  std::lock_guard<std::mutex> lock(insert_mutex_);
  for (uint32_t row : rows) {
    if (row >= size_.load(std::memory_order_relaxed) || !is_live(row)) continue;
    if (index_.erase(key(row)) != row) continue;  // cannot happen: a live row is indexed
    chunk(row)->live[offset(row)].store(0, std::memory_order_release);
    // Swap-remove from the list of live rows: the last one takes its slot.
    const uint32_t last_slot = live_.load(std::memory_order_relaxed) - 1;
    const uint32_t slot = chunk(row)->live_slot[offset(row)];
    const uint32_t moved = live_rows_.get(last_slot >> kChunkShift)->rows[offset(last_slot)].load(std::memory_order_relaxed);
    live_rows_.get(slot >> kChunkShift)->rows[offset(slot)].store(moved, std::memory_order_relaxed);
    chunk(moved)->live_slot[offset(moved)] = slot;
    live_.store(last_slot, std::memory_order_release);
    erased.push_back(row);
  }
  if (!erased.empty()) erased_any_.store(true, std::memory_order_relaxed);
  index_.collect();
  return erased;
}

void EmbeddingTable::reserve_free(size_t more) {
  std::lock_guard<std::mutex> lock(insert_mutex_);
  free_rows_.reserve(free_rows_.size() + more);
}

void EmbeddingTable::release(const std::vector<uint32_t>& rows) noexcept {
  std::lock_guard<std::mutex> lock(insert_mutex_);
  free_rows_.insert(free_rows_.end(), rows.begin(), rows.end());  // reserved by the caller
  // Lowest rows last (reused first): live rows stay packed towards the front.
  std::sort(free_rows_.begin(), free_rows_.end(), std::greater<uint32_t>());
}

void EmbeddingTable::check_kind(const std::string* names, size_t n) const {
  const IdKind have = kind();
  if (n == 0 || have == IdKind::kUnset || (have == IdKind::kString) == (names != nullptr)) return;
  const bool strings = have == IdKind::kString;
  throw IdKindError(std::string("this model's ") + side_ + " IDs are " + (strings ? "str" : "int") + ", got " +
                    (strings ? "int" : "str"));
}

void EmbeddingTable::check_batch(const uint64_t* keys, const std::string* names, size_t n) const {
  check_kind(names, n);
  if (names == nullptr) return;
  // Two distinct strings with one hash, inside the batch or against the table.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  for (size_t j = 1; j < n; ++j) {
    const size_t a = order[j - 1], b = order[j];
    if (keys[a] == keys[b] && names[a] != names[b]) throw_collision(names[a], names[b]);
  }
  for (size_t i = 0; i < n; ++i) {
    const uint32_t row = find(keys[i]);
    if (row != kNotFound && name(row) != names[i]) throw_collision(names[i], name(row));
  }
}

uint64_t EmbeddingTable::memory_bytes() const noexcept {
  const uint64_t chunks = directory_.allocated();
  // Per row: vector, bias, key, metadata, live flag, its slot in the live list and that slot.
  uint64_t per_row = sizeof(float) * stride_ + sizeof(float) + sizeof(uint64_t) + sizeof(RowMeta) + 1 + 2 * sizeof(uint32_t);
  if (with_accumulators_) per_row += sizeof(float) * accumulator_stride_ + (row_accumulators_ ? 0 : sizeof(float));
  if (with_inputs_) per_row += sizeof(float) * (stride_ + (with_accumulators_ ? 1 : 0));
  if (kind() == IdKind::kString) per_row += sizeof(std::string);
  return chunks * kChunkRows * per_row + index_.memory_bytes();
}

std::vector<uint32_t> EmbeddingTable::live_rows(uint32_t n) const {
  std::vector<uint32_t> rows;
  rows.reserve(live_count());
  for (uint32_t i = 0; i < n; ++i)
    if (is_live(i)) rows.push_back(i);
  return rows;
}

std::vector<uint32_t> EmbeddingTable::rows_marked_since(uint32_t n, uint32_t generation) const {
  std::vector<uint32_t> rows;
  for (uint32_t i = 0; i < n; ++i)
    if (this->generation(i) >= generation && is_live(i)) rows.push_back(i);
  return rows;
}

std::vector<uint64_t> EmbeddingTable::live_keys(uint32_t n) const {
  std::vector<uint64_t> keys;
  for (uint32_t r : live_rows(n)) keys.push_back(key(r));
  return keys;
}

}  // namespace rtrec
