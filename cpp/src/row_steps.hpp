// Steps of embedding rows that make up an effective vector (an ID row plus weighted feature
// rows, or a user's pooled history rows): computed into scratch first, checked, then applied.
// Shared by the MF composite kernels (kernels.cpp) and the two_tower step (two_tower_step.cpp).
// Internal header.
#pragma once

#include <vector>

#include "rtrec/kernels.hpp"
#include "simd.hpp"

namespace rtrec {
namespace row_steps {
using namespace simd;

// Steps for every part of a side given the gradient `grad` (n floats) and `bias_grad` of
// its effective vector; written to `steps` (per part: n steps, then the bias step, the bias
// accumulator's increment and the row accumulator's increment). AdaGrad is row-wise, as in
// the fused kernels: a part's step is factor x clip(gradient), the factor from the mean
// square of the part's (unclipped) gradient. Returns the non-finite flag sum.
template <bool kAdagrad>
RTREC_INLINE float composite_steps_impl(const StepConfig& c, const Parts& side, const float* __restrict grad,
                                        float bias_grad, bool move_bias, float* __restrict steps) noexcept {
  const uint32_t n = c.stride;
  const float lr = c.learning_rate, l2 = c.l2, cl = c.grad_clip;
  float flags[kLanes] = {};
  for (uint32_t p = 0; p < side.size; ++p) {
    const Part& part = side.parts[p];
    const float w = part.weight;
    const float* __restrict v = part.row.vector;
    float* __restrict step = steps + size_t(p) * (n + 3);
    float factor = lr, increment = 0.0f;
    if (kAdagrad) {
      float squares[kLanes] = {};
      for (size_t k = 0; k < n; k += kLanes)
        for (size_t j = 0; j < kLanes; ++j) {
          const float g = w * grad[k + j] + l2 * v[k + j];
          squares[j] += g * g;
        }
      increment = sum16(squares) / float(c.dim);
      factor = lr / (std::sqrt(*part.row.accumulator + increment) + kAdagradEpsilon);
    }
    for (size_t k = 0; k < n; k += kLanes) {
      for (size_t j = 0; j < kLanes; ++j) {
        const size_t t = k + j;
        const float st = factor * clip(w * grad[t] + l2 * v[t], cl);
        step[t] = st;
        flags[j] += nonfinite_flag(v[t] - st);
      }
    }
    float bias_acc = kAdagrad ? *part.row.bias_accumulator : 0.0f;
    float bias_step = 0.0f;
    if (move_bias) bias_step = step_of<kAdagrad>(clip(w * bias_grad + l2 * *part.row.bias, cl), lr, bias_acc);
    step[n] = bias_step;
    // The squared gradients, added (not the new accumulators, stored): a feature shared by
    // the positive and the negative item gets both steps' contributions.
    step[n + 1] = bias_acc - (kAdagrad ? *part.row.bias_accumulator : 0.0f);
    step[n + 2] = increment;
    flags[0] += nonfinite_flag(*part.row.bias - bias_step) + nonfinite_flag(bias_acc) + nonfinite_flag(factor) +
                nonfinite_flag(increment);
  }
  return sum16(flags);
}

RTREC_INLINE float composite_steps(const StepConfig& c, const Parts& side, const float* grad, float bias_grad,
                                   bool move_bias, float* steps) noexcept {
  return c.adagrad ? composite_steps_impl<true>(c, side, grad, bias_grad, move_bias, steps)
                   : composite_steps_impl<false>(c, side, grad, bias_grad, move_bias, steps);
}

RTREC_INLINE void apply_composite(const StepConfig& c, const Parts& side, const float* steps, bool move_bias) noexcept {
  const uint32_t n = c.stride;
  for (uint32_t p = 0; p < side.size; ++p) {
    const Part& part = side.parts[p];
    const float* __restrict step = steps + size_t(p) * (n + 3);
    float* __restrict v = part.row.vector;
    // Whole 16-float blocks (n is a multiple of 16): straight SIMD, no alias checks.
    for (uint32_t b = 0; b < n; b += kLanes)
      for (uint32_t j = 0; j < kLanes; ++j) v[b + j] -= step[b + j];
    if (c.adagrad) *part.row.accumulator += step[n + 2];
    if (move_bias) {
      *part.row.bias -= step[n];
      if (c.adagrad) *part.row.bias_accumulator += step[n + 1];
    }
  }
}

RTREC_INLINE size_t composite_floats(uint32_t n, uint32_t parts) { return size_t(parts) * (n + 3); }

// The effective vector and bias of a composite side: now (`steps` null), or as it would be
// after its steps (for the overflow check on the event's own score, as in the fused kernels).
RTREC_INLINE void combine(const Parts& side, uint32_t n, const float* steps, bool move_bias, float* __restrict out,
                          float* bias) noexcept {
  std::fill(out, out + n, 0.0f);
  *bias = 0.0f;
  for (uint32_t p = 0; p < side.size; ++p) {
    const Part& part = side.parts[p];
    const float w = part.weight;
    const float* __restrict v = part.row.vector;
    if (steps == nullptr) {
      for (uint32_t t = 0; t < n; ++t) out[t] += w * v[t];
      *bias += w * *part.row.bias;
      continue;
    }
    const float* __restrict step = steps + size_t(p) * (n + 3);
    for (uint32_t t = 0; t < n; ++t) out[t] += w * (v[t] - step[t]);
    *bias += w * (*part.row.bias - (move_bias ? step[n] : 0.0f));
  }
}

// Room for `need` floats; false if it cannot be had (the step is then skipped).
RTREC_INLINE bool grow(std::vector<float>& scratch, size_t need) noexcept {
  try {
    if (scratch.size() < need) scratch.resize(need);
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace row_steps
}  // namespace rtrec
