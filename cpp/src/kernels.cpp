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
// amounts to subtract and, under AdaGrad, the squared gradients), checked, and only then
// applied as `v -= step` on the live rows. Applying deltas rather than copying whole new
// vectors means a concurrent Hogwild writer of the same row loses nothing. `__restrict`
// and the fixed 16-wide inner loops let the compiler emit straight SIMD code with no alias
// checks and no scalar tails.
template <bool kAdagrad>
RTREC_INLINE void apply(uint32_t n, float* __restrict v, float* __restrict acc, const float* __restrict step,
                  const float* __restrict squared) noexcept {
  for (size_t k = 0; k < n; k += kLanes)
    for (size_t j = 0; j < kLanes; ++j) v[k + j] -= step[k + j];
  if (kAdagrad)
    for (size_t k = 0; k < n; k += kLanes)
      for (size_t j = 0; j < kLanes; ++j) acc[k + j] += squared[k + j];
}

template <bool kAdagrad>
RTREC_INLINE void apply_bias(const RowRef& row, float step, float new_accumulator) noexcept {
  *row.bias -= step;
  if (kAdagrad) *row.bias_accumulator = new_accumulator;
}

template <bool kAdagrad>
RTREC_INLINE bool pointwise_impl(const StepConfig& c, Loss loss, const RowRef& user, const RowRef& item, float offset, float label,
                    float weight, float* __restrict scratch) noexcept {
  const uint32_t n = c.stride;
  const float* __restrict p = user.vector;
  const float* __restrict q = item.vector;
  const float* __restrict acc_p = user.accumulator;
  const float* __restrict acc_q = item.accumulator;
  const float s = dot_padded(p, q, n) + offset + *user.bias + *item.bias;
  // d loss / d score: squared 1/2 (s - y)^2 -> s - y; logistic log loss -> sigmoid(s) - y.
  const float g = weight * pointwise_gradient(loss, s, label, c.huber_delta);
  const float lr = c.learning_rate, l2 = c.l2, cl = c.grad_clip;

  float* __restrict step_p = scratch;
  float* __restrict step_q = scratch + n;
  float* __restrict sq_p = scratch + 2 * n;
  float* __restrict sq_q = scratch + 3 * n;
  float flags[kLanes] = {}, s_new[kLanes] = {};
  float block[4][kLanes];
  for (size_t k = 0; k < n; k += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      const size_t t = k + j;
      const float gp = clip(g * q[t] + l2 * p[t], cl);
      const float gq = clip(g * p[t] + l2 * q[t], cl);
      float ap = kAdagrad ? acc_p[t] : 0.0f, aq = kAdagrad ? acc_q[t] : 0.0f;
      const float sp = step_of<kAdagrad>(gp, lr, ap), sq = step_of<kAdagrad>(gq, lr, aq);
      block[0][j] = sp;
      block[1][j] = sq;
      block[2][j] = gp * gp;
      block[3][j] = gq * gq;
      const float np = p[t] - sp, nq = q[t] - sq;
      flags[j] += nonfinite_flag(np) + nonfinite_flag(nq) + nonfinite_flag(ap) + nonfinite_flag(aq);
      s_new[j] += np * nq;
    }
    std::memcpy(step_p + k, block[0], sizeof block[0]);
    std::memcpy(step_q + k, block[1], sizeof block[1]);
    if (kAdagrad) {
      std::memcpy(sq_p + k, block[2], sizeof block[2]);
      std::memcpy(sq_q + k, block[3], sizeof block[3]);
    }
  }
  float abu = kAdagrad ? *user.bias_accumulator : 0.0f, abi = kAdagrad ? *item.bias_accumulator : 0.0f;
  const float sbu = step_of<kAdagrad>(clip(g + l2 * *user.bias, cl), lr, abu);
  const float sbi = step_of<kAdagrad>(clip(g + l2 * *item.bias, cl), lr, abi);
  // The event's own score after the step: finite values can still overflow it (huge
  // vectors); such a step is diverging and is skipped as well.
  const float score_after = sum16(s_new) + offset + (*user.bias - sbu) + (*item.bias - sbi);
  const float flag = sum16(flags) + nonfinite_flag(score_after) + nonfinite_flag(abu) + nonfinite_flag(abi);
  if (!(flag == 0.0f)) return false;
  apply<kAdagrad>(n, user.vector, user.accumulator, step_p, sq_p);
  apply<kAdagrad>(n, item.vector, item.accumulator, step_q, sq_q);
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
  const float* __restrict acc_p = user.accumulator;
  const float* __restrict acc_i = positive.accumulator;
  const float* __restrict acc_j = negative.accumulator;
  const float x = dot_difference(p, qi, qj, n) + *positive.bias - *negative.bias;
  // d/dx of -log sigmoid(x) = -sigmoid(-x).
  const float g = -weight * sigmoid(-x);
  const float lr = c.learning_rate, l2 = c.l2, cl = c.grad_clip;

  float* __restrict step_p = scratch;
  float* __restrict step_i = scratch + n;
  float* __restrict step_j = scratch + 2 * n;
  float* __restrict sq_p = scratch + 3 * n;
  float* __restrict sq_i = scratch + 4 * n;
  float* __restrict sq_j = scratch + 5 * n;
  float flags[kLanes] = {}, x_new[kLanes] = {};
  float block[6][kLanes];
  for (size_t k = 0; k < n; k += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      const size_t t = k + j;
      const float gp = clip(g * (qi[t] - qj[t]) + l2 * p[t], cl);
      const float gi = clip(g * p[t] + l2 * qi[t], cl);
      const float gj = clip(-g * p[t] + l2 * qj[t], cl);
      float ap = kAdagrad ? acc_p[t] : 0.0f, ai = kAdagrad ? acc_i[t] : 0.0f, aj = kAdagrad ? acc_j[t] : 0.0f;
      const float sp = step_of<kAdagrad>(gp, lr, ap);
      const float si = step_of<kAdagrad>(gi, lr, ai);
      const float sj = step_of<kAdagrad>(gj, lr, aj);
      block[0][j] = sp;
      block[1][j] = si;
      block[2][j] = sj;
      block[3][j] = gp * gp;
      block[4][j] = gi * gi;
      block[5][j] = gj * gj;
      const float np = p[t] - sp, ni = qi[t] - si, nj = qj[t] - sj;
      flags[j] += nonfinite_flag(np) + nonfinite_flag(ni) + nonfinite_flag(nj) + nonfinite_flag(ap) +
                  nonfinite_flag(ai) + nonfinite_flag(aj);
      x_new[j] += np * (ni - nj);
    }
    // Block results go through a local array: stores to six scratch streams inside the
    // loop defeat GCC's vectoriser ("complicated access pattern").
    std::memcpy(step_p + k, block[0], sizeof block[0]);
    std::memcpy(step_i + k, block[1], sizeof block[1]);
    std::memcpy(step_j + k, block[2], sizeof block[2]);
    if (kAdagrad) {
      std::memcpy(sq_p + k, block[3], sizeof block[3]);
      std::memcpy(sq_i + k, block[4], sizeof block[4]);
      std::memcpy(sq_j + k, block[5], sizeof block[5]);
    }
  }
  // BPR is invariant to the user bias, so only item biases move.
  float abi = kAdagrad ? *positive.bias_accumulator : 0.0f, abj = kAdagrad ? *negative.bias_accumulator : 0.0f;
  const float sbi = step_of<kAdagrad>(clip(g + l2 * *positive.bias, cl), lr, abi);
  const float sbj = step_of<kAdagrad>(clip(-g + l2 * *negative.bias, cl), lr, abj);
  const float x_after = sum16(x_new) + (*positive.bias - sbi) - (*negative.bias - sbj);
  const float flag = sum16(flags) + nonfinite_flag(x_after) + nonfinite_flag(abi) + nonfinite_flag(abj);
  if (!(flag == 0.0f)) return false;
  apply<kAdagrad>(n, user.vector, user.accumulator, step_p, sq_p);
  apply<kAdagrad>(n, positive.vector, positive.accumulator, step_i, sq_i);
  apply<kAdagrad>(n, negative.vector, negative.accumulator, step_j, sq_j);
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
