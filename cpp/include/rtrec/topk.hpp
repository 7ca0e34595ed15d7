// Exact top-K over the rows of an item table, for every retrieval call (users, anonymous
// histories, similar items): a blocked scan of all rows, chunk by chunk, keeping a bounded
// min-heap per thread, or a gather over a candidate list (allow-list, tags). Rows listed in
// `excluded` (sorted) and hidden rows are skipped; both are tested only for rows whose score
// would enter the result, so they cost a scan next to nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "rtrec/compact_rows.hpp"
#include "rtrec/embedding_table.hpp"
#include "rtrec/feature_lists.hpp"
#include "rtrec/hidden_rows.hpp"

namespace rtrec {

struct ScoredRow {
  float score;
  uint32_t row;
};

// Best first; ties broken by the lower row so results are deterministic.
inline bool better(const ScoredRow& a, const ScoredRow& b) noexcept {
  return a.score > b.score || (a.score == b.score && a.row < b.row);
}

// Item side features in a scan: a row with features scores its ID row plus
// scale x sum over its features of scores[f] (b_f + <query, v_f>, computed once per query;
// query q's at q * n_features). `lists` null: no features.
struct FeatureCorrection {
  const FeatureLists* lists;
  const float* scores;
  uint32_t n_features;
};

// How a scan scores rows, and which it may return besides those not `excluded`.
struct ScanRules {
  // A row scores <query, v> + bias, plus its feature terms (see FeatureCorrection).
  FeatureCorrection features{nullptr, nullptr, 0};
  const HiddenRows* hidden = nullptr;  // null: no row is hidden
  // retrieval="compact": chunks are first scored from these int8 rows (the same feature
  // terms, filters and hidden rows apply), the best max(depth, depth_per_result x k) rows
  // are kept, and those are re-scored exactly from the float rows before the best k are
  // taken. Null: exact scan.
  const CompactRows* compact = nullptr;
  uint32_t depth = 0, depth_per_result = 1;
};

// Scores rows [0, n_rows) of `items` against `query` (stride floats, zero padded). Writes up
// to k results, best first, and returns how many. `threads` > 1 splits the scan across threads.
uint32_t top_k(const EmbeddingTable& items, uint32_t n_rows, const float* query, uint32_t k,
               const std::vector<uint32_t>& excluded, int threads, ScoredRow* out, const ScanRules& rules = ScanRules{});

// The same over the candidate rows `rows` only (ascending; rows at or past n_rows, or not
// live, are skipped): the cost grows with the list, not with the catalogue.
uint32_t top_k_rows(const EmbeddingTable& items, uint32_t n_rows, const std::vector<uint32_t>& rows,
                    const float* query, uint32_t k, const std::vector<uint32_t>& excluded, ScoredRow* out,
                    const ScanRules& rules = ScanRules{});

// The same for `count` queries at once on the calling thread (queries: count x stride floats,
// excluded: count sorted lists, out: count x k, found: count; rules.features.scores holds
// count x n_features). Each chunk of item vectors is read from memory once for all the
// queries while it sits in cache, instead of once each: batch retrieval is bound by
// arithmetic rather than memory bandwidth.
void top_k_many(const EmbeddingTable& items, uint32_t n_rows, const float* queries,
                const std::vector<uint32_t>* excluded, uint32_t count, uint32_t k, ScoredRow* out, uint32_t* found,
                const ScanRules& rules = ScanRules{});

}  // namespace rtrec
