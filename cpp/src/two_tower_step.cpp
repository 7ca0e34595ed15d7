// The two_tower model's per-event math: encode the user, score the candidates, the loss's
// gradient, backpropagation through the tower into the encoder's inputs, and the steps.
//
// Every embedding row an event touches gets a gradient of one shape: a vector shared by
// the rows of one group times a per-row scalar (the candidates: c_u times d loss / d score;
// the user's rows: d loss / d p_u; the history rows: d loss / d h_u times the row's pool
// weight). So the rows use row-wise AdaGrad — one accumulator per row, grown by the row's
// mean squared gradient, known without a pass over the row — which costs one square root per
// row where per-coordinate AdaGrad costs one per coordinate and a second pass over every
// row. L2 is applied as weight decay of the touched rows, decoupled from AdaGrad's scaling
// (v *= 1 - learning_rate x l2): added to the gradient, a row whose loss gradient is nearly
// zero would see its decay divided by a nearly zero accumulator.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "rtrec/kernels.hpp"
#include "rtrec/tower.hpp"
#include "row_steps.hpp"
#include "simd.hpp"

namespace rtrec {
using namespace simd;
using namespace row_steps;
namespace {

// The tower's input: [user effective vector (dim floats) ; pooled history (dim floats)],
// padded. `stride` is the embedding stride (dim padded to 16).
RTREC_INLINE void assemble(const EncoderInput& in, uint32_t dim, uint32_t stride, float* user, float* __restrict pool,
                           float* z, uint32_t z_stride) noexcept {
  float ignored;
  combine(in.user, stride, nullptr, false, user, &ignored);
  std::fill(pool, pool + stride, 0.0f);
  for (uint32_t k = 0; k < in.history.size; ++k) {
    const float w = in.history.parts[k].weight;
    const float* __restrict v = in.history.parts[k].row.vector;
    for (uint32_t t = 0; t < stride; ++t) pool[t] += w * v[t];
  }
  std::fill(z, z + z_stride, 0.0f);
  std::memcpy(z, user, sizeof(float) * dim);
  std::memcpy(z + dim, pool, sizeof(float) * dim);
}

// c_u = tower(z) + user + pool: the skip connection lets a user with one event score like
// the items near it from the first step, before the tower has learned anything.
RTREC_INLINE void encoding(const float* tower_out, const float* user, const float* pool, uint32_t stride,
                           float* __restrict c) noexcept {
  for (uint32_t t = 0; t < stride; ++t) c[t] = tower_out[t] + user[t] + pool[t];
}

RTREC_INLINE float mean_square(const float* v, uint32_t stride, uint32_t dim) noexcept {
  return dot_padded(v, v, stride) / float(dim);
}

// One part's step, decided before anything is written.
struct RowStep {
  float factor;          // the vector moves by -factor x clip(gradient)
  float increment;       // added to the row's accumulator (AdaGrad)
  float bias_step;       // the bias moves by -bias_step
  float bias_increment;  // added to the bias accumulator (AdaGrad)
};

// Steps of a group of parts whose gradients are `scale` x part weight x `vec` (+ L2):
// `vec_mean_square` is vec's mean square; the bias gradient is part weight x `bias_grad`.
// Returns the non-finite flag sum.
RTREC_INLINE float part_steps(const StepConfig& c, const Parts& parts, float scale, float vec_mean_square, float bias_grad,
                             bool move_bias, RowStep* out) noexcept {
  float flag = 0.0f;
  for (uint32_t p = 0; p < parts.size; ++p) {
    const Part& part = parts.parts[p];
    const float s = scale * part.weight;
    RowStep step{c.learning_rate, 0.0f, 0.0f, 0.0f};
    if (c.adagrad) {
      step.increment = s * s * vec_mean_square;
      step.factor = c.learning_rate / (std::sqrt(*part.row.accumulator + step.increment) + kAdagradEpsilon);
    }
    if (move_bias) {
      const float g = clip(part.weight * bias_grad + c.l2 * *part.row.bias, c.grad_clip);
      if (c.adagrad) {
        step.bias_increment = g * g;
        step.bias_step = c.learning_rate * g / (std::sqrt(*part.row.bias_accumulator + g * g) + kAdagradEpsilon);
      } else {
        step.bias_step = c.learning_rate * g;
      }
    }
    out[p] = step;
    flag += nonfinite_flag(step.factor) + nonfinite_flag(step.increment) + nonfinite_flag(step.bias_step) +
            nonfinite_flag(step.bias_increment);
  }
  return flag;
}

RTREC_INLINE void apply_rows(const StepConfig& c, const Parts& parts, float scale, const float* __restrict vec,
                             const RowStep* steps, bool move_bias) noexcept {
  const uint32_t n = c.stride;
  const float decay = 1.0f - c.learning_rate * c.l2, cl = c.grad_clip;
  for (uint32_t p = 0; p < parts.size; ++p) {
    const Part& part = parts.parts[p];
    const float s = scale * part.weight, factor = steps[p].factor;
    float* __restrict v = part.row.vector;
    for (uint32_t t = 0; t < n; ++t) v[t] = v[t] * decay - factor * clip(s * vec[t], cl);
    if (c.adagrad) *part.row.accumulator += steps[p].increment;
    if (move_bias) {
      *part.row.bias -= steps[p].bias_step;
      if (c.adagrad) *part.row.bias_accumulator += steps[p].bias_increment;
    }
  }
}

}  // namespace

RTREC_HOT void encode(const DenseTower& tower, const EncoderInput& in, uint32_t stride, float* out,
                      std::vector<float>& scratch) noexcept {
  const uint32_t dim = tower.output_size();
  const uint32_t z_stride = tower.input_stride();
  if (!grow(scratch, 2 * size_t(stride) + z_stride + tower.activation_floats())) {
    std::fill(out, out + stride, 0.0f);  // out of memory: an unknown user's encoding
    return;
  }
  float* user = scratch.data();
  float* pool = user + stride;
  float* z = pool + stride;
  float* act = z + z_stride;
  assemble(in, dim, stride, user, pool, z, z_stride);
  encoding(tower.forward(z, act), user, pool, stride, out);
}

RTREC_HOT bool two_tower_step(const StepConfig& cfg, Loss loss, DenseTower& tower, TowerGradient* buffer,
                              const EncoderInput& in, const Parts* candidates, const float* log_q, uint32_t m,
                              float offset, float label, float weight, std::vector<float>& scratch) noexcept {
  const uint32_t n = cfg.stride;
  const uint32_t dim = tower.output_size();
  const uint32_t z_stride = tower.input_stride();
  const size_t act_floats = tower.activation_floats();
  uint32_t n_parts = in.user.size + in.history.size;
  for (uint32_t j = 0; j < m; ++j) n_parts += candidates[j].size;
  constexpr size_t kStepFloats = sizeof(RowStep) / sizeof(float);
  const size_t need = 6 * size_t(n) + 2 * size_t(z_stride) + 2 * act_floats + size_t(m) * n + 3 * size_t(m) +
                      kStepFloats * n_parts;
  if (m == 0 || !grow(scratch, need)) return false;
  float* user = scratch.data();
  float* pool = user + n;
  float* c = pool + n;
  float* g_c = c + n;
  float* g_user = g_c + n;
  float* g_pool = g_user + n;
  float* z = g_pool + n;
  float* g_z = z + z_stride;
  float* act = g_z + z_stride;
  float* deltas = act + act_floats;
  float* q = deltas + act_floats;  // m candidate vectors
  float* qb = q + size_t(m) * n;   // m candidate biases
  float* s = qb + m;               // m scores
  float* g_s = s + m;              // m score gradients
  RowStep* steps = reinterpret_cast<RowStep*>(g_s + m);  // floats only: no alignment beyond a float's

  // Forward.
  assemble(in, dim, n, user, pool, z, z_stride);
  encoding(tower.forward(z, act), user, pool, n, c);
  float flag = 0.0f;
  for (uint32_t j = 0; j < m; ++j) {
    combine(candidates[j], n, nullptr, true, q + size_t(j) * n, &qb[j]);
    s[j] = dot_padded(c, q + size_t(j) * n, n) + qb[j];
    flag += nonfinite_flag(s[j]);
  }
  if (!(flag == 0.0f)) return false;

  // d loss / d score of each candidate.
  std::fill(g_s, g_s + m, 0.0f);
  if (loss == Loss::kSoftmax) {
    float top = -INFINITY;
    for (uint32_t j = 0; j < m; ++j) {
      s[j] -= log_q != nullptr ? log_q[j] : 0.0f;
      top = std::max(top, s[j]);
    }
    float total = 0.0f;
    for (uint32_t j = 0; j < m; ++j) total += (g_s[j] = std::exp(s[j] - top));
    for (uint32_t j = 0; j < m; ++j) g_s[j] = weight * (g_s[j] / total - (j == 0 ? 1.0f : 0.0f));
  } else if (loss == Loss::kBpr) {
    for (uint32_t j = 1; j < m; ++j) {
      const float g = -weight * sigmoid(-(s[0] - s[j]));
      g_s[0] += g;
      g_s[j] -= g;
    }
  } else {
    const float score = offset + s[0];
    g_s[0] = weight * (loss == Loss::kLogistic ? sigmoid(score) - label : score - label);
  }

  // Backward: d loss / d c_u, through the tower and the skip connection into both inputs.
  std::fill(g_c, g_c + n, 0.0f);
  for (uint32_t j = 0; j < m; ++j) {
    const float* __restrict qj = q + size_t(j) * n;
    for (uint32_t t = 0; t < n; ++t) g_c[t] += g_s[j] * qj[t];
  }
  tower.backward(act, g_c, deltas, g_z);
  for (uint32_t t = 0; t < n; ++t) {
    g_user[t] = (t < dim ? g_z[t] : 0.0f) + g_c[t];
    g_pool[t] = (t < dim ? g_z[dim + t] : 0.0f) + g_c[t];
  }
  float signals[kLanes] = {};
  for (uint32_t b = 0; b < n; b += kLanes)
    for (uint32_t j = 0; j < kLanes; ++j)
      signals[j] += nonfinite_flag(c[b + j]) + nonfinite_flag(g_user[b + j]) + nonfinite_flag(g_pool[b + j]);
  flag += sum16(signals);

  // Steps (nothing written yet): the user's rows, the history rows, each candidate's rows.
  RowStep* user_steps = steps;
  RowStep* history_steps = user_steps + in.user.size;
  RowStep* candidate_steps = history_steps + in.history.size;
  flag += part_steps(cfg, in.user, 1.0f, mean_square(g_user, n, dim), 0.0f, false, user_steps);
  flag += part_steps(cfg, in.history, 1.0f, mean_square(g_pool, n, dim), 0.0f, false, history_steps);
  const float c_mean_square = mean_square(c, n, dim);
  RowStep* at = candidate_steps;
  for (uint32_t j = 0; j < m; ++j) {
    flag += part_steps(cfg, candidates[j], g_s[j], c_mean_square, g_s[j], true, at);
    at += candidates[j].size;
  }
  if (!(flag == 0.0f)) return false;

  // Every step is finite (and clipped): write. The tower's weights last: the backward pass
  // above read them.
  apply_rows(cfg, in.user, 1.0f, g_user, user_steps, false);
  apply_rows(cfg, in.history, 1.0f, g_pool, history_steps, false);
  at = candidate_steps;
  for (uint32_t j = 0; j < m; ++j) {
    apply_rows(cfg, candidates[j], g_s[j], c, at, true);
    at += candidates[j].size;
  }
  if (buffer != nullptr) {
    buffer->add(tower, z, act, deltas);
  } else {
    tower.step(TowerStep{cfg.learning_rate, cfg.l2, cfg.grad_clip, cfg.adagrad}, z, act, deltas);
  }
  return true;
}

}  // namespace rtrec
