#include "rtrec/topk.hpp"

#include <algorithm>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "rtrec/kernels.hpp"
#include "rtrec/parallel.hpp"

namespace rtrec {
namespace {

// Keeps the k best rows seen so far. The heap's front is the worst kept row, so the common
// case, a row that does not make the cut, costs one comparison.
class BoundedHeap {
 public:
  explicit BoundedHeap(uint32_t k) : k_(k) { rows_.reserve(k); }

  bool admits(float score, uint32_t row) const noexcept {
    return rows_.size() < k_ || better(ScoredRow{score, row}, rows_.front());
  }

  void push(ScoredRow candidate) {
    if (rows_.size() < k_) {
      rows_.push_back(candidate);
      std::push_heap(rows_.begin(), rows_.end(), better);
    } else {
      std::pop_heap(rows_.begin(), rows_.end(), better);
      rows_.back() = candidate;
      std::push_heap(rows_.begin(), rows_.end(), better);
    }
  }

  // Scores below this can never enter (the worst kept score once full, else -inf): a cheap
  // first filter for the scan loop, which then asks admits() only for the few that pass.
  float floor() const noexcept {
    return rows_.size() < k_ ? -std::numeric_limits<float>::infinity() : rows_.front().score;
  }

  std::vector<ScoredRow>& rows() noexcept { return rows_; }

 private:
  uint32_t k_;
  std::vector<ScoredRow> rows_;
};

// The feature terms of one row (0 without features): scale x sum of its features' scores.
float feature_term(const FeatureCorrection& f, uint32_t row, const float* feature_scores) noexcept {
  const FeatureList* list = f.lists->get(row);
  if (list == nullptr) return 0.0f;
  float sum = 0.0f;
  for (uint32_t k = 0; k < list->size; ++k)
    if (list->rows[k] < f.n_features) sum += feature_scores[list->rows[k]];  // newer features: not scored yet
  return list->scale * sum;
}

// The exact score of one row under `rules` (feature_scores: the query's, see FeatureCorrection).
float exact_score(const EmbeddingTable& items, uint32_t row, const float* query, const float* feature_scores,
                  const ScanRules& rules) noexcept {
  const FeatureCorrection& f = rules.features;
  const bool featured = f.lists != nullptr && f.lists->get(row) != nullptr;
  float score = dot(query, items.vector(row), items.stride()) + items.bias(row);
  if (featured) score += feature_term(f, row, feature_scores);
  return score;
}

// Scores one chunk's `rows` rows (starting at row `base`) for query q under `rules`: from
// the compact rows when `compact` (query q's quantised form) is given and holds the chunk,
// else exactly. Feature terms are exact either way.
void score_chunk(const EmbeddingTable& items, uint32_t chunk, uint32_t base, uint32_t rows, const float* query,
                 uint32_t q, const ScanRules& rules, const CompactRows::Query* compact, float* scores) noexcept {
  const uint32_t stride = items.stride();
  const FeatureCorrection& f = rules.features;
  const bool featured = f.lists != nullptr && f.lists->count_in_chunk(chunk) > 0;
  const bool approximate = compact != nullptr && rules.compact->has_chunk(chunk);
  if (approximate) rules.compact->score(chunk, *compact, rows, items.chunk_biases(chunk), scores);
  else score_block(query, items.chunk_vectors(chunk), items.chunk_biases(chunk), rows, stride, scores);
  if (featured)
    for (uint32_t r = 0; r < rows; ++r) scores[r] += feature_term(f, base + r, f.scores + size_t(q) * f.n_features);
}

// Rows a scan tests against the heap's floor at once: most spans hold no row that could
// enter, and one branch-free test of 16 (vectorised) skips them.
constexpr uint32_t kSpan = 16;
inline bool any_at_least(const float* scores, float floor) noexcept {
#if defined(__SSE2__)
  // Written out: the compiler keeps the scalar loop below scalar (a compare and a branch-free
  // or per row cost as much as scoring it from the compact rows). NaN compares false.
  const __m128 f = _mm_set1_ps(floor);
  const __m128 lo = _mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(scores), f), _mm_cmpge_ps(_mm_loadu_ps(scores + 4), f));
  const __m128 hi = _mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(scores + 8), f), _mm_cmpge_ps(_mm_loadu_ps(scores + 12), f));
  return _mm_movemask_ps(_mm_or_ps(lo, hi)) != 0;
#else
  int hits = 0;
  for (uint32_t j = 0; j < kSpan; ++j) hits |= scores[j] >= floor;
  return hits != 0;
#endif
}

// Scores chunks [first_chunk, end_chunk) against `count` queries, feeding heaps[q].
void scan_chunks(const EmbeddingTable& items, uint32_t first_chunk, uint32_t end_chunk, uint32_t n_rows,
                 const float* queries, const std::vector<uint32_t>* excluded, uint32_t count, BoundedHeap* heaps,
                 const ScanRules& rules, const CompactRows::Query* compact) {
  constexpr uint32_t kRows = EmbeddingTable::kChunkRows;
  const uint32_t stride = items.stride();
  // Evicted rows keep stale values and may be recycled for a new item meanwhile: only rows
  // live *before* their values are read are candidates (the caller's pin keeps those rows
  // from being recycled until the scan is over).
  const bool check_live = items.has_erased();
  uint8_t live[kRows];
  float scores[kRows];
  for (uint32_t c = first_chunk; c < end_chunk; ++c) {
    const uint32_t base = c * kRows;
    const uint32_t rows = std::min(kRows, n_rows - base);
    if (check_live) items.live_flags(c, live);
    for (uint32_t q = 0; q < count; ++q) {
      score_chunk(items, c, base, rows, queries + size_t(q) * stride, q, rules, compact != nullptr ? compact + q : nullptr,
                  scores);
      BoundedHeap& heap = heaps[q];
      const std::vector<uint32_t>& skip = excluded[q];
      float floor = heap.floor();
      for (uint32_t first = 0; first < rows; first += kSpan) {
        const uint32_t end = std::min(rows, first + kSpan);
        if (end - first == kSpan && !any_at_least(scores + first, floor)) continue;  // the common case
        for (uint32_t r = first; r < end; ++r) {
          if (!(scores[r] >= floor)) continue;  // also rejects NaN
          const uint32_t row = base + r;
          if (!heap.admits(scores[r], row)) continue;
          if (!skip.empty() && std::binary_search(skip.begin(), skip.end(), row)) continue;
          if (check_live && !live[r]) continue;
          if (rules.hidden != nullptr && rules.hidden->get(row)) continue;
          heap.push(ScoredRow{scores[r], row});
          floor = heap.floor();
        }
      }
    }
  }
}

uint32_t n_chunks_of(uint32_t n_rows) {
  return (n_rows + EmbeddingTable::kChunkRows - 1) / EmbeddingTable::kChunkRows;
}

// Best first, at most k. After evictions, rows that are not live any more are dropped: an
// item evicted during the scan may have come back under a new row that the scan also took,
// and would be listed twice. Two passes, because one pass reads the flags at different
// moments: if old row A passed its check and new row B (same item, made live only after A
// was erased) passed a later one, A fails the second pass. (An item evicted during the
// call may be left out either way, so fewer than k rows may come back.)
uint32_t drain(const EmbeddingTable& items, std::vector<ScoredRow>& candidates, uint32_t k, ScoredRow* out) {
  if (items.has_erased()) {
    auto erased = [&](const ScoredRow& c) { return !items.is_live(c.row); };
    for (int pass = 0; pass < 2; ++pass)
      candidates.erase(std::remove_if(candidates.begin(), candidates.end(), erased), candidates.end());
  }
  const uint32_t n = std::min<uint32_t>(k, static_cast<uint32_t>(candidates.size()));
  std::partial_sort(candidates.begin(), candidates.begin() + n, candidates.end(), better);
  std::copy(candidates.begin(), candidates.begin() + n, out);
  return n;
}

// The rules with `hidden` dropped while nothing is hidden (the scans then skip the test).
ScanRules effective_rules(const ScanRules& rules) noexcept {
  ScanRules r = rules;
  if (r.hidden != nullptr && !r.hidden->any()) r.hidden = nullptr;
  return r;
}

// How many rows a scan keeps for `k` results: k, or in compact mode the re-rank depth.
uint32_t pool_size(const ScanRules& rules, uint32_t k, uint32_t n_rows) noexcept {
  const uint64_t wanted =
      rules.compact != nullptr ? std::max<uint64_t>(rules.depth, uint64_t(rules.depth_per_result) * k) : k;
  return static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(wanted, k), n_rows));
}

// The queries quantised for the compact scan (empty in exact mode).
std::vector<CompactRows::Query> compact_queries(const ScanRules& rules, const float* queries, uint32_t count,
                                                uint32_t stride) {
  std::vector<CompactRows::Query> out;
  if (rules.compact == nullptr) return out;
  out.resize(count);
  for (uint32_t q = 0; q < count; ++q) rules.compact->prepare(queries + size_t(q) * stride, out[q]);
  return out;
}

// Compact mode: the candidates' approximate scores replaced by their exact ones, so the
// final order and the reported scores are those of the exact scan over these rows.
void rescore(const EmbeddingTable& items, std::vector<ScoredRow>& candidates, const float* query,
             const float* feature_scores, const ScanRules& rules) noexcept {
  if (rules.compact == nullptr) return;
  for (size_t j = 0; j < candidates.size(); ++j) {
    if (j + 4 < candidates.size()) items.prefetch_vector(candidates[j + 4].row);
    candidates[j].score = exact_score(items, candidates[j].row, query, feature_scores, rules);
  }
}

}  // namespace

uint32_t top_k(const EmbeddingTable& items, uint32_t n_rows, const float* query, uint32_t k,
               const std::vector<uint32_t>& excluded, int threads, ScoredRow* out, const ScanRules& given) {
  if (n_rows == 0 || k == 0) return 0;
  const ScanRules rules = effective_rules(given);
  const uint32_t n_chunks = n_chunks_of(n_rows);
  const int workers = std::max(1, std::min<int>(threads, static_cast<int>(n_chunks)));
  const uint32_t pool = pool_size(rules, k, n_rows);
  const std::vector<CompactRows::Query> compact = compact_queries(rules, query, 1, items.stride());
  const CompactRows::Query* cq = compact.empty() ? nullptr : compact.data();
  std::vector<ScoredRow> merged;
  if (workers == 1) {
    BoundedHeap heap(pool);
    scan_chunks(items, 0, n_chunks, n_rows, query, &excluded, 1, &heap, rules, cq);
    merged.swap(heap.rows());
  } else {
    std::vector<std::vector<ScoredRow>> partial(workers);
    ExceptionSlot failure;
#pragma omp parallel num_threads(workers)
    {
      failure.run([&] {
        const int t = thread_index();
        const int team = team_size();  // OpenMP may grant fewer threads than asked
        const uint32_t begin = static_cast<uint32_t>(uint64_t(n_chunks) * t / team);
        const uint32_t end = static_cast<uint32_t>(uint64_t(n_chunks) * (t + 1) / team);
        BoundedHeap heap(pool);
        scan_chunks(items, begin, end, n_rows, query, &excluded, 1, &heap, rules, cq);
        partial[t].swap(heap.rows());
      });
    }
    failure.rethrow();
    for (auto& p : partial) merged.insert(merged.end(), p.begin(), p.end());
  }
  rescore(items, merged, query, rules.features.scores, rules);
  return drain(items, merged, k, out);
}

void top_k_many(const EmbeddingTable& items, uint32_t n_rows, const float* queries,
                const std::vector<uint32_t>* excluded, uint32_t count, uint32_t k, ScoredRow* out, uint32_t* found,
                const ScanRules& given) {
  const ScanRules rules = effective_rules(given);
  // k beyond the catalogue costs nothing
  std::vector<BoundedHeap> heaps(count, BoundedHeap(pool_size(rules, k, n_rows)));
  const std::vector<CompactRows::Query> compact = compact_queries(rules, queries, count, items.stride());
  if (n_rows > 0 && k > 0)
    scan_chunks(items, 0, n_chunks_of(n_rows), n_rows, queries, excluded, count, heaps.data(), rules,
                compact.empty() ? nullptr : compact.data());
  const FeatureCorrection& f = rules.features;
  for (uint32_t q = 0; q < count; ++q) {
    const float* feature_scores = f.scores != nullptr ? f.scores + size_t(q) * f.n_features : nullptr;
    rescore(items, heaps[q].rows(), queries + size_t(q) * items.stride(), feature_scores, rules);
    found[q] = drain(items, heaps[q].rows(), k, out + size_t(q) * k);
  }
}

uint32_t top_k_rows(const EmbeddingTable& items, uint32_t n_rows, const std::vector<uint32_t>& rows,
                    const float* query, uint32_t k, const std::vector<uint32_t>& excluded, ScoredRow* out,
                    const ScanRules& given) {
  if (k == 0 || rows.empty()) return 0;
  const ScanRules rules = effective_rules(given);
  const bool check_live = items.has_erased();
  const FeatureLists* lists = rules.features.lists;
  const size_t row_bytes = size_t(items.stride()) * sizeof(float);
  BoundedHeap heap(static_cast<uint32_t>(std::min<size_t>(k, rows.size())));
  // Candidate rows are scattered over the table: every one is a few cache misses (its
  // vector, its bias, its feature list), so they are asked for well ahead, read-only.
  constexpr size_t kAhead = 8;
  auto prefetch = [&](size_t j) {
    const uint32_t r = rows[j];
    if (r >= n_rows) return;
    const char* v = reinterpret_cast<const char*>(items.vector(r));
    for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(v + b, 0, 3);
    __builtin_prefetch(&items.bias(r), 0, 3);
    if (lists != nullptr) lists->prefetch(r);
  };
  for (size_t j = 0; j < std::min(kAhead, rows.size()); ++j) prefetch(j);
  for (size_t j = 0; j < rows.size(); ++j) {
    const uint32_t row = rows[j];
    if (row >= n_rows) break;  // ascending: the rest are newer than this call's catalogue
    if (j + kAhead < rows.size()) prefetch(j + kAhead);
    if (lists != nullptr && j + kAhead / 2 < rows.size() && rows[j + kAhead / 2] < n_rows)
      if (const FeatureList* l = lists->get(rows[j + kAhead / 2])) __builtin_prefetch(l, 0, 3);
    // Liveness before values: a pinned caller keeps a live row from being recycled under it.
    if (check_live && !items.is_live(row)) continue;
    const float score = exact_score(items, row, query, rules.features.scores, rules);
    if (!(score >= heap.floor()) || !heap.admits(score, row)) continue;
    if (!excluded.empty() && std::binary_search(excluded.begin(), excluded.end(), row)) continue;
    if (rules.hidden != nullptr && rules.hidden->get(row)) continue;
    heap.push(ScoredRow{score, row});
  }
  return drain(items, heap.rows(), k, out);
}

}  // namespace rtrec
