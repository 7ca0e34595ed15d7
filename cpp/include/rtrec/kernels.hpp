// The per-event math: score, loss gradient, optimizer step on the touched rows. Each step
// computes every new value into scratch first and writes nothing if any is non-finite, so a
// diverging update is skipped (and counted) instead of poisoning the model.
#pragma once

#include <algorithm>

#include <cstdint>
#include <vector>

#include "rtrec/config.hpp"

namespace rtrec {

class DenseTower;

// Pointers into one table row. `accumulator`/`bias_accumulator` are null under SGD.
struct RowRef {
  float* vector;
  float* accumulator;
  float* bias;
  float* bias_accumulator;
};

struct StepConfig {
  uint32_t stride;  // padded vector length; padding is zero and stays zero
  float learning_rate;
  float l2;         // applied to the rows an event touches (lazy, sparse regularisation)
  float grad_clip;  // per-coordinate clip of the gradient, after L2
  bool adagrad;     // row-wise AdaGrad: one accumulator float per row (and one per bias)
  uint32_t dim;     // unpadded vector length: row-wise AdaGrad takes mean squares over it
  float huber_delta = 1.0f;  // loss huber: |d loss / d score| is at most this
};

// Scratch floats a step needs per thread: the steps of up to three rows.
inline uint32_t scratch_floats(uint32_t stride) { return 3 * stride; }

// <a, b> over `stride` floats (a multiple of 16; padding is zero).
float dot(const float* a, const float* b, uint32_t stride) noexcept;

inline float sigmoid(float x) noexcept;
inline float pointwise_gradient(Loss loss, float s, float label, float huber_delta) noexcept;

// Squared or logistic loss on one (user, item, label) event; `offset` is the global bias.
// Returns false when the step was skipped because a new value would be non-finite.
bool pointwise_step(const StepConfig& config, Loss loss, const RowRef& user, const RowRef& item, float offset,
                    float label, float weight, float* scratch) noexcept;

// BPR on (user, positive item, negative item): maximises log sigmoid(s_ui - s_uj).
bool pairwise_step(const StepConfig& config, const RowRef& user, const RowRef& positive, const RowRef& negative,
                   float weight, float* scratch) noexcept;

// WARP's rank estimate for a positive whose first margin violator came at try `tries` among
// `n_items` candidates: L(floor((n_items - 1) / tries)), L(k) = sum_{j <= k} 1/j (0 when
// there is nothing to rank against). Multiplies the BPR step's weight.
float warp_rank_weight(uint32_t n_items, uint32_t tries) noexcept;

// Side features: an effective vector is a weighted sum of rows (the ID row with weight 1,
// each feature row with 1/sqrt(n)). The composite steps below take the loss gradient with
// respect to the effective vectors and give each part its share (weight x gradient, plus
// L2 on the part's own values), with the same optimizer, clipping and all-or-nothing
// finiteness check as the plain steps. `scratch` grows as needed. Not the hot path: events
// whose rows have no features use the fused kernels above.
struct Part {
  RowRef row;
  float weight;
};
struct Parts {
  const Part* parts;
  uint32_t size;
};
bool pointwise_composite(const StepConfig& config, Loss loss, Parts user, Parts item, float offset, float label,
                         float weight, std::vector<float>& scratch) noexcept;
bool pairwise_composite(const StepConfig& config, Parts user, Parts positive, Parts negative, float weight,
                        std::vector<float>& scratch) noexcept;

// ---- two_tower. The user encoding c_u = tower([user ; history]) + user + history (a skip
// connection): `user` is the user's effective vector (ID row plus weighted feature rows)
// and `history` the pooled input rows of their recent positives (weights summing to 1; no
// parts: zeros).
// two_tower rows are trained with row-wise AdaGrad: `accumulator` points at one float per
// row (the history's parts: items' input vectors and their row accumulators).
struct EncoderInput {
  Parts user;
  Parts history;
};

// Writes c_u (stride floats, zero padded) to `out`; `scratch` grows as needed.
void encode(const DenseTower& tower, const EncoderInput& in, uint32_t stride, float* out,
            std::vector<float>& scratch) noexcept;

// One event of a two_tower step: `candidates[0]` is the positive (the rated item for the
// pointwise losses), the rest sampled negatives (accidental hits already removed).
// Softmax: sampled softmax over the candidates with logits <c_u, q_j> + b_j - log_q[j]
// (log_q: the sampling log-probabilities, null for uniform sampling, where the correction is
// a constant); bpr: the mean over the negatives of the pairwise loss; logistic / squared:
// the positive alone, with `offset` (mu).
struct TwoTowerEvent {
  EncoderInput in;
  const Parts* candidates;
  const float* log_q;
  uint32_t m;  // candidates
  float label, weight;
};

// Trains a block of events (at most DenseTower::kMaxBlock; one on the real-time path): every
// event is encoded and scored with the weights as they are when the call starts, gradients
// flow into its candidates' rows, its user's rows and its history rows (written event by
// event), and the tower takes one step from the block's summed gradient at the end. Per
// event all-or-nothing: an event any of whose signals or steps is non-finite writes nothing
// and adds nothing to the tower's step (steps are clipped and bounded by the learning rate,
// so finite steps keep finite values finite). Returns how many events were applied.
uint32_t two_tower_block(const StepConfig& config, Loss loss, float offset, DenseTower& tower,
                         const TwoTowerEvent* events, uint32_t count, std::vector<float>& scratch) noexcept;

// scores[r] = biases[r] + <query, vectors[r]> for r in [0, rows).
void score_block(const float* query, const float* vectors, const float* biases, uint32_t rows, uint32_t stride,
                 float* scores) noexcept;

}  // namespace rtrec

#include <cmath>

inline float rtrec::sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }

// d loss / d score of a pointwise loss: squared 1/2 (s - y)^2 -> s - y; huber -> s - y
// clipped to [-delta, delta]; logistic log loss -> sigmoid(s) - y.
inline float rtrec::pointwise_gradient(Loss loss, float s, float label, float huber_delta) noexcept {
  if (loss == Loss::kLogistic) return sigmoid(s) - label;
  const float r = s - label;
  return loss == Loss::kHuber ? std::min(std::max(r, -huber_delta), huber_delta) : r;
}
