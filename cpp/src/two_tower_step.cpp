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
  encoding(tower.forward(z, 1, act), user, pool, stride, out);
}

namespace {

// d loss / d score of each candidate of one event into `g_s`, from its scores `s` (which the
// softmax correction changes in place).
RTREC_INLINE void score_gradients(Loss loss, float offset, const TwoTowerEvent& ev, float* s, float* g_s) noexcept {
  const uint32_t m = ev.m;
  std::fill(g_s, g_s + m, 0.0f);
  if (loss == Loss::kSoftmax) {
    float top = -INFINITY;
    for (uint32_t j = 0; j < m; ++j) {
      s[j] -= ev.log_q != nullptr ? ev.log_q[j] : 0.0f;
      top = std::max(top, s[j]);
    }
    float total = 0.0f;
    for (uint32_t j = 0; j < m; ++j) total += (g_s[j] = std::exp(s[j] - top));
    for (uint32_t j = 0; j < m; ++j) g_s[j] = ev.weight * (g_s[j] / total - (j == 0 ? 1.0f : 0.0f));
  } else if (loss == Loss::kBpr) {
    // The mean of the pairs' losses: with many negatives a sum would scale the positive's
    // step (and c_u's gradient) with their number.
    const float scale = ev.weight / float(m - 1);
    for (uint32_t j = 1; j < m; ++j) {
      const float g = -scale * sigmoid(-(s[0] - s[j]));
      g_s[0] += g;
      g_s[j] -= g;
    }
  } else {
    const float score = offset + s[0];
    g_s[0] = ev.weight * (loss == Loss::kLogistic ? sigmoid(score) - ev.label : score - ev.label);
  }
}

}  // namespace

RTREC_HOT uint32_t two_tower_block(const StepConfig& cfg, Loss loss, float offset, DenseTower& tower,
                                   const TwoTowerEvent* events, uint32_t count, std::vector<float>& scratch) noexcept {
  if (count == 0 || count > DenseTower::kMaxBlock) return 0;
  const uint32_t n = cfg.stride;
  const uint32_t dim = tower.output_size();
  const uint32_t z_stride = tower.input_stride();
  const size_t act_floats = tower.activation_floats();
  uint32_t max_m = 0, max_parts = 0, total_m = 0;
  for (uint32_t e = 0; e < count; ++e) {
    const TwoTowerEvent& ev = events[e];
    uint32_t parts = ev.in.user.size + ev.in.history.size;
    for (uint32_t j = 0; j < ev.m; ++j) parts += ev.candidates[j].size;
    max_m = std::max(max_m, ev.m);
    max_parts = std::max(max_parts, parts);
    total_m += ev.m;
  }
  constexpr size_t kStepFloats = sizeof(RowStep) / sizeof(float);
  const size_t need = size_t(count) * (4 * size_t(n) + 2 * size_t(z_stride) + 2 * act_floats) + 2 * size_t(n) +
                      size_t(max_m) * (n + 2) + total_m + count + kStepFloats * max_parts;
  if (max_m == 0 || !grow(scratch, need)) return 0;
  float* U = scratch.data();               // count x n: user vectors
  float* P = U + size_t(count) * n;        // count x n: pools
  float* C = P + size_t(count) * n;        // count x n: encodings
  float* GC = C + size_t(count) * n;       // count x n: d loss / d c_u
  float* Z = GC + size_t(count) * n;       // count x z_stride: tower inputs
  float* GZ = Z + size_t(count) * z_stride;
  float* act = GZ + size_t(count) * z_stride;
  float* deltas = act + size_t(count) * act_floats;
  float* g_user = deltas + size_t(count) * act_floats;
  float* g_pool = g_user + n;
  float* q = g_pool + n;                   // one event's candidate vectors (max_m x n)
  float* qb = q + size_t(max_m) * n;
  float* s = qb + max_m;
  float* G_S = s + max_m;                  // every event's score gradients, in event order
  float* valid = G_S + total_m;            // 1 or 0 per event
  RowStep* steps = reinterpret_cast<RowStep*>(valid + count);  // floats only

  // 1. Forward for the whole block.
  for (uint32_t e = 0; e < count; ++e)
    assemble(events[e].in, dim, n, U + size_t(e) * n, P + size_t(e) * n, Z + size_t(e) * z_stride, z_stride);
  const float* out = tower.forward(Z, count, act);
  float* g_s = G_S;
  for (uint32_t e = 0; e < count; ++e) {
    const TwoTowerEvent& ev = events[e];
    float* c = C + size_t(e) * n;
    float* g_c = GC + size_t(e) * n;
    encoding(out + size_t(e) * n, U + size_t(e) * n, P + size_t(e) * n, n, c);
    float flag = 0.0f;
    for (uint32_t j = 0; j < ev.m; ++j) {
      combine(ev.candidates[j], n, nullptr, true, q + size_t(j) * n, &qb[j]);
      s[j] = dot_padded(c, q + size_t(j) * n, n) + qb[j];
      flag += nonfinite_flag(s[j]);
    }
    // 2. The loss's gradient with respect to the scores and c_u.
    score_gradients(loss, offset, ev, s, g_s);
    std::fill(g_c, g_c + n, 0.0f);
    for (uint32_t j = 0; j < ev.m; ++j) {
      const float* __restrict qj = q + size_t(j) * n;
      for (uint32_t t = 0; t < n; ++t) g_c[t] += g_s[j] * qj[t];
    }
    for (uint32_t t = 0; t < n; ++t) flag += nonfinite_flag(g_c[t]);
    valid[e] = flag == 0.0f ? 1.0f : 0.0f;
    if (valid[e] == 0.0f) std::fill(g_c, g_c + n, 0.0f);  // passes nothing back
    g_s += ev.m;
  }

  // 3. Backward through the tower for the whole block.
  tower.backward(act, GC, count, deltas, GZ);

  // 4. Each event's embedding steps, event by event: decided whole, then written.
  uint32_t applied = 0;
  g_s = G_S;
  for (uint32_t e = 0; e < count; ++e) {
    const TwoTowerEvent& ev = events[e];
    const float* c = C + size_t(e) * n;
    const float* g_c = GC + size_t(e) * n;
    const float* g_z = GZ + size_t(e) * z_stride;
    float flag = valid[e] == 1.0f ? 0.0f : INFINITY;
    // Each input reaches c_u twice: through the tower and through the skip connection.
    for (uint32_t t = 0; t < n; ++t) {
      g_user[t] = (t < dim ? g_z[t] : 0.0f) + g_c[t];
      g_pool[t] = (t < dim ? g_z[dim + t] : 0.0f) + g_c[t];
      flag += nonfinite_flag(g_user[t]) + nonfinite_flag(g_pool[t]);
    }
    RowStep* user_steps = steps;
    RowStep* history_steps = user_steps + ev.in.user.size;
    RowStep* candidate_steps = history_steps + ev.in.history.size;
    if (flag == 0.0f) {
      flag += part_steps(cfg, ev.in.user, 1.0f, mean_square(g_user, n, dim), 0.0f, false, user_steps);
      flag += part_steps(cfg, ev.in.history, 1.0f, mean_square(g_pool, n, dim), 0.0f, false, history_steps);
      const float c_mean_square = mean_square(c, n, dim);
      RowStep* at = candidate_steps;
      for (uint32_t j = 0; j < ev.m; ++j) {
        flag += part_steps(cfg, ev.candidates[j], g_s[j], c_mean_square, g_s[j], true, at);
        at += ev.candidates[j].size;
      }
    }
    if (flag == 0.0f) {
      apply_rows(cfg, ev.in.user, 1.0f, g_user, user_steps, false);
      apply_rows(cfg, ev.in.history, 1.0f, g_pool, history_steps, false);
      RowStep* at = candidate_steps;
      for (uint32_t j = 0; j < ev.m; ++j) {
        apply_rows(cfg, ev.candidates[j], g_s[j], c, at, true);
        at += ev.candidates[j].size;
      }
      ++applied;
    } else {
      tower.forget(deltas, count, e);  // a skipped event adds nothing to the tower's step
    }
    g_s += ev.m;
  }

  // 5. One step of the tower's weights from the block (they were read above, not written).
  if (applied > 0) tower.step(TowerStep{cfg.learning_rate, cfg.l2, cfg.grad_clip, cfg.adagrad}, Z, act, deltas, count);
  return applied;
}

}  // namespace rtrec
