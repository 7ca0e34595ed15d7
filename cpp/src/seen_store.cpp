#include "rtrec/seen_store.hpp"

#include <cstdlib>
#include <new>

#include "rtrec/hash.hpp"

namespace rtrec {

bool SeenStore::PairSet::insert(uint64_t pair) {
  if ((size_ + 1) * 10 > slots_.size() * 7) {  // grow at load factor 0.7
    std::vector<uint64_t> bigger(slots_.empty() ? 16 : slots_.size() * 2, 0);
    const uint64_t mask = bigger.size() - 1;
    for (uint64_t p : slots_) {
      if (p == 0) continue;
      uint64_t i = mix64(p) & mask;
      while (bigger[i] != 0) i = (i + 1) & mask;
      bigger[i] = p;
    }
    slots_.swap(bigger);
  }
  const uint64_t mask = slots_.size() - 1;
  uint64_t i = mix64(pair) & mask;
  while (slots_[i] != 0) {
    if (slots_[i] == pair) return false;
    i = (i + 1) & mask;
  }
  slots_[i] = pair;
  ++size_;
  return true;
}

SeenStore::~SeenStore() {
  for (uint32_t c = 0; c < directory_.allocated(); ++c) {
    for (auto& l : directory_.get(c)->lists) std::free(l.load(std::memory_order_relaxed));
  }
  for (auto& shard : shards_) {
    for (List* l : shard.retired) std::free(l);
  }
}

SeenStore::List* SeenStore::allocate_list(uint32_t capacity) {
  void* p = std::malloc(sizeof(List) + sizeof(uint32_t) * (capacity - 1));
  if (p == nullptr) throw std::bad_alloc();
  List* list = static_cast<List*>(p);
  list->capacity = capacity;
  new (&list->size) std::atomic<uint32_t>(0);
  return list;
}

std::atomic<SeenStore::List*>& SeenStore::slot_for_writer(uint32_t user_row) {
  const uint32_t c = user_row / kListsPerChunk;
  ListChunk* chunk = directory_.get(c);
  if (chunk == nullptr) {
    std::lock_guard<std::mutex> lock(directory_mutex_);
    chunk = directory_.ensure(c);
  }
  return chunk->lists[user_row % kListsPerChunk];
}

bool SeenStore::add(uint32_t user_row, uint32_t item_row) {
  Shard& shard = shards_[user_row % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  // Reserve room before marking the pair, so a failed allocation leaves both untouched.
  std::atomic<List*>& slot = slot_for_writer(user_row);
  List* list = slot.load(std::memory_order_relaxed);
  const uint32_t n = list == nullptr ? 0 : list->size.load(std::memory_order_relaxed);
  const bool full = list == nullptr || n == list->capacity;
  List* grown = full ? allocate_list(list == nullptr ? 4 : list->capacity * 2) : nullptr;
  bool is_new;
  try {
    if (full) shard.retired.reserve(shard.retired.size() + 1);
    const uint64_t bytes_before = shard.pairs.memory_bytes();
    is_new = shard.pairs.insert((uint64_t(user_row) + 1) << 32 | item_row);
    pair_set_bytes_.fetch_add(shard.pairs.memory_bytes() - bytes_before, std::memory_order_relaxed);
  } catch (...) {
    std::free(grown);
    throw;
  }
  if (!is_new) {
    std::free(grown);
    return false;
  }
  if (full) {
    for (uint32_t k = 0; k < n; ++k) grown->items[k] = list->items[k];
    grown->size.store(n, std::memory_order_relaxed);
    slot.store(grown, std::memory_order_release);
    if (list != nullptr) shard.retired.push_back(list);  // reserved above: cannot throw
    list_bytes_.fetch_add(sizeof(List) + sizeof(uint32_t) * grown->capacity, std::memory_order_relaxed);
    list = grown;
  }
  list->items[n] = item_row;
  list->size.store(n + 1, std::memory_order_release);
  pairs_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void SeenStore::collect(uint32_t user_row, std::vector<uint32_t>& out) const {
  const ListChunk* chunk = directory_.get(user_row / kListsPerChunk);
  if (chunk == nullptr) return;
  const List* list = chunk->lists[user_row % kListsPerChunk].load(std::memory_order_acquire);
  if (list == nullptr) return;
  const uint32_t n = list->size.load(std::memory_order_acquire);
  out.insert(out.end(), list->items, list->items + n);
}

uint64_t SeenStore::memory_bytes() const {
  return list_bytes_.load(std::memory_order_relaxed) + pair_set_bytes_.load(std::memory_order_relaxed) +
         uint64_t(directory_.allocated()) * sizeof(ListChunk);
}

}  // namespace rtrec
