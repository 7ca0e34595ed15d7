#include "rtrec/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "row_steps.hpp"
#include "simd.hpp"

namespace rtrec {
namespace {
using namespace simd;
using namespace row_steps;

// Per-event steps are computed in one fused pass over 16-float blocks into scratch (the
// amounts to subtract), checked, and only then applied as `v -= step` on the live rows.
// Applying deltas rather than copying whole new vectors means a concurrent Hogwild writer
// of the same row loses nothing. `__restrict` and the fixed 16-wide inner loops let the
// compiler emit straight SIMD code with no alias checks and no scalar tails.
//
// AdaGrad is row-wise (as in two_tower): a row's step is factor x clip(gradient) with one
// factor per row, learning_rate / sqrt(accumulator), the accumulator growing by the mean
// square of the row's gradient. Every MF gradient is a vector the event already reads
// times a scalar, plus L2 on the row itself, so that mean square comes from dot products
// taken in the same pass as the score (no second pass over the row, no per-coordinate
// square root, and one accumulator float per row instead of a second row of them: the
// accumulators were half of the memory traffic of a step, and training is bound by it).
RTREC_INLINE void apply(uint32_t n, float* __restrict v, const float* __restrict step) noexcept {
  for (size_t k = 0; k < n; k += kLanes)
    for (size_t j = 0; j < kLanes; ++j) v[k + j] -= step[k + j];
}

// The step factor of a row whose (unclipped) gradient has mean square `mean_square`; under
// AdaGrad `increment` is what the row's accumulator grows by.
template <bool kAdagrad>
RTREC_INLINE float row_factor(float lr, const float* accumulator, float mean_square, float& increment) noexcept {
  if (!kAdagrad) return lr;
  increment = std::max(mean_square, 0.0f);  // the expansions below can round just under 0
  return lr / (std::sqrt(*accumulator + increment) + kAdagradEpsilon);
}

template <bool kAdagrad>
RTREC_INLINE void apply_row(const RowRef& row, uint32_t n, const float* step, float increment) noexcept {
  apply(n, row.vector, step);
  if (kAdagrad) *row.accumulator += increment;
}

template <bool kAdagrad>
RTREC_INLINE void apply_bias(const RowRef& row, float step, float new_accumulator) noexcept {
  *row.bias -= step;
  if (kAdagrad) *row.bias_accumulator = new_accumulator;
}

// Sums of products over two or three rows in one pass, 8 lanes per sum (six sums in
// registers), for the row-wise AdaGrad mean squares.
struct PairSums {
  float pq, pp, qq;
};
RTREC_INLINE PairSums pair_sums(const float* __restrict p, const float* __restrict q, uint32_t n) noexcept {
  Vec8 pq = {}, pp = {}, qq = {};
  for (size_t k = 0; k < n; k += 8) {
    const Vec8 a = load8(p + k), b = load8(q + k);
    pq += a * b;
    pp += a * a;
    qq += b * b;
  }
  return PairSums{sum8(pq), sum8(pp), sum8(qq)};
}
struct TripleSums {
  float pi, pj, pp, ii, jj, ij;
};
RTREC_INLINE TripleSums triple_sums(const float* __restrict p, const float* __restrict qi, const float* __restrict qj,
                                    uint32_t n) noexcept {
  Vec8 pi = {}, pj = {}, pp = {}, ii = {}, jj = {}, ij = {};
  for (size_t k = 0; k < n; k += 8) {
    const Vec8 a = load8(p + k), b = load8(qi + k), d = load8(qj + k);
    pi += a * b;
    pj += a * d;
    pp += a * a;
    ii += b * b;
    jj += d * d;
    ij += b * d;
  }
  return TripleSums{sum8(pi), sum8(pj), sum8(pp), sum8(ii), sum8(jj), sum8(ij)};
}

template <bool kAdagrad>
RTREC_INLINE bool pointwise_impl(const StepConfig& c, Loss loss, const RowRef& user, const RowRef& item, float offset, float label,
                    float weight, float* __restrict scratch) noexcept {
  const uint32_t n = c.stride;
  const float* __restrict p = user.vector;
  const float* __restrict q = item.vector;
  PairSums sums{0.0f, 0.0f, 0.0f};
  if (kAdagrad) sums = pair_sums(p, q, n);
  const float pq = kAdagrad ? sums.pq : dot_padded(p, q, n);
  const float s = pq + offset + *user.bias + *item.bias;
  // d loss / d score: squared 1/2 (s - y)^2 -> s - y; logistic log loss -> sigmoid(s) - y.
  const float g = weight * pointwise_gradient(loss, s, label, c.huber_delta);
  const float lr = c.learning_rate, l2 = c.l2, cl = c.grad_clip;
  // Gradients g q + l2 p and g p + l2 q: their squared norms from the sums.
  const float inv_dim = 1.0f / float(c.dim);
  float inc_p = 0.0f, inc_q = 0.0f;
  const float fp = row_factor<kAdagrad>(lr, user.accumulator,
                                        (g * g * sums.qq + 2.0f * g * l2 * sums.pq + l2 * l2 * sums.pp) * inv_dim, inc_p);
  const float fq = row_factor<kAdagrad>(lr, item.accumulator,
                                        (g * g * sums.pp + 2.0f * g * l2 * sums.pq + l2 * l2 * sums.qq) * inv_dim, inc_q);

  float* __restrict step_p = scratch;
  float* __restrict step_q = scratch + n;
  float flags[kLanes] = {}, s_new[kLanes] = {};
  float block[2][kLanes];
  for (size_t k = 0; k < n; k += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      const size_t t = k + j;
      const float sp = fp * clip(g * q[t] + l2 * p[t], cl);
      const float sq = fq * clip(g * p[t] + l2 * q[t], cl);
      block[0][j] = sp;
      block[1][j] = sq;
      const float np = p[t] - sp, nq = q[t] - sq;
      flags[j] += nonfinite_flag(np) + nonfinite_flag(nq);
      s_new[j] += np * nq;
    }
    std::memcpy(step_p + k, block[0], sizeof block[0]);
    std::memcpy(step_q + k, block[1], sizeof block[1]);
  }
  float abu = kAdagrad ? *user.bias_accumulator : 0.0f, abi = kAdagrad ? *item.bias_accumulator : 0.0f;
  const float sbu = step_of<kAdagrad>(clip(g + l2 * *user.bias, cl), lr, abu);
  const float sbi = step_of<kAdagrad>(clip(g + l2 * *item.bias, cl), lr, abi);
  // The event's own score after the step: finite values can still overflow it (huge
  // vectors); such a step is diverging and is skipped as well.
  const float score_after = sum16(s_new) + offset + (*user.bias - sbu) + (*item.bias - sbi);
  const float flag = sum16(flags) + nonfinite_flag(score_after) + nonfinite_flag(abu) + nonfinite_flag(abi) +
                     nonfinite_flag(fp) + nonfinite_flag(fq) + nonfinite_flag(inc_p) + nonfinite_flag(inc_q);
  if (!(flag == 0.0f)) return false;
  apply_row<kAdagrad>(user, n, step_p, inc_p);
  apply_row<kAdagrad>(item, n, step_q, inc_q);
  apply_bias<kAdagrad>(user, sbu, abu);
  apply_bias<kAdagrad>(item, sbi, abi);
  return true;
}

template <bool kAdagrad>
RTREC_INLINE bool pairwise_impl(const StepConfig& c, const RowRef& user, const RowRef& positive, const RowRef& negative,
                   float weight, float* __restrict scratch) noexcept {
  const uint32_t n = c.stride;
  const float* __restrict p = user.vector;
  const float* __restrict qi = positive.vector;
  const float* __restrict qj = negative.vector;
  TripleSums sums{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  if (kAdagrad) sums = triple_sums(p, qi, qj, n);
  const float x = (kAdagrad ? sums.pi - sums.pj : dot_difference(p, qi, qj, n)) + *positive.bias - *negative.bias;
  // d/dx of -log sigmoid(x) = -sigmoid(-x).
  const float g = -weight * sigmoid(-x);
  const float lr = c.learning_rate, l2 = c.l2, cl = c.grad_clip;
  // Gradients g (qi - qj) + l2 p, g p + l2 qi and -g p + l2 qj: their squared norms from
  // the sums (|qi - qj|^2 = ii + jj - 2 ij, <qi - qj, p> = pi - pj).
  const float inv_dim = 1.0f / float(c.dim);
  float inc_p = 0.0f, inc_i = 0.0f, inc_j = 0.0f;
  const float fp = row_factor<kAdagrad>(
      lr, user.accumulator,
      (g * g * (sums.ii + sums.jj - 2.0f * sums.ij) + 2.0f * g * l2 * (sums.pi - sums.pj) + l2 * l2 * sums.pp) * inv_dim,
      inc_p);
  const float fi = row_factor<kAdagrad>(
      lr, positive.accumulator, (g * g * sums.pp + 2.0f * g * l2 * sums.pi + l2 * l2 * sums.ii) * inv_dim, inc_i);
  const float fj = row_factor<kAdagrad>(
      lr, negative.accumulator, (g * g * sums.pp - 2.0f * g * l2 * sums.pj + l2 * l2 * sums.jj) * inv_dim, inc_j);

  float* __restrict step_p = scratch;
  float* __restrict step_i = scratch + n;
  float* __restrict step_j = scratch + 2 * n;
  float flags[kLanes] = {}, x_new[kLanes] = {};
  float block[3][kLanes];
  for (size_t k = 0; k < n; k += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      const size_t t = k + j;
      const float sp = fp * clip(g * (qi[t] - qj[t]) + l2 * p[t], cl);
      const float si = fi * clip(g * p[t] + l2 * qi[t], cl);
      const float sj = fj * clip(-g * p[t] + l2 * qj[t], cl);
      block[0][j] = sp;
      block[1][j] = si;
      block[2][j] = sj;
      const float np = p[t] - sp, ni = qi[t] - si, nj = qj[t] - sj;
      flags[j] += nonfinite_flag(np) + nonfinite_flag(ni) + nonfinite_flag(nj);
      x_new[j] += np * (ni - nj);
    }
    // Block results go through a local array: stores to several scratch streams inside the
    // loop defeat GCC's vectoriser ("complicated access pattern").
    std::memcpy(step_p + k, block[0], sizeof block[0]);
    std::memcpy(step_i + k, block[1], sizeof block[1]);
    std::memcpy(step_j + k, block[2], sizeof block[2]);
  }
  // BPR is invariant to the user bias, so only item biases move.
  float abi = kAdagrad ? *positive.bias_accumulator : 0.0f, abj = kAdagrad ? *negative.bias_accumulator : 0.0f;
  const float sbi = step_of<kAdagrad>(clip(g + l2 * *positive.bias, cl), lr, abi);
  const float sbj = step_of<kAdagrad>(clip(-g + l2 * *negative.bias, cl), lr, abj);
  const float x_after = sum16(x_new) + (*positive.bias - sbi) - (*negative.bias - sbj);
  const float flag = sum16(flags) + nonfinite_flag(x_after) + nonfinite_flag(abi) + nonfinite_flag(abj) +
                     nonfinite_flag(fp) + nonfinite_flag(fi) + nonfinite_flag(fj) + nonfinite_flag(inc_p) +
                     nonfinite_flag(inc_i) + nonfinite_flag(inc_j);
  if (!(flag == 0.0f)) return false;
  apply_row<kAdagrad>(user, n, step_p, inc_p);
  apply_row<kAdagrad>(positive, n, step_i, inc_i);
  apply_row<kAdagrad>(negative, n, step_j, inc_j);
  apply_bias<kAdagrad>(positive, sbi, abi);
  apply_bias<kAdagrad>(negative, sbj, abj);
  return true;
}

}  // namespace

RTREC_HOT bool pointwise_composite(const StepConfig& c, Loss loss, Parts user, Parts item, float offset, float label,
                                   float weight, std::vector<float>& scratch) noexcept {
  const uint32_t n = c.stride;
  const size_t need = 4 * size_t(n) + composite_floats(n, user.size) + composite_floats(n, item.size);
  if (!grow(scratch, need)) return false;
  float* p = scratch.data();
  float* q = p + n;
  float* gp = q + n;
  float* gq = gp + n;
  float* user_steps = gq + n;
  float* item_steps = user_steps + composite_floats(n, user.size);
  float bu, bi;
  combine(user, n, nullptr, true, p, &bu);
  combine(item, n, nullptr, true, q, &bi);
  float s = offset + bu + bi;
  for (uint32_t t = 0; t < n; ++t) s += p[t] * q[t];
  const float g = weight * pointwise_gradient(loss, s, label, c.huber_delta);
  for (uint32_t t = 0; t < n; ++t) {
    gp[t] = g * q[t];
    gq[t] = g * p[t];
  }
  float flag = composite_steps(c, user, gp, g, true, user_steps) + composite_steps(c, item, gq, g, true, item_steps);
  combine(user, n, user_steps, true, p, &bu);
  combine(item, n, item_steps, true, q, &bi);
  float s_after = offset + bu + bi;
  for (uint32_t t = 0; t < n; ++t) s_after += p[t] * q[t];
  flag += nonfinite_flag(s_after);
  if (!(flag == 0.0f) || !std::isfinite(s)) return false;
  apply_composite(c, user, user_steps, true);
  apply_composite(c, item, item_steps, true);
  return true;
}

RTREC_HOT bool pairwise_composite(const StepConfig& c, Parts user, Parts positive, Parts negative, float weight,
                                  std::vector<float>& scratch) noexcept {
  const uint32_t n = c.stride;
  const size_t need = 6 * size_t(n) + composite_floats(n, user.size) + composite_floats(n, positive.size) +
                      composite_floats(n, negative.size);
  if (!grow(scratch, need)) return false;
  float* p = scratch.data();
  float* qi = p + n;
  float* qj = qi + n;
  float* gp = qj + n;
  float* gi = gp + n;
  float* gj = gi + n;
  float* user_steps = gj + n;
  float* pos_steps = user_steps + composite_floats(n, user.size);
  float* neg_steps = pos_steps + composite_floats(n, positive.size);
  float bu, bi, bj;
  combine(user, n, nullptr, true, p, &bu);
  combine(positive, n, nullptr, true, qi, &bi);
  combine(negative, n, nullptr, true, qj, &bj);
  float x = bi - bj;
  for (uint32_t t = 0; t < n; ++t) x += p[t] * (qi[t] - qj[t]);
  const float g = -weight * sigmoid(-x);
  for (uint32_t t = 0; t < n; ++t) {
    gp[t] = g * (qi[t] - qj[t]);
    gi[t] = g * p[t];
    gj[t] = -g * p[t];
  }
  // BPR is invariant to the user side's bias, so only item-side biases move.
  float flag = composite_steps(c, user, gp, 0.0f, false, user_steps) +
               composite_steps(c, positive, gi, g, true, pos_steps) +
               composite_steps(c, negative, gj, -g, true, neg_steps);
  combine(user, n, user_steps, false, p, &bu);
  combine(positive, n, pos_steps, true, qi, &bi);
  combine(negative, n, neg_steps, true, qj, &bj);
  float x_after = bi - bj;
  for (uint32_t t = 0; t < n; ++t) x_after += p[t] * (qi[t] - qj[t]);
  flag += nonfinite_flag(x_after);
  if (!(flag == 0.0f) || !std::isfinite(x)) return false;
  apply_composite(c, user, user_steps, false);
  apply_composite(c, positive, pos_steps, true);
  apply_composite(c, negative, neg_steps, true);
  return true;
}

RTREC_HOT float dot(const float* a, const float* b, uint32_t stride) noexcept { return dot_padded(a, b, stride); }

RTREC_HOT bool pointwise_step(const StepConfig& c, Loss loss, const RowRef& user, const RowRef& item, float offset,
                              float label, float weight, float* scratch) noexcept {
  return c.adagrad ? pointwise_impl<true>(c, loss, user, item, offset, label, weight, scratch)
                   : pointwise_impl<false>(c, loss, user, item, offset, label, weight, scratch);
}

RTREC_HOT bool pairwise_step(const StepConfig& c, const RowRef& user, const RowRef& positive, const RowRef& negative,
                             float weight, float* scratch) noexcept {
  return c.adagrad ? pairwise_impl<true>(c, user, positive, negative, weight, scratch)
                   : pairwise_impl<false>(c, user, positive, negative, weight, scratch);
}

RTREC_HOT void score_block(const float* query, const float* vectors, const float* biases, uint32_t rows,
                           uint32_t stride, float* scores) noexcept {
  // Four rows per pass share each load of the query block.
  uint32_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* v = vectors + size_t(r) * stride;
    Lanes a0, a1, a2, a3;
    for (size_t k = 0; k < stride; k += kLanes) {
      const Vec8 q_lo = load8(query + k), q_hi = load8(query + k + 8);
      a0.lo += q_lo * load8(v + k);
      a0.hi += q_hi * load8(v + k + 8);
      a1.lo += q_lo * load8(v + stride + k);
      a1.hi += q_hi * load8(v + stride + k + 8);
      a2.lo += q_lo * load8(v + 2 * stride + k);
      a2.hi += q_hi * load8(v + 2 * stride + k + 8);
      a3.lo += q_lo * load8(v + 3 * stride + k);
      a3.hi += q_hi * load8(v + 3 * stride + k + 8);
    }
    scores[r] = biases[r] + sum_lanes(a0);
    scores[r + 1] = biases[r + 1] + sum_lanes(a1);
    scores[r + 2] = biases[r + 2] + sum_lanes(a2);
    scores[r + 3] = biases[r + 3] + sum_lanes(a3);
  }
  for (; r < rows; ++r) scores[r] = biases[r] + dot_padded(query, vectors + size_t(r) * stride, stride);
}

}  // namespace rtrec
