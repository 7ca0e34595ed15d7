// What a retrieval call may return. Every query kind (a known user, an anonymous history, an
// item's neighbours) goes through one pipeline: the query kind makes a query vector, the
// filter decides the candidates, one scan (or one gather over a candidate list) ranks them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rtrec {

struct IdBatch;

// Limits of a retrieval call (exported to Python as rtrec_native.limits).
constexpr size_t kMaxFilterIds = 1000000;  // IDs in an allow-list or a deny-list
constexpr size_t kMaxFilterTags = 64;      // tags of one call (an item carries them all)
constexpr size_t kMaxQueryHistory = 10000;  // items of an anonymous history

// The candidate rules of one call; all optional, and they compose: an item is returned only
// if it passes every rule given, and never while hidden (Model::hide).
struct CandidateFilter {
  const IdBatch* allow = nullptr;                  // rank only these (unknown IDs ignored, counted)
  const IdBatch* deny = nullptr;                   // never these
  const std::vector<std::string>* tags = nullptr;  // only items that carry all these item features
};

// What a call reports besides its results.
struct RetrievalInfo {
  uint64_t unknown_allowed = 0;  // allow-list IDs with no item row
  uint64_t unknown_history = 0;  // anonymous-history IDs with no item row (ignored)
};

}  // namespace rtrec
