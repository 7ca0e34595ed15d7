// Model: retrieval. Every query kind — a known user, an anonymous history, an item's
// neighbours — makes a query vector (the only family-specific step: user_query,
// history_query) and goes through one pipeline: the filter is resolved to rows once per
// call, then one scan of the catalogue (or one gather over an allow-list or tag list) ranks
// what may be returned, then diversity re-ranks the pool if asked.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model_family.hpp"
#include "model_internal.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/hash.hpp"
#include "rtrec/model.hpp"
#include "rtrec/parallel.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

constexpr uint32_t kParallelScanMinRows = 32768;  // below this one thread scans faster

void check_k(uint32_t k) {
  if (k == 0) throw std::invalid_argument("k must be >= 1");
}

void check_list_size(const IdBatch* ids, const char* what) {
  if (ids != nullptr && ids->size > kMaxFilterIds)
    throw std::invalid_argument(std::string(what) + " holds at most " + std::to_string(kMaxFilterIds) + " IDs, got " +
                                std::to_string(ids->size));
}

// Rows of the known IDs among `ids`, ascending and unique; counts the unknown ones.
std::vector<uint32_t> rows_of(const EmbeddingTable& table, const IdBatch& ids, uint64_t* unknown) {
  std::vector<uint32_t> rows;
  rows.reserve(ids.size);
  for (size_t i = 0; i < ids.size; ++i) {
    const uint32_t r = lookup(table, ids.keys[i], ids.names != nullptr ? &ids.names[i] : nullptr);
    if (r != kNoRow) rows.push_back(r);
    else if (unknown != nullptr) ++*unknown;
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// `into` (ascending) gains the rows of `more` (ascending).
void merge_into(std::vector<uint32_t>& into, const std::vector<uint32_t>& more) {
  if (more.empty()) return;
  const size_t mid = into.size();
  into.insert(into.end(), more.begin(), more.end());
  std::inplace_merge(into.begin(), into.begin() + mid, into.end());
}

}  // namespace

// ---------------------------------------------------------------------------- the pipeline

Model::Candidates Model::resolve_filter(const CandidateFilter& f, RetrievalInfo* info) const {
  check_list_size(f.allow, "an allow-list");
  check_list_size(f.deny, "a deny-list");
  if (f.allow != nullptr) items_.check_kind(f.allow->names, f.allow->size);
  if (f.deny != nullptr) items_.check_kind(f.deny->names, f.deny->size);
  Candidates c;
  std::vector<uint32_t> tag_rows;  // feature rows of the tags
  if (f.tags != nullptr) {
    if (f.tags->size() > kMaxFilterTags)
      throw std::invalid_argument("at most " + std::to_string(kMaxFilterTags) + " tags per call, got " +
                                  std::to_string(f.tags->size()));
    for (const std::string& tag : *f.tags) {
      const uint32_t r = lookup(item_features_.table, hash_string_id(tag), &tag);
      // A typo must not look like an empty category.
      if (r == kNoRow) throw std::out_of_range("no item has ever had the feature '" + tag + "' (see set_item_features)");
      tag_rows.push_back(r);
    }
  }
  if (f.allow != nullptr) {
    uint64_t unknown = 0;
    c.rows = rows_of(items_, *f.allow, &unknown);
    c.restricted = true;
    if (info != nullptr) info->unknown_allowed += unknown;
    if (unknown > 0) unknown_filter_ids_.fetch_add(unknown, std::memory_order_relaxed);
  }
  if (f.tags != nullptr && !f.tags->empty()) {
    std::vector<uint32_t> tagged = item_features_.lists.rows_with_all(tag_rows);
    if (c.restricted) {
      std::vector<uint32_t> both;
      std::set_intersection(c.rows.begin(), c.rows.end(), tagged.begin(), tagged.end(), std::back_inserter(both));
      tagged.swap(both);
    }
    c.rows.swap(tagged);
    c.restricted = true;
  }
  if (f.deny != nullptr) c.denied = rows_of(items_, *f.deny, nullptr);
  return c;
}

ScanRules Model::scan_rules(const float* feature_scores, uint32_t n_features) const noexcept {
  ScanRules rules;
  rules.hidden = &hidden_;
  rules.compact = compact_.get();
  rules.depth = kCompactDepth;
  rules.depth_per_result = kCompactDepthPerResult;
  if (item_features_.lists.any()) rules.features = FeatureCorrection{&item_features_.lists, feature_scores, n_features};
  return rules;
}

uint32_t Model::retrieve(const float* query, std::vector<uint32_t>& excluded, const Candidates& c,
                         const ScanRules& rules, uint32_t k, float diversity, int threads,
                         std::vector<ScoredRow>& best) const {
  merge_into(excluded, c.denied);
  const uint32_t n_rows = items_.size();
  // Diversified lists choose their k from a larger pool of the best (see diversity.hpp).
  const uint32_t wanted = diversity > 0.0f ? diversity_pool(k) : k;
  best.resize(std::max<size_t>(1, std::min<size_t>(wanted, c.restricted ? c.rows.size() : n_rows)));
  uint32_t found;
  if (c.restricted) {
    found = top_k_rows(items_, n_rows, c.rows, query, static_cast<uint32_t>(best.size()), excluded, best.data(), rules);
  } else {
    const int scan_threads = n_rows >= kParallelScanMinRows ? resolve_threads(threads) : 1;
    found = top_k(items_, n_rows, query, static_cast<uint32_t>(best.size()), excluded, scan_threads, best.data(), rules);
  }
  if (diversity > 0.0f) {
    std::vector<float> vectors, scratch;
    found = diversify(best.data(), found, k, diversity, vectors, scratch);
  }
  return std::min(found, k);
}

float Model::prepare_query(uint32_t user, bool exclude_seen, float* query, std::vector<uint32_t>& excluded) const {
  const uint32_t stride = users_.stride();
  excluded.clear();
  if (user == EmbeddingTable::kNotFound) {
    std::fill(query, query + stride, 0.0f);
    return offset();
  }
  const float bias = user_query(user, query);
  if (exclude_seen) {
    seen_.collect(user, excluded);
    std::sort(excluded.begin(), excluded.end());
  }
  return offset() + bias;
}

float Model::prepare_user_query(uint32_t user, bool exclude_seen, const Candidates& c, float* query,
                                std::vector<uint32_t>& excluded) const {
  // A candidate list shorter than the user's seen set asks the set about its own rows,
  // instead of collecting (and sorting) everything a heavy user has seen; a longer one
  // (a popular tag) takes the few items a light user has seen.
  const bool per_candidate =
      exclude_seen && c.restricted && user != kNoRow && c.rows.size() < seen_.capacity_of(user);
  const float base = prepare_query(user, exclude_seen && !per_candidate, query, excluded);
  if (per_candidate)
    for (uint32_t r : c.rows)  // ascending, so `excluded` stays sorted
      if (seen_.contains(user, r)) excluded.push_back(r);
  return base;
}

void Model::emit(const ScoredRow* best, uint32_t found, float base, const RecommendOutput& out, size_t at) const {
  for (uint32_t j = 0; j < found; ++j) {
    out.keys[at + j] = items_.key(best[j].row);
    if (out.names != nullptr) out.names[at + j] = items_.name(best[j].row);
    out.scores[at + j] = transform(base + best[j].score);
  }
}

// ---------------------------------------------------------------------------- query kinds

uint32_t Model::recommend(uint64_t user_key, const std::string* user_name, uint32_t k, bool exclude_seen,
                          int num_threads, const RecommendOutput& out, float diversity, const CandidateFilter& filter,
                          RetrievalInfo* info) const {
  check_k(k);
  check_diversity(diversity);
  users_.check_kind(user_name, 1);
  EpochGuard pin;  // the rows found stay these items until their IDs are copied out
  const Candidates c = resolve_filter(filter, info);
  const uint32_t user = lookup(users_, user_key, user_name);
  std::vector<float> query(users_.stride());
  std::vector<uint32_t> excluded;
  const float base = prepare_user_query(user, exclude_seen, c, query.data(), excluded);
  std::vector<float> per_feature;
  if (item_features_.lists.any()) feature_scores(query.data(), per_feature);
  const ScanRules rules = scan_rules(per_feature.data(), static_cast<uint32_t>(per_feature.size()));
  std::vector<ScoredRow> best;
  const uint32_t found = retrieve(query.data(), excluded, c, rules, k, diversity, num_threads, best);
  emit(best.data(), found, base, out, 0);
  return found;
}

void Model::recommend_batch(const IdBatch& u, uint32_t k, bool exclude_seen, int num_threads,
                            const RecommendOutput& out, uint32_t* counts, float diversity,
                            const CandidateFilter& filter, RetrievalInfo* info) const {
  check_k(k);
  check_diversity(diversity);
  users_.check_kind(u.names, u.size);
  EpochGuard pin;
  const Candidates c = resolve_filter(filter, info);
  // Users go in blocks that share each pass over the item vectors (see top_k_many); blocks
  // are spread over threads. A restricted call gathers its few candidates per user instead.
  constexpr int64_t kBlock = 16;
  const int64_t n = static_cast<int64_t>(u.size);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  [[maybe_unused]] const int threads = blocks > 1 ? resolve_threads(num_threads) : 1;
  const uint32_t stride = users_.stride();
  const uint32_t n_rows = items_.size();  // one catalogue snapshot for the whole batch
  const bool featured = item_features_.lists.any();
  const bool scan = !c.restricted && diversity == 0.0f;
  ExceptionSlot failure;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> queries;
    std::vector<std::vector<uint32_t>> excluded(kBlock);
    std::vector<ScoredRow> best;
    std::vector<float> per_feature, one_query;
    float bases[kBlock];
    uint32_t found[kBlock];
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      if (failure.failed()) continue;
      failure.run([&] {
        const int64_t first = b * kBlock;
        const uint32_t count = static_cast<uint32_t>(std::min(kBlock, n - first));
        queries.resize(size_t(count) * stride);
        per_feature.clear();
        uint32_t n_features = 0;
        for (uint32_t q = 0; q < count; ++q) {
          const int64_t i = first + q;
          const uint32_t user = lookup(users_, u.keys[i], u.names != nullptr ? &u.names[i] : nullptr);
          bases[q] = prepare_user_query(user, exclude_seen, c, queries.data() + size_t(q) * stride, excluded[q]);
          if (featured) {
            feature_scores(queries.data() + size_t(q) * stride, one_query);
            if (q == 0) n_features = static_cast<uint32_t>(one_query.size());
            one_query.resize(n_features);  // one feature count for the block
            per_feature.insert(per_feature.end(), one_query.begin(), one_query.end());
          }
        }
        if (scan) {
          for (uint32_t q = 0; q < count; ++q) merge_into(excluded[q], c.denied);
          best.resize(size_t(count) * k);
          top_k_many(items_, n_rows, queries.data(), excluded.data(), count, k, best.data(), found,
                     scan_rules(per_feature.data(), n_features));
          for (uint32_t q = 0; q < count; ++q) {
            counts[first + q] = found[q];
            emit(best.data() + size_t(q) * k, found[q], bases[q], out, size_t(first + q) * k);
          }
          return;
        }
        for (uint32_t q = 0; q < count; ++q) {  // restricted or diversified: one query at a time
          const ScanRules rules = scan_rules(per_feature.data() + size_t(q) * n_features, n_features);
          const uint32_t got = retrieve(queries.data() + size_t(q) * stride, excluded[q], c, rules, k, diversity, 1, best);
          counts[first + q] = got;
          emit(best.data(), got, bases[q], out, size_t(first + q) * k);
        }
      });
    }
  }
  failure.rethrow();
}

uint32_t Model::recommend_for_history(const IdBatch& history, const float* weights, uint32_t k, bool exclude_history,
                                      int num_threads, const RecommendOutput& out, float diversity,
                                      const CandidateFilter& filter, RetrievalInfo* info) const {
  check_k(k);
  check_diversity(diversity);
  if (history.size > kMaxQueryHistory)
    throw std::invalid_argument("a history holds at most " + std::to_string(kMaxQueryHistory) + " items, got " +
                                std::to_string(history.size));
  items_.check_kind(history.names, history.size);
  if (weights != nullptr)
    for (size_t i = 0; i < history.size; ++i)
      if (!(weights[i] >= 0.0f) || !std::isfinite(weights[i]))
        throw std::invalid_argument("history weights must be finite and >= 0, got " + std::to_string(weights[i]));
  EpochGuard pin;
  const Candidates c = resolve_filter(filter, info);
  // The known items, most recent first (the order the families weight by), with their weights.
  std::vector<uint32_t> rows;
  std::vector<float> w;
  for (size_t j = history.size; j-- > 0;) {
    const uint32_t r = lookup(items_, history.keys[j], history.names != nullptr ? &history.names[j] : nullptr);
    if (r == kNoRow) {
      if (info != nullptr) ++info->unknown_history;
      continue;
    }
    rows.push_back(r);
    if (weights != nullptr) w.push_back(weights[j]);
  }
  std::vector<float> query(users_.stride(), 0.0f);
  history_query(rows.data(), weights != nullptr ? w.data() : nullptr, static_cast<uint32_t>(rows.size()), query.data());
  std::vector<uint32_t> excluded;
  if (exclude_history) {
    excluded = rows;
    std::sort(excluded.begin(), excluded.end());
    excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
  }
  std::vector<float> per_feature;
  if (item_features_.lists.any()) feature_scores(query.data(), per_feature);
  const ScanRules rules = scan_rules(per_feature.data(), static_cast<uint32_t>(per_feature.size()));
  std::vector<ScoredRow> best;
  const uint32_t found = retrieve(query.data(), excluded, c, rules, k, diversity, num_threads, best);
  emit(best.data(), found, offset(), out, 0);
  return found;
}

uint32_t Model::similar_items(uint64_t item_key, const std::string* item_name, uint32_t k, int num_threads,
                              const RecommendOutput& out, const CandidateFilter& filter, RetrievalInfo* info) const {
  const IdBatch one{&item_key, item_name, 1};
  uint32_t count = 0;
  similar_items_batch(one, k, num_threads, out, &count, filter, info);
  return count;
}

void Model::similar_items_batch(const IdBatch& ids, uint32_t k, int num_threads, const RecommendOutput& out,
                                uint32_t* counts, const CandidateFilter& filter, RetrievalInfo* info) const {
  check_k(k);
  items_.check_kind(ids.names, ids.size);
  EpochGuard pin;
  std::vector<uint32_t> rows(ids.size);
  for (size_t i = 0; i < ids.size; ++i) {  // every ID is checked before any work
    rows[i] = lookup(items_, ids.keys[i], ids.names != nullptr ? &ids.names[i] : nullptr);
    if (rows[i] == kNoRow)
      throw std::out_of_range("unknown item " + (ids.names != nullptr ? "'" + ids.names[i] + "'" : std::to_string(int64_t(ids.keys[i]))));
  }
  const Candidates c = resolve_filter(filter, info);
  // An item's neighbours are what the model shows a visitor whose session holds that item
  // alone: the family's own query for a history of one, scored as every query is. On the
  // MovieLens replay this ranked the next positive better than the cosine of item vectors
  // for mf and as well for two_tower (benchmarks/bench_retrieval_quality.py).
  std::vector<float> query(items_.stride()), per_feature;
  std::vector<uint32_t> excluded;
  std::vector<ScoredRow> best;
  for (size_t i = 0; i < ids.size; ++i) {  // one query at a time, each scan spread over the threads
    history_query(&rows[i], nullptr, 1, query.data());
    if (item_features_.lists.any()) feature_scores(query.data(), per_feature);
    const ScanRules rules = scan_rules(per_feature.data(), static_cast<uint32_t>(per_feature.size()));
    excluded.assign(1, rows[i]);  // never the item itself
    const uint32_t found = retrieve(query.data(), excluded, c, rules, k, 0.0f, num_threads, best);
    counts[i] = found;
    emit(best.data(), found, offset(), out, i * size_t(k));
  }
}

bool Model::knows_user(uint64_t user_key, const std::string* user_name) const {
  users_.check_kind(user_name, 1);
  return lookup(users_, user_key, user_name) != kNoRow;
}

// ---------------------------------------------------------------------------- query vectors

float Model::user_query(uint32_t user, float* out) const noexcept { return family_->user_query(user, out); }

void Model::history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const {
  const uint32_t stride = users_.stride();
  std::fill(out, out + stride, 0.0f);
  if (n == 0) return;
  family_->history_query(rows, weights, n, out);
}

// ---------------------------------------------------------------------------- hidden items

Model::HideResult Model::hide(const IdBatch& ids, bool hidden) {
  check_list_size(&ids, "a hide or unhide call");
  items_.check_kind(ids.names, ids.size);
  HideResult result{0, 0};
  {
    std::lock_guard<std::mutex> lock(hidden_mutex_);
    for (size_t i = 0; i < ids.size; ++i) {
      const uint32_t r = lookup(items_, ids.keys[i], ids.names != nullptr ? &ids.names[i] : nullptr);
      if (r == kNoRow) ++result.unknown;
      else if (hidden_.set(r, hidden)) ++result.changed;
    }
    if (result.changed > 0) hidden_version_.fetch_add(1, std::memory_order_release);
  }
  if (result.changed > 0) changes_.fetch_add(1, std::memory_order_release);  // a publisher has something to write
  return result;
}

void Model::hidden_flags(const IdBatch& ids, uint8_t* out) const {
  items_.check_kind(ids.names, ids.size);
  for (size_t i = 0; i < ids.size; ++i) {
    const uint32_t r = lookup(items_, ids.keys[i], ids.names != nullptr ? &ids.names[i] : nullptr);
    out[i] = r != kNoRow && hidden_.get(r) ? 1 : 0;
  }
}

}  // namespace rtrec
