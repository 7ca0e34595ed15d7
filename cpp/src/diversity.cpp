#include "rtrec/diversity.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "rtrec/kernels.hpp"

namespace rtrec {

uint32_t diversity_pool(uint32_t k) noexcept {
  const uint64_t pool = std::max<uint64_t>(uint64_t(k) * kDiversityPoolFactor, kDiversityPoolMin);
  return static_cast<uint32_t>(std::min<uint64_t>(pool, std::numeric_limits<uint32_t>::max()));
}

void check_diversity(double lambda) {
  if (!(lambda >= 0.0 && lambda <= kMaxDiversity)) {  // false for NaN too
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", lambda);
    throw std::invalid_argument(std::string("diversity must be a finite number in [0, 1] (0: plain top-K, 1: most "
                                            "diverse), got ") + text);
  }
}

void mmr_select(const float* relevance, const float* vectors, uint32_t n, uint32_t stride, uint32_t k, float lambda,
                uint32_t* order, std::vector<float>& scratch) {
  k = std::min(k, n);
  if (k == 0) return;
  // scratch: unit vectors (n x stride), then per candidate: scaled relevance, max
  // similarity so far (raw cosine), picked flag.
  scratch.assign(size_t(n) * stride + 3 * size_t(n), 0.0f);
  float* unit = scratch.data();
  float* rel = unit + size_t(n) * stride;
  float* nearest = rel + n;
  float* picked = nearest + n;
  for (uint32_t j = 0; j < n; ++j) {
    const float* v = vectors + size_t(j) * stride;
    const float norm = std::sqrt(dot(v, v, stride));
    if (norm > 0.0f && std::isfinite(norm))
      for (uint32_t t = 0; t < stride; ++t) unit[size_t(j) * stride + t] = v[t] / norm;
  }
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (uint32_t j = 0; j < n; ++j) {
    lo = std::min(lo, relevance[j]);
    hi = std::max(hi, relevance[j]);
  }
  for (uint32_t j = 0; j < n; ++j) rel[j] = hi > lo ? (relevance[j] - lo) / (hi - lo) : 1.0f;
  // The range of pairwise similarity over the pool, for its [0, 1] scaling.
  float sim_lo = std::numeric_limits<float>::infinity(), sim_hi = -sim_lo;
  for (uint32_t a = 0; a < n; ++a)
    for (uint32_t b = a + 1; b < n; ++b) {
      const float s = dot(unit + size_t(a) * stride, unit + size_t(b) * stride, stride);
      sim_lo = std::min(sim_lo, s);
      sim_hi = std::max(sim_hi, s);
    }
  const float sim_scale = sim_hi > sim_lo ? 1.0f / (sim_hi - sim_lo) : 0.0f;
  for (uint32_t j = 0; j < n; ++j) nearest[j] = -std::numeric_limits<float>::infinity();
  for (uint32_t step = 0; step < k; ++step) {
    uint32_t best = n;
    float best_value = -std::numeric_limits<float>::infinity();
    for (uint32_t j = 0; j < n; ++j) {
      if (picked[j] != 0.0f) continue;
      // Nothing picked yet: no redundancy (the max over an empty set is taken as 0).
      const float redundancy = step == 0 ? 0.0f : (nearest[j] - sim_lo) * sim_scale;
      const float value = (1.0f - lambda) * rel[j] - lambda * redundancy;
      // Ties go to the more relevant (so lambda = 1 still starts from the best item), then
      // to the lower index.
      if (best == n || value > best_value || (value == best_value && rel[j] > rel[best])) {
        best = j;
        best_value = value;
      }
    }
    order[step] = best;
    picked[best] = 1.0f;
    const float* chosen = unit + size_t(best) * stride;
    for (uint32_t j = 0; j < n; ++j)
      if (picked[j] == 0.0f) nearest[j] = std::max(nearest[j], dot(chosen, unit + size_t(j) * stride, stride));
  }
}

}  // namespace rtrec
