// Item display names (item_names.hpp) and the Model calls that set and read them.
#include "rtrec/item_names.hpp"

#include <algorithm>
#include <stdexcept>

#include "rtrec/model.hpp"

namespace rtrec {

uint64_t ItemNames::entry_bytes(const std::string& name) noexcept {
  // A node (next pointer, cached hash, key, value), its bucket pointer, and the name's heap
  // buffer when it does not fit the string's inline storage.
  constexpr uint64_t kNode = 2 * sizeof(void*) + sizeof(std::pair<const uint64_t, Value>) + sizeof(void*);
  const uint64_t heap = name.capacity() > std::string().capacity() ? name.capacity() + 1 : 0;
  return kNode + heap;
}

void ItemNames::check_names(const std::string* names, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (names[i].size() > kMaxNameBytes)
      throw std::invalid_argument("names[" + std::to_string(i) + "] is " + std::to_string(names[i].size()) +
                                  " bytes; a name is at most " + std::to_string(kMaxNameBytes) + " bytes");
    if (names[i].find('\0') != std::string::npos)
      throw std::invalid_argument("names[" + std::to_string(i) + "] contains a NUL character");
  }
}

void ItemNames::set(const uint64_t* keys, const std::string* names, size_t n, const std::atomic<uint32_t>& generation) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint32_t g = generation.load(std::memory_order_seq_cst);
  for (size_t i = 0; i < n; ++i) {
    auto it = map_.find(keys[i]);
    if (it != map_.end()) {
      name_bytes_ -= entry_bytes(it->second.name);
      if (names[i].empty()) {
        map_.erase(it);
        continue;
      }
      it->second = Value{names[i], g};
      name_bytes_ += entry_bytes(it->second.name);
    } else if (!names[i].empty()) {
      auto placed = map_.emplace(keys[i], Value{names[i], g}).first;
      name_bytes_ += entry_bytes(placed->second.name);
    }
  }
  publish_counts();
}

std::vector<std::pair<bool, std::string>> ItemNames::get(const uint64_t* keys, size_t n) const {
  std::vector<std::pair<bool, std::string>> out(n);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < n; ++i) {
    auto it = map_.find(keys[i]);
    if (it != map_.end()) out[i] = {true, it->second.name};
  }
  return out;
}

std::vector<ItemNames::Entry> ItemNames::since(uint32_t generation) const {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, value] : map_)
      if (value.generation >= generation) out.push_back(Entry{key, value.name});
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  return out;
}

void ItemNames::erase(const std::vector<uint64_t>& keys) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (map_.empty()) return;
  for (uint64_t key : keys) {
    auto it = map_.find(key);
    if (it == map_.end()) continue;
    name_bytes_ -= entry_bytes(it->second.name);
    map_.erase(it);
  }
  publish_counts();
}

void ItemNames::publish_counts() noexcept {
  count_.store(map_.size(), std::memory_order_relaxed);
  bytes_.store(name_bytes_ + map_.bucket_count() * sizeof(void*), std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------- Model

void Model::set_item_names(const IdBatch& ids, const std::vector<std::string>& names) {
  if (names.size() != ids.size)
    throw std::invalid_argument("names must have one entry per item: got " + std::to_string(names.size()) +
                                " names for " + std::to_string(ids.size) + " items");
  ItemNames::check_names(names.data(), names.size());
  items_.check_kind(ids.names, ids.size);  // IdKindError: the items' kind is the table's
  item_names_.set(ids.keys, names.data(), ids.size, generation_);
  changes_.fetch_add(1, std::memory_order_release);  // a publisher has something to write
}

std::vector<std::pair<bool, std::string>> Model::item_names(const IdBatch& ids) const {
  return item_names_.get(ids.keys, ids.size);
}

}  // namespace rtrec
