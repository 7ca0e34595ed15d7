// Model: the WARP loss (Weston et al. 2011, as LightFM trains it). For each positive, items
// are sampled until one violates the margin (scores above the positive's score minus 1) or
// `negatives` tries are used up; a violator gets a BPR step whose weight is scaled by the
// rank estimate L(floor((n - 1) / tries)), L(k) = 1 + 1/2 + ... + 1/k: a positive that
// needed many tries to find a violator already ranks near the top and moves little, one
// beaten by the first sample ranks low and moves a lot. That puts the model's effort on the
// top of each user's list, which is what Recall@k measures.
#include <cmath>

#include "model_internal.hpp"
#include "rtrec/model.hpp"

namespace rtrec {
using namespace model_detail;

float warp_rank_weight(uint32_t n_items, uint32_t tries) noexcept {
  if (n_items < 2 || tries == 0) return 0.0f;
  const uint32_t k = (n_items - 1) / tries;
  if (k <= 64) {  // exact for short sums; the asymptotic series below is off by < 1e-9 past 64
    double sum = 0.0;
    for (uint32_t j = 1; j <= k; ++j) sum += 1.0 / j;
    return static_cast<float>(sum);
  }
  const double x = k;
  return static_cast<float>(std::log(x) + 0.5772156649015329 + 1.0 / (2.0 * x) - 1.0 / (12.0 * x * x));
}

void Model::train_warp(const StepConfig& step, const Resolved& e, const uint32_t* negatives, float* scratch,
                       uint64_t& applied, uint64_t& skipped) noexcept {
  if (!(e.label > 0.0f)) return;  // as BPR: only implicit positives teach (samples_negatives)
  const uint32_t n = step.stride;
  const bool item_lists = item_features_.lists.any();
  const bool featured_user = user_features_.lists.any() && user_features_.lists.get(e.user) != nullptr;
  // The user's effective vector and the items' scores (the user bias cancels in every
  // comparison). Rows with features are scored through their effective vectors.
  thread_local std::vector<float> buffers;
  if (item_lists || featured_user) {
    try {
      if (buffers.size() < 2 * size_t(n)) buffers.resize(2 * size_t(n));
    } catch (...) {
      ++skipped;
      return;
    }
  }
  const float* p = users_.vector(e.user);
  if (featured_user) {
    effective(users_, user_features_, e.user, buffers.data());
    p = buffers.data();
  }
  auto score = [&](uint32_t item) {
    if (item_lists && item_features_.lists.get(item) != nullptr) {
      float* q = buffers.data() + n;
      const float bias = effective(items_, item_features_, item, q);
      return bias + dot(p, q, n);
    }
    return items_.bias(item) + dot(p, items_.vector(item), n);
  };
  const float positive = score(e.item);
  uint32_t violator = kNoRow, tries = 0;
  for (uint32_t s = 0; s < config_.negatives; ++s) {
    ++tries;  // an unusable draw (the positive twice) uses up its try, as in LightFM
    if (negatives[s] == kNoRow) continue;
    const float negative = score(negatives[s]);
    if (negative > positive - 1.0f) {
      violator = negatives[s];
      break;
    }
  }
  if (violator == kNoRow) return;  // ranks above every sample by the margin: nothing to learn
  const float weight = e.weight * warp_rank_weight(items_.live_count(), tries);
  const bool composite = featured_user || (item_lists && (item_features_.lists.get(e.item) != nullptr ||
                                                          item_features_.lists.get(violator) != nullptr));
  if (!composite) {
    const bool ok = pairwise_step(step, user_row(e.user), item_row(e.item), item_row(violator), weight, scratch);
    ++(ok ? applied : skipped);
    return;
  }
  Resolved scaled = e;
  scaled.weight = weight;
  train_composite(step, scaled, &violator, 1, applied, skipped);
}

}  // namespace rtrec
