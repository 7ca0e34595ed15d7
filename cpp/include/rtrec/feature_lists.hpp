// Side features of the IDs of one table: for each ID row, the rows of its features in a
// separate feature table, and the scale 1/sqrt(n) that keeps a sum of n feature vectors at
// the norm of one (independent vectors), so many features do not blow up the score.
//
// Readers (scoring, training, top-K) load a row's list pointer without locks; a writer
// (set_features, under the owner's mutex) builds a new list and publishes it with a
// release store, and the old list is retired until no reader can hold it (EpochDomain).
// Per chunk of 1024 rows a count of rows with features lets the top-K scan skip chunks
// that have none.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "rtrec/chunk_directory.hpp"
#include "rtrec/epoch.hpp"

namespace rtrec {

struct FeatureList {
  uint32_t size;
  float scale;       // 1 / sqrt(size)
  uint32_t rows[1];  // really `size` entries: rows of the feature table

  static FeatureList* make(const std::vector<uint32_t>& rows) {
    void* p = std::malloc(sizeof(FeatureList) + sizeof(uint32_t) * (rows.size() > 0 ? rows.size() - 1 : 0));
    if (p == nullptr) throw std::bad_alloc();
    FeatureList* list = static_cast<FeatureList*>(p);
    list->size = static_cast<uint32_t>(rows.size());
    list->scale = 1.0f / std::sqrt(static_cast<float>(rows.size()));
    std::memcpy(list->rows, rows.data(), sizeof(uint32_t) * rows.size());
    return list;
  }
};

class FeatureLists {
 public:
  static constexpr uint32_t kChunkRows = 1024;  // as EmbeddingTable

  FeatureLists() = default;
  ~FeatureLists() {
    for (uint32_t c = 0; c < directory_.allocated(); ++c)
      for (auto& l : directory_.get(c)->lists) std::free(l.load(std::memory_order_relaxed));
  }
  FeatureLists(const FeatureLists&) = delete;
  FeatureLists& operator=(const FeatureLists&) = delete;

  // True once any row has had features: until then hot paths skip every lookup.
  bool any() const noexcept { return any_.load(std::memory_order_acquire); }

  // Lock-free; null when the row has no features. Callers are pinned.
  const FeatureList* get(uint32_t row) const noexcept {
    const Chunk* c = chunk_of(row);
    return c == nullptr ? nullptr : c->lists[row % kChunkRows].load(std::memory_order_acquire);
  }
  // Hint that get(row) comes soon (the slot holding the list pointer).
  void prefetch(uint32_t row) const noexcept {
    const Chunk* c = chunk_of(row);
    if (c == nullptr) return;
    const std::atomic<FeatureList*>& slot = c->lists[row % kChunkRows];
    __builtin_prefetch(&slot, 0, 3);
  }
  // Rows of chunk `chunk` (EmbeddingTable numbering) with features.
  uint32_t count_in_chunk(uint32_t chunk) const noexcept {
    const Chunk* c = chunk < directory_.allocated() ? directory_.get(chunk) : nullptr;
    return c == nullptr ? 0 : c->count.load(std::memory_order_relaxed);
  }

  // Keep the inverse index too (feature row -> ID rows), for rows_with_all. Call before the
  // first set().
  void index_rows() noexcept { indexed_ = true; }

  // Replaces the row's list (an empty `rows` removes it).
  void set(uint32_t row, const std::vector<uint32_t>& rows) {
    std::lock_guard<std::mutex> lock(mutex_);
    FeatureList* fresh = rows.empty() ? nullptr : FeatureList::make(rows);
    Chunk* c;
    try {
      c = directory_.ensure(row / kChunkRows);
      retired_.reserve_one();
      if (indexed_) reindex(row, c->lists[row % kChunkRows].load(std::memory_order_relaxed), rows);
    } catch (...) {
      std::free(fresh);
      throw;
    }
    FeatureList* old = c->lists[row % kChunkRows].exchange(fresh, std::memory_order_acq_rel);
    if (fresh != nullptr && old == nullptr) c->count.fetch_add(1, std::memory_order_relaxed);
    if (fresh == nullptr && old != nullptr) c->count.fetch_sub(1, std::memory_order_relaxed);
    if (fresh != nullptr) any_.store(true, std::memory_order_release);
    if (old != nullptr) retired_.retire([old] { std::free(old); });
    retired_.collect();
  }

  // The ID rows (ascending) that carry every feature row in `features` (index_rows() only).
  // Costs the length of the rarest feature's list, not a scan of the IDs. A reader may see
  // a row listed whose features change meanwhile; callers check what they return.
  std::vector<uint32_t> rows_with_all(const std::vector<uint32_t>& features) const {
    std::vector<uint32_t> out;
    if (features.empty()) return out;
    std::shared_lock<std::shared_mutex> lock(index_mutex_);
    std::vector<const std::vector<uint32_t>*> lists;
    for (uint32_t f : features) {
      const auto it = postings_.find(f);
      if (it == postings_.end()) return out;  // nobody carries it
      lists.push_back(&it->second);
    }
    std::sort(lists.begin(), lists.end(), [](auto a, auto b) { return a->size() < b->size(); });
    for (uint32_t row : *lists.front()) {
      bool all = true;
      for (size_t k = 1; k < lists.size() && all; ++k) all = std::binary_search(lists[k]->begin(), lists[k]->end(), row);
      if (all) out.push_back(row);
    }
    return out;
  }

  // Bytes of the inverse index (the lists themselves are small and counted by their owner).
  uint64_t index_bytes() const {
    std::shared_lock<std::shared_mutex> lock(index_mutex_);
    uint64_t bytes = 0;
    for (const auto& p : postings_) bytes += 48 + p.second.capacity() * sizeof(uint32_t);
    return bytes;
  }

 private:
  // Moves `row` from the postings of its old features to those of `fresh` (mutex_ held).
  // Rows usually arrive in ascending order (new IDs), so an insert is mostly an append.
  void reindex(uint32_t row, const FeatureList* old, const std::vector<uint32_t>& fresh) {
    std::unique_lock<std::shared_mutex> lock(index_mutex_);
    for (uint32_t f : fresh) {  // every allocation happens before any change
      std::vector<uint32_t>& list = postings_[f];
      if (list.size() == list.capacity()) list.reserve(std::max<size_t>(8, 2 * list.capacity()));
    }
    if (old != nullptr) {
      for (uint32_t k = 0; k < old->size; ++k) {
        std::vector<uint32_t>& list = postings_[old->rows[k]];
        const auto at = std::lower_bound(list.begin(), list.end(), row);
        if (at != list.end() && *at == row) list.erase(at);
      }
    }
    for (uint32_t f : fresh) {
      std::vector<uint32_t>& list = postings_[f];
      const auto at = std::lower_bound(list.begin(), list.end(), row);
      if (at == list.end() || *at != row) list.insert(at, row);
    }
  }

  struct Chunk {
    Chunk() {
      for (auto& l : lists) l.store(nullptr, std::memory_order_relaxed);
    }
    std::atomic<FeatureList*> lists[kChunkRows];
    std::atomic<uint32_t> count{0};
  };
  const Chunk* chunk_of(uint32_t row) const noexcept {
    const uint32_t c = row / kChunkRows;
    return c < directory_.allocated() ? directory_.get(c) : nullptr;
  }

  std::mutex mutex_;
  bool indexed_ = false;
  mutable std::shared_mutex index_mutex_;  // postings_: written under mutex_ too
  std::unordered_map<uint32_t, std::vector<uint32_t>> postings_;
  std::atomic<bool> any_{false};
  ChunkDirectory<Chunk> directory_;
  RetireList retired_;
};

}  // namespace rtrec
