#include "rtrec/seen_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "rtrec/hash.hpp"

namespace rtrec {
namespace {

size_t set_bytes(uint32_t capacity) { return sizeof(uint32_t) * 2 + sizeof(std::atomic<uint32_t>) * capacity; }

}  // namespace

SeenStore::~SeenStore() {
  for (uint32_t c = 0; c < directory_.allocated(); ++c) {
    for (auto& s : directory_.get(c)->sets) std::free(s.load(std::memory_order_relaxed));
  }
  for (auto& shard : shards_) {
    for (Set* s : shard.retired) std::free(s);
  }
}

SeenStore::Set* SeenStore::allocate(uint32_t capacity) {
  void* p = std::calloc(1, set_bytes(capacity));  // zero slots = empty
  if (p == nullptr) throw std::bad_alloc();
  Set* set = static_cast<Set*>(p);
  set->mask = capacity - 1;
  set->size = 0;
  return set;
}

bool SeenStore::place(Set* set, uint32_t item_row) noexcept {
  uint32_t i = static_cast<uint32_t>(mix64(item_row)) & set->mask;
  for (;;) {
    const uint32_t v = set->slots[i].load(std::memory_order_relaxed);
    if (v == 0) break;
    if (v == item_row + 1) return false;
    i = (i + 1) & set->mask;
  }
  set->slots[i].store(item_row + 1, std::memory_order_release);
  ++set->size;
  return true;
}

std::atomic<SeenStore::Set*>& SeenStore::slot_for_writer(uint32_t user_row) {
  const uint32_t c = user_row / kSetsPerChunk;
  SetChunk* chunk = directory_.get(c);
  if (chunk == nullptr) {
    std::lock_guard<std::mutex> lock(directory_mutex_);
    chunk = directory_.ensure(c);
  }
  return chunk->sets[user_row % kSetsPerChunk];
}

bool SeenStore::add(uint32_t user_row, uint32_t item_row) {
  Shard& shard = shards_[user_row % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  std::atomic<Set*>& slot = slot_for_writer(user_row);
  Set* set = slot.load(std::memory_order_relaxed);
  if (set != nullptr && (set->size + 1) * 2 <= set->mask + 1) {  // room: the common case
    const bool added = place(set, item_row);
    if (added) pairs_.fetch_add(1, std::memory_order_relaxed);
    return added;
  }
  // Grow (or create): build the larger set off to the side, then publish it.
  const uint32_t capacity = set == nullptr ? 8 : (set->mask + 1) * 2;
  Set* grown = allocate(capacity);
  try {
    // Geometric growth: reserve(size + 1) would reallocate on every call.
    if (set != nullptr && shard.retired.size() == shard.retired.capacity())
      shard.retired.reserve(std::max<size_t>(16, shard.retired.capacity() * 2));
  } catch (...) {
    std::free(grown);
    throw;
  }
  if (set != nullptr) {
    for (uint32_t s = 0; s <= set->mask; ++s) {
      const uint32_t v = set->slots[s].load(std::memory_order_relaxed);
      if (v != 0) place(grown, v - 1);
    }
  }
  const bool added = place(grown, item_row);
  slot.store(grown, std::memory_order_release);
  if (set != nullptr) shard.retired.push_back(set);  // reserved above: cannot throw
  set_bytes_.fetch_add(set_bytes(capacity), std::memory_order_relaxed);
  if (added) pairs_.fetch_add(1, std::memory_order_relaxed);
  return added;
}

void SeenStore::collect(uint32_t user_row, std::vector<uint32_t>& out) const {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return;
  const Set* set = chunk->sets[user_row % kSetsPerChunk].load(std::memory_order_acquire);
  if (set == nullptr) return;
  for (uint32_t s = 0; s <= set->mask; ++s) {
    const uint32_t v = set->slots[s].load(std::memory_order_acquire);
    if (v != 0) out.push_back(v - 1);
  }
}

void SeenStore::prefetch_slot(uint32_t user_row) const noexcept {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk != nullptr) __builtin_prefetch(&chunk->sets[user_row % kSetsPerChunk], 0, 3);
}

void SeenStore::prefetch(uint32_t user_row) const noexcept {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return;
  const Set* set = chunk->sets[user_row % kSetsPerChunk].load(std::memory_order_relaxed);
  if (set != nullptr) __builtin_prefetch(set, 1, 3);
}

uint64_t SeenStore::memory_bytes() const noexcept {
  return set_bytes_.load(std::memory_order_relaxed) + uint64_t(directory_.allocated()) * sizeof(SetChunk);
}

}  // namespace rtrec
