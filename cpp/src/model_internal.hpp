// Helpers shared by the translation units of Model (model.cpp, model_features.cpp,
// model_eviction.cpp). Internal: not part of the core's interface.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include "rtrec/model.hpp"

namespace rtrec {
namespace model_detail {

constexpr uint32_t kNoRow = EmbeddingTable::kNotFound;

inline double wall_clock() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

inline uint32_t lookup(const EmbeddingTable& table, uint64_t key, const std::string* name) noexcept {
  const uint32_t row = table.find(key);
  // A string whose hash matches a different stored string is not that ID.
  if (row != EmbeddingTable::kNotFound && name != nullptr && table.name(row) != *name) return EmbeddingTable::kNotFound;
  return row;
}

inline void check_kind(const EmbeddingTable& table, const IdBatch& ids, const char* side) {
  const IdKind have = table.kind();
  if (ids.size == 0 || have == IdKind::kUnset) return;
  const bool strings = ids.names != nullptr;
  if (strings != (have == IdKind::kString)) {
    throw std::invalid_argument(std::string(side) + (have == IdKind::kString ? " IDs of this model are strings, got integers"
                                                                              : " IDs of this model are integers, got strings"));
  }
}

}  // namespace model_detail
}  // namespace rtrec
