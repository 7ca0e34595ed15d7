// Diversified top-K by maximal marginal relevance (MMR, Carbonell & Goldstein 1998): from a
// pool of the best-scored candidates, pick next the one maximising
//   (1 - lambda) * relevance - lambda * (max similarity to the items already picked),
// relevance and similarity each min-max scaled to [0, 1] over the pool (so lambda weighs
// two quantities of the same range whatever the model's score scale). Similarity is the
// cosine of the items' vectors. lambda = 0 is plain top-K; the model never enters this
// code then (its exact top-K path is untouched).
#pragma once

#include <cstdint>
#include <vector>

namespace rtrec {

// The pool MMR chooses from: max(kDiversityPoolFactor * k, kDiversityPoolMin) best-scored
// candidates (fewer when the catalogue is smaller). Five times the list gives MMR room to
// swap in items from further down without reaching items the model thinks poor; the floor
// keeps short lists (k = 1..10) from choosing among too few.
constexpr uint32_t kDiversityPoolFactor = 5;
constexpr uint32_t kDiversityPoolMin = 50;
constexpr double kMaxDiversity = 1.0;

// The pool size for a list of k (saturates instead of overflowing).
uint32_t diversity_pool(uint32_t k) noexcept;

// Throws std::invalid_argument unless 0 <= lambda <= kMaxDiversity (and finite).
void check_diversity(double lambda);

// MMR over n candidates: `relevance` (n scores, any scale, best first or not), `vectors`
// (n rows of `stride` floats, any norm; a zero row is similar to nothing). Writes the
// indices of min(k, n) picks, in pick order, to `order`. Ties go to the more relevant, then
// to the lower index.
// `scratch` grows as needed. Cost: n^2/2 + k*n dot products (the pairwise range, then
// the rows of the picked items).
void mmr_select(const float* relevance, const float* vectors, uint32_t n, uint32_t stride, uint32_t k, float lambda,
                uint32_t* order, std::vector<float>& scratch);

}  // namespace rtrec
