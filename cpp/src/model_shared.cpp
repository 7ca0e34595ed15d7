// Model: the shared rows of a user-partitioned model (see Model::SharedRows): read, diffed
// against a base, and added.
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "model_family.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/hash.hpp"
#include "shared_base.hpp"
#include "shared_values.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

// A row's record: vector, bias, then (AdaGrad) the accumulators, then (tables with inputs)
// the input vector and its accumulator.
uint32_t record_width(const EmbeddingTable& t) noexcept {
  const uint32_t dim = t.dim();
  uint32_t w = dim + 1;
  if (t.has_accumulators()) w += t.has_row_accumulators() ? 2 : dim + 1;
  if (t.has_inputs()) w += dim + (t.has_accumulators() ? 1 : 0);
  return w;
}

// Visits the contiguous runs of a row's record in order: f(float* values, uint32_t n).
template <class F>
void each_run(const EmbeddingTable& t, uint32_t row, F&& f) {
  const uint32_t dim = t.dim();
  f(t.vector(row), dim);
  f(&t.bias(row), 1);
  if (t.has_accumulators()) {
    if (t.has_row_accumulators()) {
      f(t.accumulator(row), 2);  // the row's and the bias's, side by side
    } else {
      f(t.accumulator(row), dim);
      f(&t.bias_accumulator(row), 1);
    }
  }
  if (t.has_inputs()) {
    f(t.input(row), dim);
    if (t.has_accumulators()) f(&t.input_accumulator(row), 1);
  }
}

void read_record(const EmbeddingTable& t, uint32_t row, float* out) {
  each_run(t, row, [&](float* values, uint32_t n) {
    copy_values(out, values, n);
    out += n;
  });
}

void add_record(const EmbeddingTable& t, uint32_t row, const float* increment) {
  each_run(t, row, [&](float* values, uint32_t n) {
    add_values(values, increment, n);
    increment += n;
  });
}

// The record of a row of `key` at its start (random vectors, zero bias and accumulators).
void start_record(const EmbeddingTable& t, uint64_t key, bool random, float* out) {
  std::memset(out, 0, sizeof(float) * record_width(t));
  if (!random) return;
  const uint32_t dim = t.dim();
  float* input = t.has_inputs() ? out + record_width(t) - dim - (t.has_accumulators() ? 1 : 0) : nullptr;
  t.initial_vectors(key, out, input);
}

// Removes the records that are all zeros (rows the increment did not move), in place.
void drop_unchanged(Model::SharedRows& s, uint32_t width, uint32_t feature_width) {
  auto moved = [](const float* record, uint32_t n) {
    for (uint32_t k = 0; k < n; ++k)
      if (record[k] != 0.0f) return true;
    return false;
  };
  size_t kept = 0;
  const bool names = !s.item_names.empty();
  for (size_t i = 0; i < s.item_keys.size(); ++i) {
    if (!moved(s.items.data() + i * width, width)) continue;
    if (kept != i) {
      s.item_keys[kept] = s.item_keys[i];
      if (names) s.item_names[kept] = std::move(s.item_names[i]);
      std::memmove(s.items.data() + kept * width, s.items.data() + i * width, width * sizeof(float));
    }
    ++kept;
  }
  s.item_keys.resize(kept);
  if (names) s.item_names.resize(kept);
  s.items.resize(kept * width);
  kept = 0;
  for (size_t i = 0; i < s.feature_names.size(); ++i) {
    if (!moved(s.features.data() + i * feature_width, feature_width)) continue;
    if (kept != i) {
      s.feature_names[kept] = std::move(s.feature_names[i]);
      std::memmove(s.features.data() + kept * feature_width, s.features.data() + i * feature_width,
                   feature_width * sizeof(float));
    }
    ++kept;
  }
  s.feature_names.resize(kept);
  s.features.resize(kept * feature_width);
}

}  // namespace

uint32_t Model::shared_record_width(bool features) const noexcept {
  return record_width(features ? item_features_.table : items_);
}

Model::SharedRows Model::shared_rows() const {
  EpochGuard pin;  // the rows read stay these IDs
  SharedRows s;
  const bool strings = items_.kind() == IdKind::kString;
  const uint32_t width = record_width(items_);
  for (uint32_t r = 0, n = items_.size(); r < n; ++r) {
    if (!items_.is_live(r)) continue;
    s.item_keys.push_back(items_.key(r));
    if (strings) s.item_names.push_back(items_.name(r));
    s.items.resize(s.items.size() + width);
    read_record(items_, r, s.items.data() + s.items.size() - width);
  }
  const EmbeddingTable& f = item_features_.table;
  const uint32_t feature_width = record_width(f);
  for (uint32_t r = 0, n = f.size(); r < n; ++r) {
    if (!f.is_live(r)) continue;
    s.feature_names.push_back(f.name(r));
    s.features.resize(s.features.size() + feature_width);
    read_record(f, r, s.features.data() + s.features.size() - feature_width);
  }
  if (const DenseTower* tower = family_->tower(); tower != nullptr) {
    s.tower.resize(tower->parameter_count());
    copy_values(s.tower.data(), tower->parameters(), s.tower.size());
  }
  s.label_sum = label_sum_.load(std::memory_order_relaxed);
  s.weight_sum = weight_sum_.load(std::memory_order_relaxed);
  return s;
}

Model::SharedRows Model::shared_increment(const SharedRows& base) const { return increment_between(shared_rows(), base); }

Model::SharedRows Model::increment_between(SharedRows now, const SharedRows& base) const {
  const uint32_t width = record_width(items_), feature_width = record_width(item_features_.table);
  if (base.items.size() != base.item_keys.size() * width || base.features.size() != base.feature_names.size() * feature_width ||
      (!base.tower.empty() && base.tower.size() != now.tower.size()))
    throw std::invalid_argument("shared_increment: the base does not have this model's shape");
  std::unordered_map<uint64_t, size_t> at;
  for (size_t i = 0; i < base.item_keys.size(); ++i) at.emplace(base.item_keys[i], i);
  std::vector<float> start(width);
  for (size_t i = 0; i < now.item_keys.size(); ++i) {
    float* value = now.items.data() + i * width;
    const auto found = at.find(now.item_keys[i]);
    const float* before = start.data();
    if (found != at.end()) before = base.items.data() + found->second * width;
    else start_record(items_, now.item_keys[i], true, start.data());
    for (uint32_t k = 0; k < width; ++k) value[k] -= before[k];
  }
  std::unordered_map<std::string, size_t> feature_at;
  for (size_t i = 0; i < base.feature_names.size(); ++i) feature_at.emplace(base.feature_names[i], i);
  for (size_t i = 0; i < now.feature_names.size(); ++i) {
    const auto found = feature_at.find(now.feature_names[i]);
    if (found == feature_at.end()) continue;  // feature rows start at zero: the value is the increment
    float* value = now.features.data() + i * feature_width;
    const float* before = base.features.data() + found->second * feature_width;
    for (uint32_t k = 0; k < feature_width; ++k) value[k] -= before[k];
  }
  for (size_t k = 0; k < base.tower.size(); ++k) now.tower[k] -= base.tower[k];
  now.label_sum -= base.label_sum;
  now.weight_sum -= base.weight_sum;
  drop_unchanged(now, width, feature_width);  // an increment carries only the rows that moved
  return now;
}

void Model::reset_shared_base() {
  auto base = std::make_unique<SharedBase>();
  base->rows = shared_rows();
  base->index();
  std::lock_guard<std::mutex> lock(shared_base_mutex_);
  shared_base_ = std::move(base);
}

Model::SharedRows Model::take_shared_increment() {
  std::lock_guard<std::mutex> lock(shared_base_mutex_);
  if (shared_base_ == nullptr) throw std::logic_error("take_shared_increment: no base (call reset_shared_base first)");
  SharedRows now = shared_rows();  // read once: nothing learns meanwhile (see the header)
  SharedRows increment = increment_between(now, shared_base_->rows);
  shared_base_->rows = std::move(now);
  shared_base_->index();
  return increment;
}

void Model::add_to_shared_base(const SharedRows& inc) {
  const uint32_t width = record_width(items_), feature_width = record_width(item_features_.table);
  std::lock_guard<std::mutex> lock(shared_base_mutex_);
  if (shared_base_ == nullptr) throw std::logic_error("add_to_shared_base: no base (call reset_shared_base first)");
  SharedRows& base = shared_base_->rows;
  if (inc.items.size() != inc.item_keys.size() * width || inc.features.size() != inc.feature_names.size() * feature_width ||
      (!inc.tower.empty() && inc.tower.size() != base.tower.size()))
    throw std::invalid_argument("add_to_shared_base: the increment does not have this model's shape");
  const bool strings = !inc.item_names.empty();
  for (size_t i = 0; i < inc.item_keys.size(); ++i) {
    auto found = shared_base_->item_at.find(inc.item_keys[i]);
    if (found == shared_base_->item_at.end()) {  // a row this copy makes from its random start
      found = shared_base_->item_at.emplace(inc.item_keys[i], base.item_keys.size()).first;
      base.item_keys.push_back(inc.item_keys[i]);
      if (strings) base.item_names.push_back(inc.item_names[i]);
      base.items.resize(base.items.size() + width);
      start_record(items_, inc.item_keys[i], true, base.items.data() + base.items.size() - width);
    }
    float* value = base.items.data() + found->second * width;
    for (uint32_t k = 0; k < width; ++k) value[k] += inc.items[i * width + k];
  }
  for (size_t i = 0; i < inc.feature_names.size(); ++i) {
    auto found = shared_base_->feature_at.find(inc.feature_names[i]);
    if (found == shared_base_->feature_at.end()) {  // feature rows start at zero
      found = shared_base_->feature_at.emplace(inc.feature_names[i], base.feature_names.size()).first;
      base.feature_names.push_back(inc.feature_names[i]);
      base.features.resize(base.features.size() + feature_width, 0.0f);
    }
    float* value = base.features.data() + found->second * feature_width;
    for (uint32_t k = 0; k < feature_width; ++k) value[k] += inc.features[i * feature_width + k];
  }
  for (size_t k = 0; k < inc.tower.size(); ++k) base.tower[k] += inc.tower[k];
  base.label_sum += inc.label_sum;
  base.weight_sum += inc.weight_sum;
}

void Model::add_shared(const SharedRows& inc) {
  const uint32_t width = record_width(items_), feature_width = record_width(item_features_.table);
  const DenseTower* tower = family_->tower();
  if (inc.items.size() != inc.item_keys.size() * width ||
      inc.features.size() != inc.feature_names.size() * feature_width ||
      (!inc.item_names.empty() && inc.item_names.size() != inc.item_keys.size()) ||
      (!inc.tower.empty() && (tower == nullptr || inc.tower.size() != tower->parameter_count())))
    throw std::invalid_argument("add_shared: the increment does not have this model's shape");
  const std::string* names = inc.item_names.empty() ? nullptr : inc.item_names.data();
  items_.check_kind(names, inc.item_keys.size());
  items_.check_batch(inc.item_keys.data(), names, inc.item_keys.size());
  {
    EpochGuard pin;
    const double now = clock();
    for (size_t i = 0; i < inc.item_keys.size(); ++i) {
      const uint32_t row = items_.find_or_insert(inc.item_keys[i], names != nullptr ? &names[i] : nullptr, true, now);
      add_record(items_, row, inc.items.data() + i * width);
      sync_item(row);
      items_.mark(row, generation_);
    }
    EmbeddingTable& features = item_features_.table;
    for (size_t i = 0; i < inc.feature_names.size(); ++i) {
      const std::string& name = inc.feature_names[i];
      const uint32_t row = features.find_or_insert(hash_string_id(name), &name, false, now);
      add_record(features, row, inc.features.data() + i * feature_width);
      features.mark(row, generation_);
    }
  }
  if (!inc.tower.empty()) {
    add_values(family_->tower()->parameters(), inc.tower.data(), inc.tower.size());
  }
  record_labels(inc.label_sum, inc.weight_sum);
  changes_.fetch_add(1, std::memory_order_release);
  bool has_base = false;
  {
    std::lock_guard<std::mutex> lock(shared_base_mutex_);
    has_base = shared_base_ != nullptr;
  }
  if (has_base) add_to_shared_base(inc);  // a peer's learning, not this trainer's own
}

}  // namespace rtrec
