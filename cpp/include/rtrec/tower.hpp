// The dense part of the two_tower model: input -> [Linear -> ReLU] x hidden -> Linear ->
// output, trained in place by many threads (Hogwild: weights are read and written without
// locks; a concurrent step can lose part of another's, never corrupt the structure).
//
// It works on blocks of events: forward, backward and the weight step each take `count`
// events at once (one for the real-time path, a few dozen per thread in fit), so the work is
// small matrix products that keep the FMA units busy, and the shared weights are written
// once per block rather than once per event (threads then rarely fight over the tower's
// cache lines). Matrices are row-major, one row per event, rows padded to 16 floats.
//
// Layout, chosen for ReLU sparsity: the first layer's weights are stored one row per output
// unit (its input is dense; a unit that stays at zero skips its weight step), every later
// layer's one row per *input* unit (its input is a ReLU output: a zero input skips its row
// in the forward pass and in the weight step).
//
// Optimizer: SGD, or AdaGrad with one accumulator per weight row (row-wise AdaGrad, as used
// for large embedding tables) and one per bias entry: per-weight AdaGrad would cost a square
// root and a division for every weight of every event; row-wise it costs one per row. A
// block's step uses the sum of its events' gradients, the accumulator grows by the sum of
// their mean squares (so the step size matches that many single steps). L2 is weight decay
// of the rows a step touches, decoupled from AdaGrad's scaling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtrec {

struct TowerStep {
  float learning_rate;
  float l2;
  float grad_clip;  // per coordinate, on each event's gradient (a block's sum: count times it)
  bool adagrad;
};

class DenseTower {
 public:
  static constexpr uint32_t kMaxBlock = 64;  // events per block

  // `input` floats in (passed padded to input_stride(), zeros beyond), `hidden` widths,
  // `output` floats out. Weights start He-uniform from `seed`.
  DenseTower(uint32_t input, const std::vector<uint32_t>& hidden, uint32_t output, bool adagrad, uint64_t seed);
  ~DenseTower();
  DenseTower(const DenseTower&) = delete;
  DenseTower& operator=(const DenseTower&) = delete;

  uint32_t input_size() const noexcept { return layers_.front().in; }
  uint32_t input_stride() const noexcept { return layers_.front().in_stride; }
  uint32_t output_size() const noexcept { return layers_.back().out; }
  uint32_t output_stride() const noexcept { return layers_.back().out_stride; }
  const std::vector<uint32_t>& hidden() const noexcept { return hidden_; }

  // Floats of every layer's output (or delta) for one event; a block needs count times it.
  size_t activation_floats() const noexcept { return activation_floats_; }

  // in: count x input_stride. Fills `act` (count x activation_floats) with each layer's
  // outputs; returns the final outputs (count rows of output_stride floats, zero padded).
  const float* forward(const float* in, uint32_t count, float* act) const noexcept;
  // Given d loss / d output (count x output_stride, padded with zeros), fills `deltas`
  // (count x activation_floats) with each layer's d loss / d pre-activation and `grad_in`
  // (count x input_stride) with d loss / d input. Reads the weights, writes none.
  void backward(const float* act, const float* grad_out, uint32_t count, float* deltas, float* grad_in) const noexcept;
  // One step of every weight from the block's summed gradient (the events' weights are
  // already in their deltas; an event with all-zero deltas contributes nothing).
  void step(const TowerStep& config, const float* in, const float* act, const float* deltas, uint32_t count) noexcept;
  // Zeroes event e's deltas in a block of `count` (it then contributes nothing to step()).
  void forget(float* deltas, uint32_t count, uint32_t e) const noexcept {
    for (const Layer& L : layers_)
      for (uint32_t t = 0; t < L.out_stride; ++t) block(deltas, L, count)[size_t(e) * L.out_stride + t] = 0.0f;
  }

  // Every parameter (weights, biases, accumulators) as one flat array, for snapshots.
  size_t parameter_count() const noexcept { return size_; }
  const float* parameters() const noexcept { return params_; }
  float* parameters() noexcept { return params_; }
  uint64_t memory_bytes() const noexcept { return size_ * sizeof(float); }

 private:
  struct Layer {
    uint32_t in, out, in_stride, out_stride;
    bool by_output;  // rows are output units (first layer) or input units (the rest)
    size_t weights, bias, row_acc, bias_acc;  // offsets into params_
    size_t act;                                // offset of the layer's output per event
    uint32_t rows() const noexcept { return by_output ? out : in; }
    uint32_t row_stride() const noexcept { return by_output ? in_stride : out_stride; }
  };
  // A layer's block of outputs (or deltas): count rows of out_stride floats.
  static float* block(float* base, const Layer& L, uint32_t count) noexcept { return base + L.act * count; }
  static const float* block(const float* base, const Layer& L, uint32_t count) noexcept { return base + L.act * count; }

  std::vector<uint32_t> hidden_;
  std::vector<Layer> layers_;
  bool adagrad_;
  size_t size_ = 0;
  size_t activation_floats_ = 0;
  float* params_ = nullptr;
};

}  // namespace rtrec
