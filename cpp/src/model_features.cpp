// Model: side features (set_features, effective vectors, the composite training step).
#include "rtrec/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model_internal.hpp"
#include "rtrec/epoch.hpp"

namespace rtrec {
using namespace model_detail;

void Model::train_composite(const StepConfig& step, const Resolved& e, const uint32_t* negatives, uint32_t n_negatives,
                            uint64_t& applied, uint64_t& skipped) noexcept {
  thread_local std::vector<float> scratch;
  thread_local std::vector<Part> user, item, negative;
  try {
    user.clear();
    item.clear();
    parts_of(users_, user_features_, e.user, user);
    parts_of(items_, item_features_, e.item, item);
    if (!sampled_loss()) {
      const bool ok = pointwise_composite(step, config_.loss, Parts{user.data(), uint32_t(user.size())},
                                          Parts{item.data(), uint32_t(item.size())}, offset(), e.label, e.weight, scratch);
      ++(ok ? applied : skipped);
      return;
    }
    if (!(e.label > 0.0f)) return;
    for (uint32_t s = 0; s < n_negatives; ++s) {
      if (negatives[s] == kNoRow) continue;
      negative.clear();
      parts_of(items_, item_features_, negatives[s], negative);
      const bool ok = pairwise_composite(step, Parts{user.data(), uint32_t(user.size())},
                                         Parts{item.data(), uint32_t(item.size())},
                                         Parts{negative.data(), uint32_t(negative.size())}, e.weight, scratch);
      ++(ok ? applied : skipped);
    }
  } catch (...) {  // out of memory for the part lists: the step is skipped, like a bad one
    ++skipped;
  }
}

void Model::parts_of(const EmbeddingTable& ids, const FeatureSide& side, uint32_t row, std::vector<Part>& out) const {
  const bool ada = ids.has_accumulators();
  out.push_back(Part{RowRef{ids.vector(row), ada ? ids.accumulator(row) : nullptr, &ids.bias(row),
                            ada ? &ids.bias_accumulator(row) : nullptr},
                     1.0f});
  const FeatureList* list = side.lists.get(row);
  if (list == nullptr) return;
  const EmbeddingTable& t = side.table;
  for (uint32_t k = 0; k < list->size; ++k) {
    const uint32_t f = list->rows[k];
    out.push_back(Part{RowRef{t.vector(f), ada ? t.accumulator(f) : nullptr, &t.bias(f), ada ? &t.bias_accumulator(f) : nullptr},
                       list->scale});
  }
}

float Model::effective(const EmbeddingTable& ids, const FeatureSide& side, uint32_t row, float* out) const noexcept {
  const uint32_t stride = ids.stride();
  const float* v = ids.vector(row);
  std::copy(v, v + stride, out);
  float bias = ids.bias(row);
  const FeatureList* list = side.lists.get(row);
  if (list == nullptr) return bias;
  for (uint32_t k = 0; k < list->size; ++k) {
    const float* f = side.table.vector(list->rows[k]);
    for (uint32_t t = 0; t < stride; ++t) out[t] += list->scale * f[t];
    bias += list->scale * side.table.bias(list->rows[k]);
  }
  return bias;
}

void Model::mark_features(const FeatureSide& side, uint32_t row) noexcept {
  const FeatureList* list = side.lists.get(row);
  if (list == nullptr) return;
  for (uint32_t k = 0; k < list->size; ++k) side.table.mark(list->rows[k], generation_);
}

void Model::feature_scores(const float* query, std::vector<float>& out) const {
  const EmbeddingTable& t = item_features_.table;
  const uint32_t n = t.size();
  out.resize(n);
  for (uint32_t c = 0; c * EmbeddingTable::kChunkRows < n; ++c) {
    const uint32_t rows = std::min(EmbeddingTable::kChunkRows, n - c * EmbeddingTable::kChunkRows);
    score_block(query, t.chunk_vectors(c), t.chunk_biases(c), rows, t.stride(), out.data() + size_t(c) * EmbeddingTable::kChunkRows);
  }
}

void Model::set_features(bool on_items, const IdBatch& ids, const std::vector<std::vector<std::string>>& features) {
  set_features_pinned(on_items, ids, features);
  maintain();  // new ID rows count against max_rows like any others
}

void Model::set_features_pinned(bool on_items, const IdBatch& ids, const std::vector<std::vector<std::string>>& features) {
  EmbeddingTable& table = on_items ? items_ : users_;
  FeatureSide& side = on_items ? item_features_ : user_features_;
  const char* what = on_items ? "item" : "user";
  EpochGuard pin;  // the checks below read stored names by row
  if (features.size() != ids.size)
    throw std::invalid_argument(std::string("one feature list per ") + what + " is needed: got " + std::to_string(ids.size) +
                                " IDs and " + std::to_string(features.size()) + " lists");
  table.check_batch(ids.keys, ids.names, ids.size);  // the ID-kind rule first
  // Every feature name is checked (and collisions with known features refused) before
  // anything changes.
  std::vector<uint64_t> keys;
  std::vector<std::string> names;
  for (const auto& list : features) {
    if (list.size() > kMaxFeaturesPerId)
      throw std::invalid_argument(std::string("at most ") + std::to_string(kMaxFeaturesPerId) + " features per " + what +
                                  ", got " + std::to_string(list.size()));
    for (const std::string& name : list) {
      if (name.empty()) throw std::invalid_argument("feature names must be non-empty strings");
      keys.push_back(hash_string_id(name));
      names.push_back(name);
    }
  }
  side.table.check_batch(keys.data(), names.data(), keys.size());

  std::lock_guard<std::mutex> lock(features_mutex_);
  // New rows count as updated now on the model's clock; before the first event there is no
  // clock yet, and the first event stamps them (stamp_untouched).
  const double now = clock();
  if (now == 0.0) unstamped_.store(true);
  size_t at = 0;
  std::vector<uint32_t> rows;
  for (size_t i = 0; i < ids.size; ++i) {
    const uint32_t row = table.find_or_insert(ids.keys[i], ids.names != nullptr ? &ids.names[i] : nullptr, true, now);
    if (on_items) sync_item(row);  // a new item's start into the compact shadow
    rows.clear();
    for (size_t k = 0; k < features[i].size(); ++k, ++at) {
      const uint32_t f = side.table.find_or_insert(keys[at], &names[at], /*random_init=*/false, now);
      side.table.mark(f, generation_);  // before any list names it (see write_features in snapshot_sections.cpp)
      if (std::find(rows.begin(), rows.end(), f) == rows.end()) rows.push_back(f);  // a repeat counts once
    }
    side.lists.set(row, rows);
    table.mark(row, generation_);
  }
  // The first event may have started the clock meanwhile, after it looked for rows to stamp.
  if (now == 0.0 && clock() != 0.0 && unstamped_.exchange(false)) stamp_untouched(clock());
  changes_.fetch_add(1, std::memory_order_release);
}

std::vector<std::string> Model::features_of(bool on_items, uint64_t key, const std::string* name) const {
  const EmbeddingTable& table = on_items ? items_ : users_;
  const FeatureSide& side = on_items ? item_features_ : user_features_;
  EpochGuard pin;
  std::vector<std::string> out;
  const uint32_t row = lookup(table, key, name);
  if (row == kNoRow) return out;
  const FeatureList* list = side.lists.get(row);
  if (list == nullptr) return out;
  for (uint32_t k = 0; k < list->size; ++k) out.push_back(side.table.name(list->rows[k]));
  return out;
}

}  // namespace rtrec
