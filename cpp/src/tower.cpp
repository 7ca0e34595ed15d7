#include "rtrec/tower.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "dense_kernels.hpp"
#include "rtrec/random.hpp"
#include "simd.hpp"

namespace rtrec {
using namespace simd;
using namespace dense;
namespace {

constexpr uint64_t kTowerInitStream = 0x70e7;

uint32_t padded(uint32_t n) { return (n + 15u) & ~15u; }
size_t padded(size_t n) { return (n + 15u) & ~size_t(15); }

RTREC_INLINE float mean_square(const float* v, uint32_t stride, uint32_t n) noexcept {
  return dot_padded(v, v, stride) / float(n);
}

// The weight step of `rows` rows of a layer from a block: row r's gradient is
// sum_e A[e][r] * B[e] (A: count x lda, the per-row scalars; B: count x row_stride, the
// shared vectors), its AdaGrad increment sum_e A[e][r]^2 * b_mean_square[e]. Rows whose A
// column is all zero (units off for every event) get no step. Four rows at a time, each
// 16-column block of their gradients computed in registers and applied at once: no
// gradient buffer is ever written.
RTREC_INLINE void rows_step(float* w, float* row_acc, uint32_t rows, uint32_t row_stride, const float* A, uint32_t lda,
                            const float* B, const float* b_mean_square, uint32_t count, const TowerStep& c) noexcept {
  const float clip_at = c.grad_clip * float(count);
  const float decay = 1.0f - c.learning_rate * c.l2 * float(count);
  if (count == 1) {  // one event (the real-time path): each active row's gradient is a scaled B
    const float* __restrict b = B;
    for (uint32_t j = 0; j < rows; ++j) {
      const float a = A[j];
      if (a == 0.0f) continue;
      float factor = c.learning_rate;
      if (c.adagrad) {
        row_acc[j] += a * a * b_mean_square[0];
        factor = c.learning_rate / (std::sqrt(row_acc[j]) + kAdagradEpsilon);
      }
      float* __restrict wr = w + size_t(j) * row_stride;
      for (uint32_t t = 0; t < row_stride; ++t) wr[t] = wr[t] * decay - factor * clip(a * b[t], clip_at);
    }
    return;
  }
  for (uint32_t j0 = 0; j0 < rows; j0 += 4) {
    const uint32_t n_rows = rows - j0 < 4 ? rows - j0 : 4;
    float factor[4] = {0, 0, 0, 0};
    bool active[4] = {false, false, false, false};
    for (uint32_t r = 0; r < n_rows; ++r) {
      float increment = 0.0f;
      for (uint32_t e = 0; e < count; ++e) {
        const float a = A[size_t(e) * lda + j0 + r];
        active[r] |= a != 0.0f;
        increment += a * a * b_mean_square[e];
      }
      if (!active[r]) continue;
      factor[r] = c.learning_rate;
      if (c.adagrad) {
        row_acc[j0 + r] += increment;
        factor[r] = c.learning_rate / (std::sqrt(row_acc[j0 + r]) + kAdagradEpsilon);
      }
    }
    if (!(active[0] || active[1] || active[2] || active[3])) continue;
    for (uint32_t col = 0; col < row_stride; col += 16) {
      Vec8 lo[4], hi[4];
      if (n_rows == 4) {
        tn_tile<4>(A, lda, j0, B, row_stride, count, col, lo, hi);
      } else {  // the last rows of a layer whose row count is not a multiple of 4
        Vec8 l1[1], h1[1];
        for (uint32_t r = 0; r < n_rows; ++r) {
          tn_tile<1>(A, lda, j0 + r, B, row_stride, count, col, l1, h1);
          lo[r] = l1[0];
          hi[r] = h1[0];
        }
      }
      for (uint32_t r = 0; r < n_rows; ++r) {
        if (!active[r]) continue;
        float g[16];
        std::memcpy(g, &lo[r], sizeof(Vec8));
        std::memcpy(g + 8, &hi[r], sizeof(Vec8));
        float* __restrict wr = w + size_t(j0 + r) * row_stride + col;
        for (uint32_t t = 0; t < 16; ++t) wr[t] = wr[t] * decay - factor[r] * clip(g[t], clip_at);
      }
    }
  }
}

RTREC_INLINE void bias_step(float* __restrict b, float* __restrict acc, const float* deltas, uint32_t stride, uint32_t n,
                            uint32_t count, const TowerStep& c) noexcept {
  const float clip_at = c.grad_clip * float(count);
  for (uint32_t t = 0; t < n; ++t) {
    float g = 0.0f, squares = 0.0f;
    for (uint32_t e = 0; e < count; ++e) {
      const float d = deltas[size_t(e) * stride + t];
      g += d;
      squares += d * d;
    }
    g = clip(g, clip_at);
    if (c.adagrad) {
      acc[t] += squares;
      b[t] -= c.learning_rate * g / (std::sqrt(acc[t]) + kAdagradEpsilon);
    } else {
      b[t] -= c.learning_rate * g;
    }
  }
}

}  // namespace

DenseTower::DenseTower(uint32_t input, const std::vector<uint32_t>& hidden, uint32_t output, bool adagrad,
                       uint64_t seed)
    : hidden_(hidden), adagrad_(adagrad) {
  if (input == 0 || output == 0 || hidden.empty()) throw std::invalid_argument("a tower needs an input, hidden layers and an output");
  std::vector<uint32_t> sizes{input};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(output);
  size_t offset = 0, act = 0;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    Layer L;
    L.in = sizes[l];
    L.out = sizes[l + 1];
    L.in_stride = padded(L.in);
    L.out_stride = padded(L.out);
    L.by_output = l == 0;
    L.weights = offset;
    offset += size_t(L.rows()) * L.row_stride();
    L.bias = offset;
    offset += L.out_stride;
    L.row_acc = offset;
    offset += padded(size_t(L.rows()));
    L.bias_acc = offset;
    offset += L.out_stride;
    L.act = act;
    act += L.out_stride;
    layers_.push_back(L);
  }
  size_ = offset;
  activation_floats_ = act;
  params_ = static_cast<float*>(std::aligned_alloc(64, padded(size_) * sizeof(float)));
  if (params_ == nullptr) throw std::bad_alloc();
  std::memset(params_, 0, size_ * sizeof(float));
  // He-uniform for the ReLU layers, LeCun-uniform for the linear output: activations keep
  // roughly the scale of the input embeddings from layer to layer.
  SplitMix64 rng(derive_seed(seed, kTowerInitStream));
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const bool relu_after = l + 1 < layers_.size();
    const float a = std::sqrt((relu_after ? 6.0f : 3.0f) / float(L.in));
    for (uint32_t r = 0; r < L.rows(); ++r) {
      float* w = params_ + L.weights + size_t(r) * L.row_stride();
      const uint32_t n = L.by_output ? L.in : L.out;
      for (uint32_t t = 0; t < n; ++t) w[t] = (2.0f * rng.uniform() - 1.0f) * a;
    }
  }
}

DenseTower::~DenseTower() { std::free(params_); }

RTREC_HOT const float* DenseTower::forward(const float* in, uint32_t count, float* act) const noexcept {
  const float* x = in;
  uint32_t ldx = input_stride();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const bool relu = l + 1 < layers_.size();
    float* out = block(act, L, count);
    const float* w = params_ + L.weights;
    const float* b = params_ + L.bias;
    if (L.by_output) {
      gemm_nt(x, ldx, w, L.in_stride, count, L.out, L.in_stride, b, out, L.out_stride);
      for (uint32_t e = 0; e < count; ++e)
        for (uint32_t j = L.out; j < L.out_stride; ++j) out[size_t(e) * L.out_stride + j] = 0.0f;
    } else {
      for (uint32_t e = 0; e < count; ++e) std::memcpy(out + size_t(e) * L.out_stride, b, sizeof(float) * L.out_stride);
      gemm_nn(x, ldx, w, L.out_stride, count, L.in, L.out_stride, out, L.out_stride);
    }
    if (relu)
      for (size_t k = 0; k < size_t(count) * L.out_stride; ++k) out[k] = out[k] < 0.0f ? 0.0f : out[k];
    x = out;
    ldx = L.out_stride;
  }
  return x;
}

RTREC_HOT void DenseTower::backward(const float* act, const float* grad_out, uint32_t count, float* deltas,
                                    float* grad_in) const noexcept {
  const Layer& last = layers_.back();
  std::memcpy(block(deltas, last, count), grad_out, sizeof(float) * last.out_stride * count);
  for (size_t l = layers_.size(); l-- > 0;) {
    const Layer& L = layers_[l];
    const float* d = block(deltas, L, count);
    const float* w = params_ + L.weights;
    if (L.by_output) {  // the first layer: d loss / d input
      std::memset(grad_in, 0, sizeof(float) * L.in_stride * count);
      gemm_nn(d, L.out_stride, w, L.in_stride, count, L.out, L.in_stride, grad_in, L.in_stride);
      continue;
    }
    // d loss / d (previous layer's pre-activation): through this layer's weights and the
    // previous layer's ReLU (a unit at zero passes nothing back).
    const Layer& P = layers_[l - 1];
    const float* prev = block(act, P, count);
    float* dp = block(deltas, P, count);
    if (count == 1) {  // one event: only the units that are on need their dot product
      for (uint32_t j = 0; j < L.in; ++j) dp[j] = prev[j] > 0.0f ? dot_padded(w + size_t(j) * L.out_stride, d, L.out_stride) : 0.0f;
      for (uint32_t j = L.in; j < P.out_stride; ++j) dp[j] = 0.0f;
      continue;
    }
    gemm_nt(d, L.out_stride, w, L.out_stride, count, L.in, L.out_stride, nullptr, dp, P.out_stride);
    for (uint32_t e = 0; e < count; ++e)
      for (uint32_t j = 0; j < P.out_stride; ++j) {
        float& v = dp[size_t(e) * P.out_stride + j];
        v = j < L.in && prev[size_t(e) * P.out_stride + j] > 0.0f ? v : 0.0f;
      }
  }
}

RTREC_HOT void DenseTower::step(const TowerStep& c, const float* in, const float* act, const float* deltas,
                                uint32_t count) noexcept {
  float mean_squares[kMaxBlock];
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const uint32_t ldx = l == 0 ? input_stride() : layers_[l - 1].out_stride;
    const float* x = l == 0 ? in : block(act, layers_[l - 1], count);
    const float* d = block(deltas, L, count);
    float* w = params_ + L.weights;
    float* row_acc = params_ + L.row_acc;
    if (L.by_output) {  // row j's gradient: sum_e d[e][j] * x[e]
      for (uint32_t e = 0; e < count; ++e) mean_squares[e] = mean_square(x + size_t(e) * ldx, ldx, L.in);
      rows_step(w, row_acc, L.out, L.in_stride, d, L.out_stride, x, mean_squares, count, c);
    } else {  // row j's gradient: sum_e x[e][j] * d[e]
      for (uint32_t e = 0; e < count; ++e) mean_squares[e] = mean_square(d + size_t(e) * L.out_stride, L.out_stride, L.out);
      rows_step(w, row_acc, L.in, L.out_stride, x, ldx, d, mean_squares, count, c);
    }
    bias_step(params_ + L.bias, params_ + L.bias_acc, d, L.out_stride, L.out, count, c);
  }
}

}  // namespace rtrec
