// Exact top-K over all rows of an item table: a blocked scan, chunk by chunk, keeping a
// bounded min-heap per thread; rows listed in `excluded` (sorted) are skipped.
#pragma once

#include <cstdint>
#include <vector>

#include "rtrec/embedding_table.hpp"
#include "rtrec/feature_lists.hpp"

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

// Scores rows [0, n_rows) of `items` against `query` (stride floats, zero padded) plus each
// row's bias, skipping `excluded` (ascending). Writes up to k results, best first, and
// returns how many. `threads` > 1 splits the scan across threads.
uint32_t top_k(const EmbeddingTable& items, uint32_t n_rows, const float* query, uint32_t k,
               const std::vector<uint32_t>& excluded, int threads, ScoredRow* out,
               const FeatureCorrection& features = FeatureCorrection{nullptr, nullptr, 0});

// The same for `count` queries at once on the calling thread (queries: count x stride floats,
// excluded: count sorted lists, out: count x k, found: count). Each chunk of item vectors is
// read from memory once for all the queries while it sits in cache, instead of once each:
// batch retrieval is bound by arithmetic rather than memory bandwidth.
void top_k_many(const EmbeddingTable& items, uint32_t n_rows, const float* queries,
                const std::vector<uint32_t>* excluded, uint32_t count, uint32_t k, ScoredRow* out, uint32_t* found,
                const FeatureCorrection& features = FeatureCorrection{nullptr, nullptr, 0});

}  // namespace rtrec
