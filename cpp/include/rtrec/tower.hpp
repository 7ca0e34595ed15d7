// The dense part of the two_tower model: input -> [Linear -> ReLU] x hidden -> Linear ->
// output, trained in place by many threads (Hogwild: weights are read and written without
// locks; a concurrent step can lose part of another's, never corrupt the structure).
//
// Layout, chosen for ReLU sparsity: the first layer's weights are stored one row per output
// unit (its input is dense; a unit that stays at zero skips its backward work), every later
// layer's one row per *input* unit (its input is a ReLU output: a zero input skips its row in
// the forward pass and in both backward products). Rows are padded to 16 floats.
//
// Optimizer: SGD, or AdaGrad with one accumulator per weight row (row-wise AdaGrad, as used
// for large embedding tables) and one per bias entry. Per-weight AdaGrad would cost a square
// root and a division for every weight of every event; row-wise it costs one per row. L2 is
// weight decay of the rows a step touches, decoupled from AdaGrad's scaling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtrec {

struct TowerStep {
  float learning_rate;
  float l2;
  float grad_clip;  // per coordinate, on each event's (or batch's) gradient
  bool adagrad;
};

class TowerGradient;

class DenseTower {
 public:
  // `input` floats in (the caller passes them padded to a multiple of 16, zeros beyond),
  // `hidden` widths, `output` floats out. Weights start He-uniform from `seed`.
  DenseTower(uint32_t input, const std::vector<uint32_t>& hidden, uint32_t output, bool adagrad, uint64_t seed);
  ~DenseTower();
  DenseTower(const DenseTower&) = delete;
  DenseTower& operator=(const DenseTower&) = delete;

  uint32_t input_size() const noexcept { return layers_.front().in; }
  uint32_t input_stride() const noexcept { return layers_.front().in_stride; }
  uint32_t output_size() const noexcept { return layers_.back().out; }
  const std::vector<uint32_t>& hidden() const noexcept { return hidden_; }

  // Scratch sizes (floats) for one event: every layer's output, and every layer's delta.
  size_t activation_floats() const noexcept { return activation_floats_; }

  // Fills `act` (activation_floats()) with each layer's output; returns the final output
  // (output_size() floats, padded to a multiple of 16 with zeros).
  const float* forward(const float* in, float* act) const noexcept;
  // Given d loss / d output (padded), fills `deltas` (activation_floats()) with each
  // layer's d loss / d pre-activation and `grad_in` (input_stride()) with d loss / d input.
  // Reads the weights, writes none.
  void backward(const float* act, const float* grad_out, float* deltas, float* grad_in) const noexcept;
  // One event's weight step from its forward/backward results, scaled by nothing more (the
  // event weight is already in grad_out).
  void step(const TowerStep& config, const float* in, const float* act, const float* deltas) noexcept;

  // Every parameter (weights, biases, accumulators) as one flat array, for snapshots.
  size_t parameter_count() const noexcept { return size_; }
  const float* parameters() const noexcept { return params_; }
  float* parameters() noexcept { return params_; }
  uint64_t memory_bytes() const noexcept { return size_ * sizeof(float); }

 private:
  friend class TowerGradient;
  struct Layer {
    uint32_t in, out, in_stride, out_stride;
    bool by_output;  // rows are output units (first layer) or input units (the rest)
    size_t weights, bias, row_acc, bias_acc;  // offsets into params_
    size_t act;                                // offset of the layer's output in act/deltas
    uint32_t rows() const noexcept { return by_output ? out : in; }
    uint32_t row_stride() const noexcept { return by_output ? in_stride : out_stride; }
  };

  std::vector<uint32_t> hidden_;
  std::vector<Layer> layers_;
  bool adagrad_;
  size_t size_ = 0;
  size_t activation_floats_ = 0;
  float* params_ = nullptr;
};

// Per-thread sums of many events' tower gradients, applied in one step (Hogwild fit: the
// shared weights are written once per batch instead of once per event, so threads do not
// fight over the tower's cache lines on every event).
class TowerGradient {
 public:
  explicit TowerGradient(const DenseTower& tower);
  void add(const DenseTower& tower, const float* in, const float* act, const float* deltas) noexcept;
  // Applies the sums (as one step with the summed gradient; AdaGrad accumulates the sum of
  // the events' squared gradients, so the step size matches that many single steps) and
  // clears them.
  void apply(DenseTower& tower, const TowerStep& config) noexcept;
  uint32_t events() const noexcept { return events_; }

 private:
  std::vector<float> sums_;      // laid out like the tower's weights and biases
  std::vector<float> squares_;   // per weight row and per bias entry: sum of squared grads
  std::vector<uint8_t> touched_; // per weight row (all layers, in order)
  uint32_t events_ = 0;
};

}  // namespace rtrec
