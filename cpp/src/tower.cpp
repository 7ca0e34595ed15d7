#include "rtrec/tower.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "rtrec/random.hpp"
#include "simd.hpp"

namespace rtrec {
using namespace simd;
namespace {

constexpr uint64_t kTowerInitStream = 0x70e7;

uint32_t padded(uint32_t n) { return (n + 15u) & ~15u; }
size_t padded(size_t n) { return (n + 15u) & ~size_t(15); }

// out[t] += a * v[t] over `n` floats (a multiple of 16): plain loops the compiler vectorises
// without reassociation (each lane is independent).
RTREC_INLINE void axpy(float* __restrict out, float a, const float* __restrict v, uint32_t n) noexcept {
  for (uint32_t t = 0; t < n; ++t) out[t] += a * v[t];
}

RTREC_INLINE float sum_of_squares(const float* v, uint32_t n) noexcept { return dot_padded(v, v, n); }

// One weight row's step from its gradient `scale * v` (clipped per coordinate): SGD, or
// row-wise AdaGrad whose accumulator grows by `mean_square` (the row's mean squared
// gradient). L2 is weight decay (w *= `decay`), decoupled from AdaGrad's scaling: a row
// whose gradient is nearly zero would otherwise see its L2 term divided by a nearly zero
// accumulator.
RTREC_INLINE void row_step(float* __restrict w, float* acc, float scale, const float* __restrict v, uint32_t n,
                           float mean_square, float clip_at, float decay, const TowerStep& c) noexcept {
  float factor = c.learning_rate;
  if (c.adagrad) {
    *acc += mean_square;
    factor = c.learning_rate / (std::sqrt(*acc) + kAdagradEpsilon);
  }
  for (uint32_t t = 0; t < n; ++t) w[t] = w[t] * decay - factor * clip(scale * v[t], clip_at);
}

RTREC_INLINE void bias_step(float* __restrict b, float* __restrict acc, const float* __restrict g,
                            const float* __restrict squares, uint32_t n, float clip_at, const TowerStep& c) noexcept {
  for (uint32_t t = 0; t < n; ++t) {
    const float gt = clip(g[t], clip_at);
    if (c.adagrad) {
      acc[t] += squares != nullptr ? squares[t] : gt * gt;
      b[t] -= c.learning_rate * gt / (std::sqrt(acc[t]) + kAdagradEpsilon);
    } else {
      b[t] -= c.learning_rate * gt;
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

RTREC_HOT const float* DenseTower::forward(const float* in, float* act) const noexcept {
  const float* x = in;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const bool relu = l + 1 < layers_.size();
    float* __restrict out = act + L.act;
    const float* w = params_ + L.weights;
    const float* b = params_ + L.bias;
    if (L.by_output) {
      for (uint32_t j = 0; j < L.out; ++j) {
        const float a = b[j] + dot_padded(w + size_t(j) * L.in_stride, x, L.in_stride);
        out[j] = relu && a < 0.0f ? 0.0f : a;
      }
      for (uint32_t j = L.out; j < L.out_stride; ++j) out[j] = 0.0f;
    } else {
      std::memcpy(out, b, sizeof(float) * L.out_stride);
      for (uint32_t j = 0; j < L.in; ++j)
        if (x[j] != 0.0f) axpy(out, x[j], w + size_t(j) * L.out_stride, L.out_stride);
      if (relu)
        for (uint32_t j = 0; j < L.out_stride; ++j) out[j] = out[j] < 0.0f ? 0.0f : out[j];
    }
    x = out;
  }
  return x;
}

RTREC_HOT void DenseTower::backward(const float* act, const float* grad_out, float* deltas, float* grad_in) const noexcept {
  const Layer& last = layers_.back();
  std::memcpy(deltas + last.act, grad_out, sizeof(float) * last.out_stride);
  for (size_t l = layers_.size(); l-- > 0;) {
    const Layer& L = layers_[l];
    const float* d = deltas + L.act;
    const float* w = params_ + L.weights;
    if (L.by_output) {  // the first layer: d loss / d input
      std::memset(grad_in, 0, sizeof(float) * L.in_stride);
      for (uint32_t j = 0; j < L.out; ++j)
        if (d[j] != 0.0f) axpy(grad_in, d[j], w + size_t(j) * L.in_stride, L.in_stride);
      continue;
    }
    // d loss / d (previous layer's pre-activation): through this layer's weights and the
    // previous layer's ReLU (a unit at zero passes nothing back).
    const Layer& P = layers_[l - 1];
    const float* prev = act + P.act;
    float* __restrict dp = deltas + P.act;
    for (uint32_t j = 0; j < P.out_stride; ++j)
      dp[j] = j < L.in && prev[j] > 0.0f ? dot_padded(w + size_t(j) * L.out_stride, d, L.out_stride) : 0.0f;
  }
}

RTREC_HOT void DenseTower::step(const TowerStep& c, const float* in, const float* act, const float* deltas) noexcept {
  const float decay = 1.0f - c.learning_rate * c.l2;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const float* x = l == 0 ? in : act + layers_[l - 1].act;
    const float* d = deltas + L.act;
    float* w = params_ + L.weights;
    float* row_acc = params_ + L.row_acc;
    if (L.by_output) {
      const float x_mean_square = sum_of_squares(x, L.in_stride) / float(L.in);
      for (uint32_t j = 0; j < L.out; ++j)
        if (d[j] != 0.0f)
          row_step(w + size_t(j) * L.in_stride, row_acc + j, d[j], x, L.in_stride, d[j] * d[j] * x_mean_square,
                   c.grad_clip, decay, c);
    } else {
      const float d_mean_square = sum_of_squares(d, L.out_stride) / float(L.out);
      for (uint32_t j = 0; j < L.in; ++j)
        if (x[j] != 0.0f)
          row_step(w + size_t(j) * L.out_stride, row_acc + j, x[j], d, L.out_stride, x[j] * x[j] * d_mean_square,
                   c.grad_clip, decay, c);
    }
    bias_step(params_ + L.bias, params_ + L.bias_acc, d, nullptr, L.out, c.grad_clip, c);
  }
}

TowerGradient::TowerGradient(const DenseTower& tower)
    : sums_(tower.size_, 0.0f), squares_(tower.size_, 0.0f), touched_(tower.size_, 0) {}

RTREC_HOT void TowerGradient::add(const DenseTower& tower, const float* in, const float* act, const float* deltas) noexcept {
  for (size_t l = 0; l < tower.layers_.size(); ++l) {
    const DenseTower::Layer& L = tower.layers_[l];
    const float* x = l == 0 ? in : act + tower.layers_[l - 1].act;
    const float* d = deltas + L.act;
    float* sums = sums_.data();
    float* squares = squares_.data();
    if (L.by_output) {
      const float x_mean_square = sum_of_squares(x, L.in_stride) / float(L.in);
      for (uint32_t j = 0; j < L.out; ++j) {
        if (d[j] == 0.0f) continue;
        axpy(sums + L.weights + size_t(j) * L.in_stride, d[j], x, L.in_stride);
        squares[L.row_acc + j] += d[j] * d[j] * x_mean_square;
        touched_[L.row_acc + j] = 1;
      }
    } else {
      const float d_mean_square = sum_of_squares(d, L.out_stride) / float(L.out);
      for (uint32_t j = 0; j < L.in; ++j) {
        if (x[j] == 0.0f) continue;
        axpy(sums + L.weights + size_t(j) * L.out_stride, x[j], d, L.out_stride);
        squares[L.row_acc + j] += x[j] * x[j] * d_mean_square;
        touched_[L.row_acc + j] = 1;
      }
    }
    for (uint32_t t = 0; t < L.out; ++t) {
      sums[L.bias + t] += d[t];
      squares[L.bias_acc + t] += d[t] * d[t];
    }
  }
  ++events_;
}

RTREC_HOT void TowerGradient::apply(DenseTower& tower, const TowerStep& c) noexcept {
  if (events_ == 0) return;
  const float clip_at = c.grad_clip * float(events_);
  const float decay = 1.0f - c.learning_rate * c.l2 * float(events_);  // once per event summed
  float* params = tower.params_;
  for (const DenseTower::Layer& L : tower.layers_) {
    const uint32_t stride = L.row_stride();
    for (uint32_t j = 0; j < L.rows(); ++j) {
      if (!touched_[L.row_acc + j]) continue;
      float* sum = sums_.data() + L.weights + size_t(j) * stride;
      row_step(params + L.weights + size_t(j) * stride, params + L.row_acc + j, 1.0f, sum, stride,
               squares_[L.row_acc + j], clip_at, decay, c);
      std::memset(sum, 0, sizeof(float) * stride);
      squares_[L.row_acc + j] = 0.0f;
      touched_[L.row_acc + j] = 0;
    }
    bias_step(params + L.bias, params + L.bias_acc, sums_.data() + L.bias, squares_.data() + L.bias_acc, L.out, clip_at, c);
    std::memset(sums_.data() + L.bias, 0, sizeof(float) * L.out);
    std::memset(squares_.data() + L.bias_acc, 0, sizeof(float) * L.out);
  }
  events_ = 0;
}

}  // namespace rtrec
