// The two_tower model's per-event math: encode the user, score the candidates, the loss's
// gradient, backpropagation through the tower into the encoder's inputs, and the steps.
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
RTREC_INLINE void assemble(const EncoderInput& in, uint32_t dim, uint32_t stride, float* user, float* pool, float* z,
                           uint32_t z_stride) noexcept {
  float ignored;
  combine(in.user, stride, nullptr, false, user, &ignored);
  if (in.history.size > 0) combine(in.history, stride, nullptr, false, pool, &ignored);
  else std::fill(pool, pool + stride, 0.0f);
  std::fill(z, z + z_stride, 0.0f);
  std::memcpy(z, user, sizeof(float) * dim);
  std::memcpy(z + dim, pool, sizeof(float) * dim);
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
  const float* c = tower.forward(z, act);
  for (uint32_t t = 0; t < stride; ++t) out[t] = c[t] + user[t] + pool[t];
}

RTREC_HOT bool two_tower_step(const StepConfig& cfg, Loss loss, DenseTower& tower, TowerGradient* buffer,
                              const EncoderInput& in, const Parts* candidates, const float* log_q, uint32_t m,
                              float offset, float label, float weight, std::vector<float>& scratch) noexcept {
  const uint32_t n = cfg.stride;
  const uint32_t dim = tower.output_size();
  const uint32_t z_stride = tower.input_stride();
  const size_t act_floats = tower.activation_floats();
  size_t step_floats = composite_floats(n, in.user.size) + composite_floats(n, in.history.size);
  for (uint32_t j = 0; j < m; ++j) step_floats += composite_floats(n, candidates[j].size);
  const size_t need = 4 * size_t(n) + 2 * size_t(z_stride) + 2 * act_floats + 2 * size_t(m) * n + 3 * size_t(m) + step_floats;
  if (m == 0 || !grow(scratch, need)) return false;
  float* user = scratch.data();
  float* pool = user + n;
  float* g_user = pool + n;
  float* g_pool = g_user + n;
  float* z = g_pool + n;
  float* g_z = z + z_stride;
  float* act = g_z + z_stride;
  float* deltas = act + act_floats;
  float* q = deltas + act_floats;    // m candidate vectors
  float* g_q = q + size_t(m) * n;    // m candidate gradients
  float* qb = g_q + size_t(m) * n;   // m candidate biases
  float* s = qb + m;                 // m scores
  float* g_s = s + m;                // m score gradients
  float* user_steps = g_s + m;
  float* history_steps = user_steps + composite_floats(n, in.user.size);
  float* candidate_steps = history_steps + composite_floats(n, in.history.size);

  // Forward.
  assemble(in, dim, n, user, pool, z, z_stride);
  const float* tc = tower.forward(z, act);
  float* c = g_pool;  // the encoding, until g_pool is needed
  for (uint32_t t = 0; t < n; ++t) c[t] = tc[t] + user[t] + pool[t];
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

  // Backward: into the candidates, c_u, the tower and its two inputs.
  float* g_c = g_user;  // reused below once the tower has its input gradient
  std::fill(g_c, g_c + n, 0.0f);
  for (uint32_t j = 0; j < m; ++j) {
    const float* qj = q + size_t(j) * n;
    float* gqj = g_q + size_t(j) * n;
    for (uint32_t t = 0; t < n; ++t) {
      g_c[t] += g_s[j] * qj[t];
      gqj[t] = g_s[j] * c[t];
    }
  }
  tower.backward(act, g_c, deltas, g_z);
  // Each input reaches c_u twice: through the tower and through the skip connection.
  for (uint32_t t = 0; t < n; ++t) {
    g_user[t] = (t < dim ? g_z[t] : 0.0f) + g_c[t];
    g_pool[t] = (t < dim ? g_z[dim + t] : 0.0f) + g_c[t];
  }
  for (uint32_t t = 0; t < z_stride; ++t) flag += nonfinite_flag(g_z[t]);

  flag += composite_steps(cfg, in.user, g_user, 0.0f, false, user_steps);
  if (in.history.size > 0) flag += composite_steps(cfg, in.history, g_pool, 0.0f, false, history_steps);
  float* steps = candidate_steps;
  for (uint32_t j = 0; j < m; ++j) {
    flag += composite_steps(cfg, candidates[j], g_q + size_t(j) * n, g_s[j], true, steps);
    steps += composite_floats(n, candidates[j].size);
  }
  if (!(flag == 0.0f)) return false;

  // Every new value is finite: write.
  apply_composite(cfg, in.user, user_steps, false);
  if (in.history.size > 0) apply_composite(cfg, in.history, history_steps, false);
  steps = candidate_steps;
  for (uint32_t j = 0; j < m; ++j) {
    apply_composite(cfg, candidates[j], steps, true);
    steps += composite_floats(n, candidates[j].size);
  }
  if (buffer != nullptr) {
    buffer->add(tower, z, act, deltas);
  } else {
    tower.step(TowerStep{cfg.learning_rate, cfg.l2, cfg.grad_clip, cfg.adagrad}, z, act, deltas);
  }
  return true;
}

}  // namespace rtrec
