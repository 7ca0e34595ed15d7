#include "rtrec/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

// Portable builds target baseline x86-64 (SSE2). On x86-64 Linux with GCC we also compile an
// AVX2/FMA-era clone of each hot kernel and let the loader pick it at start-up (ifunc), so a
// default wheel is fast on current CPUs and still runs on old ones. Skipped when the whole
// build already targets the host CPU (RTREC_NATIVE_ARCH).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(RTREC_NATIVE_ARCH_BUILD)
#define RTREC_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RTREC_HOT
#endif

namespace rtrec {
namespace {

constexpr float kAdagradEpsilon = 1e-8f;

inline float clip(float g, float c) noexcept { return std::min(std::max(g, -c), c); }

// Vectors are padded to a multiple of 16 floats, so dot products run on whole 16-float
// blocks held in a GCC/Clang vector type: the compiler lowers it to 4 SSE, 2 AVX or 1
// AVX-512 operations per block in each clone, with no scalar tail and no need for
// -ffast-math reassociation. The horizontal sum is a fixed tree, so results are
// deterministic for a given build and CPU.
// Two 8-float accumulators (16 lanes); 64-byte vector types would be passed through memory
// on targets without AVX-512.
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec4 __attribute__((vector_size(16)));
constexpr uint32_t kLanes = 16;

struct Lanes {
  Vec8 lo = {}, hi = {};
};

inline Vec8 load8(const float* p) noexcept {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float sum_lanes(const Lanes& l) noexcept {
  const Vec8 h = l.lo + l.hi;
  Vec4 a, b;
  std::memcpy(&a, &h, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&h) + sizeof a, sizeof b);
  const Vec4 q = a + b;
  return (q[0] + q[2]) + (q[1] + q[3]);
}

inline float dot_padded(const float* a, const float* b, uint32_t stride) noexcept {
  Lanes acc;
  for (uint32_t k = 0; k < stride; k += kLanes) {
    acc.lo += load8(a + k) * load8(b + k);
    acc.hi += load8(a + k + 8) * load8(b + k + 8);
  }
  return sum_lanes(acc);
}

// <a, b - c> with the same lane structure.
inline float dot_difference(const float* a, const float* b, const float* c, uint32_t stride) noexcept {
  Lanes acc;
  for (uint32_t k = 0; k < stride; k += kLanes) {
    acc.lo += load8(a + k) * (load8(b + k) - load8(c + k));
    acc.hi += load8(a + k + 8) * (load8(b + k + 8) - load8(c + k + 8));
  }
  return sum_lanes(acc);
}

// Computes the step of one vector from its gradient: `step` receives the amount to subtract,
// and under AdaGrad `grad` is overwritten with g^2 (the accumulator increment). Returns 0 when
// every resulting value and accumulator is finite and NaN otherwise: (x - x) is NaN exactly
// for inf/NaN, and unlike std::isfinite it vectorises.
// The step is applied later as `v -= step` on the live row rather than by copying a whole
// new vector over it, so a concurrent Hogwild writer of the same row loses nothing.
inline float propose(const StepConfig& c, const float* value, const float* accumulator, float* grad,
                     float* step) noexcept {
  float check = 0.0f;
  const uint32_t n = c.stride;
  const float lr = c.learning_rate;
  if (c.adagrad) {
#pragma omp simd reduction(+ : check)
    for (uint32_t k = 0; k < n; ++k) {
      const float g = grad[k];
      const float acc = accumulator[k] + g * g;
      const float st = lr * g / (std::sqrt(acc) + kAdagradEpsilon);
      const float v = value[k] - st;
      step[k] = st;
      grad[k] = g * g;
      check += (v - v) + (acc - acc);
    }
  } else {
#pragma omp simd reduction(+ : check)
    for (uint32_t k = 0; k < n; ++k) {
      const float st = lr * grad[k];
      const float v = value[k] - st;
      step[k] = st;
      check += v - v;
    }
  }
  return check;
}

struct ScalarStep {
  float step;
  float squared_grad;
  bool finite;
};

inline ScalarStep propose_bias(const StepConfig& c, float value, const float* accumulator, float grad) noexcept {
  float st = c.learning_rate * grad;
  float acc = 0.0f;
  if (c.adagrad) {
    acc = *accumulator + grad * grad;
    st /= std::sqrt(acc) + kAdagradEpsilon;
  }
  return {st, grad * grad, std::isfinite(value - st) && std::isfinite(acc)};
}

// The event's own score after the proposed steps. A step whose values are finite can still
// overflow the score (huge vectors); such a step is diverging and is skipped as well.
inline float score_after(uint32_t n, const float* a, const float* step_a, const float* b, const float* step_b) noexcept {
  Lanes acc;
  for (uint32_t k = 0; k < n; k += kLanes) {
    acc.lo += (load8(a + k) - load8(step_a + k)) * (load8(b + k) - load8(step_b + k));
    acc.hi += (load8(a + k + 8) - load8(step_a + k + 8)) * (load8(b + k + 8) - load8(step_b + k + 8));
  }
  return sum_lanes(acc);
}

inline void commit(const StepConfig& c, const RowRef& row, const float* step, const float* squared_grad,
                   const ScalarStep* bias) noexcept {
  float* v = row.vector;
  const uint32_t n = c.stride;
#pragma omp simd
  for (uint32_t k = 0; k < n; ++k) v[k] -= step[k];
  if (c.adagrad) {
    float* acc = row.accumulator;
#pragma omp simd
    for (uint32_t k = 0; k < n; ++k) acc[k] += squared_grad[k];
  }
  if (bias != nullptr) {
    *row.bias -= bias->step;
    if (c.adagrad) *row.bias_accumulator += bias->squared_grad;
  }
}

}  // namespace

RTREC_HOT float dot(const float* a, const float* b, uint32_t stride) noexcept { return dot_padded(a, b, stride); }

RTREC_HOT bool pointwise_step(const StepConfig& c, Loss loss, const RowRef& user, const RowRef& item, float offset,
                              float label, float weight, float* scratch) noexcept {
  const uint32_t n = c.stride;
  const float* p = user.vector;
  const float* q = item.vector;
  const float s = dot_padded(p, q, n) + offset + *user.bias + *item.bias;
  // d loss / d score: squared 1/2 (s - y)^2 -> s - y; logistic log loss -> sigmoid(s) - y.
  const float g = weight * (loss == Loss::kLogistic ? sigmoid(s) - label : s - label);

  float* grad_p = scratch;
  float* grad_q = scratch + n;
  float* step_p = scratch + 2 * n;
  float* step_q = scratch + 3 * n;
  const float l2 = c.l2, cl = c.grad_clip;
#pragma omp simd
  for (uint32_t k = 0; k < n; ++k) {
    grad_p[k] = clip(g * q[k] + l2 * p[k], cl);
    grad_q[k] = clip(g * p[k] + l2 * q[k], cl);
  }
  float check = propose(c, p, user.accumulator, grad_p, step_p);
  check += propose(c, q, item.accumulator, grad_q, step_q);
  const ScalarStep bu = propose_bias(c, *user.bias, user.bias_accumulator, clip(g + l2 * *user.bias, cl));
  const ScalarStep bi = propose_bias(c, *item.bias, item.bias_accumulator, clip(g + l2 * *item.bias, cl));
  const float s_new = score_after(n, p, step_p, q, step_q) + offset + (*user.bias - bu.step) + (*item.bias - bi.step);
  if (!(check == 0.0f) || !bu.finite || !bi.finite || !std::isfinite(s_new)) return false;
  commit(c, user, step_p, grad_p, &bu);
  commit(c, item, step_q, grad_q, &bi);
  return true;
}

RTREC_HOT bool pairwise_step(const StepConfig& c, const RowRef& user, const RowRef& positive, const RowRef& negative,
                             float weight, float* scratch) noexcept {
  const uint32_t n = c.stride;
  const float* p = user.vector;
  const float* qi = positive.vector;
  const float* qj = negative.vector;
  const float x = dot_difference(p, qi, qj, n) + *positive.bias - *negative.bias;
  // d/dx of -log sigmoid(x) = -sigmoid(-x).
  const float g = -weight * sigmoid(-x);

  float* grad_p = scratch;
  float* grad_i = scratch + n;
  float* grad_j = scratch + 2 * n;
  float* step_p = scratch + 3 * n;
  float* step_i = scratch + 4 * n;
  float* step_j = scratch + 5 * n;
  const float l2 = c.l2, cl = c.grad_clip;
#pragma omp simd
  for (uint32_t k = 0; k < n; ++k) {
    grad_p[k] = clip(g * (qi[k] - qj[k]) + l2 * p[k], cl);
    grad_i[k] = clip(g * p[k] + l2 * qi[k], cl);
    grad_j[k] = clip(-g * p[k] + l2 * qj[k], cl);
  }
  float check = propose(c, p, user.accumulator, grad_p, step_p);
  check += propose(c, qi, positive.accumulator, grad_i, step_i);
  check += propose(c, qj, negative.accumulator, grad_j, step_j);
  // BPR is invariant to the user bias, so only item biases move.
  const ScalarStep bi = propose_bias(c, *positive.bias, positive.bias_accumulator, clip(g + l2 * *positive.bias, cl));
  const ScalarStep bj = propose_bias(c, *negative.bias, negative.bias_accumulator, clip(-g + l2 * *negative.bias, cl));
  const float x_new = score_after(n, p, step_p, qi, step_i) - score_after(n, p, step_p, qj, step_j);
  if (!(check == 0.0f) || !bi.finite || !bj.finite || !std::isfinite(x_new)) return false;
  commit(c, user, step_p, grad_p, nullptr);
  commit(c, positive, step_i, grad_i, &bi);
  commit(c, negative, step_j, grad_j, &bj);
  return true;
}

RTREC_HOT void score_block(const float* query, const float* vectors, const float* biases, uint32_t rows,
                           uint32_t stride, float* scores) noexcept {
  // Four rows per pass share each load of the query block.
  uint32_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* v = vectors + size_t(r) * stride;
    Lanes a0, a1, a2, a3;
    for (uint32_t k = 0; k < stride; k += kLanes) {
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
