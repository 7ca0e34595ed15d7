// The mf family: the user's query is their effective vector, and a step is one of the kernels
// (kernels.cpp; warp in model_warp.cpp, rows with features in model_features.cpp).
#include <algorithm>
#include <cmath>

#include "model_family.hpp"
#include "rtrec/parallel.hpp"

namespace rtrec {
using namespace model_detail;

void Model::MfFamily::fit(std::vector<Resolved>& events, const EventBatch&, uint32_t epochs, int threads,
                          uint64_t call) {
  events.erase(std::remove_if(events.begin(), events.end(), [](const Resolved& r) { return !(r.weight > 0.0f); }),
               events.end());
  if (m_.sampled_loss() && config_.popularity_negatives()) {
    SplitMix64 pool_rng(derive_seed(config_.seed, kPoolStream, call));
    m_.sampler_.refill(events, pool_rng);
  }
  std::vector<float> scratch(size_t(scratch_floats(users_.stride())) * threads);
  std::vector<uint32_t> negatives(size_t(kPrefetchAhead + 1) * config_.negatives * threads);
  const int parts = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, events.size() / 1024)));
  const std::vector<int64_t> bounds = parts > 1 ? partition_by_user(events, users_.size(), parts,
                                                                    derive_seed(config_.seed, kPartitionStream, call))
                                                : std::vector<int64_t>{0, static_cast<int64_t>(events.size())};
  for (uint32_t epoch = 0; epoch < epochs; ++epoch) m_.train_epoch(events, bounds, call, epoch, scratch, negatives);
}

uint32_t Model::MfFamily::learn(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                                const uint32_t* negatives, float* scratch, uint32_t*, uint64_t& applied,
                                uint64_t& skipped) {
  if (m_.adaptive_) m_.train_one(m_.adaptive_step(step, r, user_key, item_key, scratch), r, negatives, scratch, applied, skipped);
  else m_.train_one(step, r, negatives, scratch, applied, skipped);
  if (m_.compact_ != nullptr) {  // the rows the step wrote, into the compact shadow
    m_.sync_item(r.item);
    if (m_.sampled_loss())
      for (uint32_t s = 0; s < config_.negatives; ++s) m_.sync_item(negatives[s]);
  }
  return 0;  // mf items have no input vectors
}

float Model::MfFamily::user_query(uint32_t user, float* out) const noexcept {
  return m_.effective(users_, user_features_, user, out);
}

void Model::MfFamily::history_query(const uint32_t* rows, const float* weights, uint32_t n, float* out) const {
  // sum_j w_j q_j / sqrt(sum_j w_j), the items' effective vectors.
  const uint32_t stride = users_.stride();
  std::vector<float> q(stride);
  double total = 0.0;
  for (uint32_t j = 0; j < n; ++j) {
    const float w = weights != nullptr ? weights[j] : 1.0f;
    if (w == 0.0f) continue;
    m_.effective(items_, item_features_, rows[j], q.data());
    for (uint32_t d = 0; d < stride; ++d) out[d] += w * q[d];
    total += w;
  }
  if (total <= 0.0) return;
  const float scale = static_cast<float>(1.0 / std::sqrt(total));
  for (uint32_t d = 0; d < stride; ++d) out[d] *= scale;
}

void Model::MfFamily::explain(uint32_t user, uint32_t item, const float* item_vector, const float* query,
                              std::vector<Reason>& reasons) const {
  // Everything is a cosine in the model's space. The user's consumed items by their
  // similarity to the item (as implicit's ALS explain lists the liked items behind a
  // score); the item's features by how well they match the user's vector; the user's
  // features by how well they match the item's.
  const uint32_t stride = items_.stride();
  std::vector<float> other(stride);
  std::vector<uint32_t> consumed;
  m_.seen_.collect(user, consumed);
  std::sort(consumed.begin(), consumed.end());
  consumed.erase(std::unique(consumed.begin(), consumed.end()), consumed.end());
  const uint32_t n_items = items_.size();
  for (uint32_t row : consumed) {
    if (row >= n_items || (items_.has_erased() && !items_.is_live(row))) continue;
    m_.effective(items_, item_features_, row, other.data());
    reasons.push_back(m_.item_reason(row, cosine(other.data(), item_vector, stride)));
  }
  const FeatureList* item_list = item_features_.lists.get(item);
  const FeatureList* user_list = user_features_.lists.get(user);
  for (uint32_t k = 0; item_list != nullptr && k < item_list->size; ++k) {
    const uint32_t f = item_list->rows[k];
    reasons.push_back(Reason{true, 0, item_features_.table.name(f), cosine(item_features_.table.vector(f), query, stride)});
  }
  for (uint32_t k = 0; user_list != nullptr && k < user_list->size; ++k) {
    const uint32_t f = user_list->rows[k];
    reasons.push_back(Reason{true, 0, user_features_.table.name(f), cosine(user_features_.table.vector(f), item_vector, stride)});
  }
}

// ---------------------------------------------------------------------------- the steps

void Model::train_one(const StepConfig& step, const Resolved& e, const uint32_t* negatives, float* scratch,
                      uint64_t& applied, uint64_t& skipped) noexcept {
  if (config_.loss == Loss::kWarp) {
    train_warp(step, e, negatives, scratch, applied, skipped);
    return;
  }
  if (any_features()) {
    const bool featured = user_features_.lists.get(e.user) != nullptr || item_features_.lists.get(e.item) != nullptr ||
                          (config_.loss == Loss::kBpr && [&] {
                            for (uint32_t s = 0; s < config_.negatives; ++s)
                              if (negatives[s] != kNoRow && item_features_.lists.get(negatives[s]) != nullptr) return true;
                            return false;
                          }());
    if (featured) {
      train_composite(step, e, negatives, config_.negatives, applied, skipped);
      return;
    }
  }
  if (config_.loss != Loss::kBpr) {
    const bool ok = pointwise_step(step, config_.loss, user_row(e.user), item_row(e.item), offset(), e.label,
                                   e.weight, scratch);
    ++(ok ? applied : skipped);
    return;
  }
  if (!(e.label > 0.0f)) return;  // BPR learns only from positives
  const RowRef user = user_row(e.user);
  const RowRef positive = item_row(e.item);
  for (uint32_t s = 0; s < config_.negatives; ++s) {
    if (negatives[s] == kNoRow) continue;
    const bool ok = pairwise_step(step, user, positive, item_row(negatives[s]), e.weight, scratch);
    ++(ok ? applied : skipped);
  }
}

void Model::train_epoch(std::vector<Resolved>& events, const std::vector<int64_t>& bounds, uint64_t call,
                        uint32_t epoch, std::vector<float>& scratch, std::vector<uint32_t>& negatives) {
  // Rows are visited in random order, so the loop is bound by memory latency: each thread
  // prefetches the rows of the event kAhead positions ahead (drawing its negatives early so
  // that they can be prefetched too) and keeps those negatives in a ring of kAhead + 1 slots.
  constexpr int64_t kAhead = kPrefetchAhead;
  constexpr int64_t kSlots = kAhead + 1;
  const StepConfig step = step_config();
  const uint32_t floats = scratch_floats(step.stride);
  const uint32_t n_neg = sampled_loss() ? config_.negatives : 0;  // mf: bpr or warp
  const uint32_t n_items = items_.size();
  const int parts = static_cast<int>(bounds.size()) - 1;
  const bool featured = any_features();
  uint64_t applied = 0, skipped = 0;
#pragma omp parallel num_threads(parts) reduction(+ : applied, skipped)
  {
    const int t = thread_index();
    float* local = scratch.data() + size_t(floats) * t;
    uint32_t* ring = negatives.data() + size_t(kSlots) * n_neg * t;
    // OpenMP may grant fewer threads than parts: then a thread takes several parts.
    for (int part = t; part < parts; part += team_size()) {
      const int64_t begin = bounds[part], end = bounds[part + 1];
      SplitMix64 rng(derive_seed(config_.seed, kShuffleStream, call * 65536 + epoch, part));
      for (int64_t i = end - 1; i > begin; --i) std::swap(events[i], events[begin + rng.below(uint32_t(i - begin + 1))]);
      auto stage = [&](int64_t j) {  // draw negatives of event j and start fetching its rows
        const Resolved& e = events[j];
        uint32_t* neg = ring + (j % kSlots) * n_neg;
        if (n_neg > 0) sampler_.draw(items_, e.item, n_items, rng, neg);
        if (n_neg > 0) users_.prefetch_vector(e.user);  // BPR never reads the user's bias
        else users_.prefetch(e.user);
        items_.prefetch(e.item);
        for (uint32_t s = 0; s < n_neg; ++s)
          if (neg[s] != kNoRow) items_.prefetch(neg[s]);
        if (featured) {  // the rows' feature lists too (the feature rows are few and stay cached)
          user_features_.lists.prefetch(e.user);
          item_features_.lists.prefetch(e.item);
          for (uint32_t s = 0; s < n_neg; ++s)
            if (neg[s] != kNoRow) item_features_.lists.prefetch(neg[s]);
        }
      };
      for (int64_t j = begin; j < std::min(end, begin + kAhead); ++j) stage(j);
      for (int64_t i = begin; i < end; ++i) {
        if (i + kAhead < end) stage(i + kAhead);  // fills another slot than event i's
        train_one(step, events[i], ring + (i % kSlots) * n_neg, local, applied, skipped);
        if (compact_ != nullptr) {  // the rows the step wrote, into the compact shadow
          sync_item(events[i].item);
          for (uint32_t s = 0; s < n_neg; ++s) sync_item(ring[(i % kSlots) * n_neg + s]);
        }
      }
    }
  }
  updates_.fetch_add(applied, std::memory_order_relaxed);
  skipped_.fetch_add(skipped, std::memory_order_relaxed);
}

StepConfig Model::adaptive_step(const StepConfig& step, const Resolved& r, uint64_t user_key, uint64_t item_key,
                                float* scratch) const noexcept {
  // The event's residual under the current rows (their effective vectors: features count).
  float* p = scratch;
  float* q = scratch + step.stride;
  const float bias = effective(users_, user_features_, r.user, p) + effective(items_, item_features_, r.item, q);
  const float score = offset() + bias + dot(p, q, step.stride);
  StepConfig scaled = step;
  scaled.learning_rate *= adaptive_->scale(user_key, item_key,
                                           pointwise_gradient(config_.loss, score, r.label, config_.huber_delta));
  return scaled;
}

}  // namespace rtrec
