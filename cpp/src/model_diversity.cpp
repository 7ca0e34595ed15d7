// Model: diversified lists (MMR over a pool of the best-scored items, see diversity.hpp).
#include "model_internal.hpp"
#include "rtrec/diversity.hpp"
#include "rtrec/model.hpp"

namespace rtrec {

uint32_t Model::diversify(ScoredRow* pool, uint32_t found, uint32_t k, float diversity, std::vector<float>& vectors,
                          std::vector<float>& scratch) const {
  const uint32_t picks = std::min(k, found);
  if (found <= 1) return picks;
  // The items' vectors as scoring sees them (ID row plus side features), so two items that
  // share features are similar even before their own rows have learned it.
  const uint32_t stride = items_.stride();
  vectors.resize(size_t(found) * stride + found);
  float* relevance = vectors.data() + size_t(found) * stride;
  for (uint32_t j = 0; j < found; ++j) {
    effective(items_, item_features_, pool[j].row, vectors.data() + size_t(j) * stride);
    relevance[j] = pool[j].score;
  }
  std::vector<uint32_t> order(picks);
  mmr_select(relevance, vectors.data(), found, stride, picks, diversity, order.data(), scratch);
  std::vector<ScoredRow> chosen(picks);
  for (uint32_t j = 0; j < picks; ++j) chosen[j] = pool[order[j]];
  std::copy(chosen.begin(), chosen.end(), pool);
  return picks;
}

}  // namespace rtrec
