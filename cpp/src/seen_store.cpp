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
  // Retired sets are freed by the shards' RetireLists.
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
    if (v == item_row + 1) return false;  // tombstones are probed past like any entry
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
  // Grow (or create): build the larger set off to the side, then publish it. Tombstones
  // are left behind, so the new set may hold fewer entries than the old one.
  uint32_t live = 0;
  if (set != nullptr)
    for (uint32_t s = 0; s <= set->mask; ++s) live += set->slots[s].load(std::memory_order_relaxed) - 1u < kTombstone - 1u;
  uint32_t capacity = 8;
  while ((live + 1) * 2 > capacity) capacity *= 2;
  Set* grown = allocate(capacity);
  try {
    shard.retired.reserve_one();
  } catch (...) {
    std::free(grown);
    throw;
  }
  if (set != nullptr) {
    for (uint32_t s = 0; s <= set->mask; ++s) {
      const uint32_t v = set->slots[s].load(std::memory_order_relaxed);
      if (v != 0 && v != kTombstone) place(grown, v - 1);
    }
  }
  const bool added = place(grown, item_row);
  slot.store(grown, std::memory_order_release);
  set_bytes_.fetch_add(set_bytes(capacity), std::memory_order_relaxed);
  if (set != nullptr) retire(shard, set);  // reserved above: cannot throw
  if (added) pairs_.fetch_add(1, std::memory_order_relaxed);
  return added;
}

void SeenStore::retire(Shard& shard, Set* set) noexcept {
  const size_t bytes = set_bytes(set->mask + 1);
  shard.retired.retire([this, set, bytes] {
    std::free(set);
    set_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  });
  // Scanning the reader slots costs a little: collect in batches.
  if (shard.retired.size() % 64 == 0) shard.retired.collect();
}

void SeenStore::clear_user(uint32_t user_row) {
  Shard& shard = shards_[user_row % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return;
  std::atomic<Set*>& slot = const_cast<SetChunk*>(chunk)->sets[user_row % kSetsPerChunk];
  Set* set = slot.load(std::memory_order_relaxed);
  if (set == nullptr) return;
  uint64_t live = 0;
  for (uint32_t s = 0; s <= set->mask; ++s) live += set->slots[s].load(std::memory_order_relaxed) - 1u < kTombstone - 1u;
  slot.store(nullptr, std::memory_order_release);
  pairs_.fetch_sub(live, std::memory_order_relaxed);
  // Freed at once: the caller recycles the row, so no reader can reach this set any more
  // (readers find a user's set through its index entry, gone since the eviction, and
  // every reader pinned before then has finished).
  set_bytes_.fetch_sub(set_bytes(set->mask + 1), std::memory_order_relaxed);
  std::free(set);
}

void SeenStore::remove_items(const std::vector<uint8_t>& dead) {
  const uint32_t chunks = directory_.allocated();
  for (uint32_t shard_index = 0; shard_index < kShards; ++shard_index) {
    Shard& shard = shards_[shard_index];
    std::lock_guard<std::mutex> lock(shard.mutex);
    uint64_t removed = 0;
    for (uint64_t user = shard_index; user < uint64_t(chunks) * kSetsPerChunk; user += kShards) {
      Set* set = directory_.get(static_cast<uint32_t>(user / kSetsPerChunk))->sets[user % kSetsPerChunk].load(std::memory_order_relaxed);
      if (set == nullptr) continue;
      for (uint32_t s = 0; s <= set->mask; ++s) {
        const uint32_t v = set->slots[s].load(std::memory_order_relaxed);
        if (v == 0 || v == kTombstone || v - 1 >= dead.size() || !dead[v - 1]) continue;
        set->slots[s].store(kTombstone, std::memory_order_release);
        ++removed;
      }
    }
    pairs_.fetch_sub(removed, std::memory_order_relaxed);
  }
}

bool SeenStore::contains(uint32_t user_row, uint32_t item_row) const noexcept {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return false;
  const Set* set = chunk->sets[user_row % kSetsPerChunk].load(std::memory_order_acquire);
  if (set == nullptr) return false;
  uint32_t i = static_cast<uint32_t>(mix64(item_row)) & set->mask;
  for (;;) {
    const uint32_t v = set->slots[i].load(std::memory_order_acquire);
    if (v == 0) return false;
    if (v == item_row + 1) return true;
    i = (i + 1) & set->mask;
  }
}

uint32_t SeenStore::capacity_of(uint32_t user_row) const noexcept {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return 0;
  const Set* set = chunk->sets[user_row % kSetsPerChunk].load(std::memory_order_acquire);
  return set == nullptr ? 0 : set->mask + 1;
}

void SeenStore::collect(uint32_t user_row, std::vector<uint32_t>& out) const {
  const SetChunk* chunk = directory_.get(user_row / kSetsPerChunk);
  if (chunk == nullptr) return;
  const Set* set = chunk->sets[user_row % kSetsPerChunk].load(std::memory_order_acquire);
  if (set == nullptr) return;
  for (uint32_t s = 0; s <= set->mask; ++s) {
    const uint32_t v = set->slots[s].load(std::memory_order_acquire);
    if (v != 0 && v != kTombstone) out.push_back(v - 1);
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
