// The per-event math: score, loss gradient, optimizer step on the touched rows. Each step
// computes every new value into scratch first and writes nothing if any is non-finite, so a
// diverging update is skipped (and counted) instead of poisoning the model.
#pragma once

#include <cstdint>
#include <vector>

#include "rtrec/config.hpp"

namespace rtrec {

class DenseTower;
class TowerGradient;

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
  bool adagrad;
};

// Scratch floats a step needs per thread: new values and accumulators of up to three rows.
inline uint32_t scratch_floats(uint32_t stride) { return 6 * stride; }

// <a, b> over `stride` floats (a multiple of 16; padding is zero).
float dot(const float* a, const float* b, uint32_t stride) noexcept;

inline float sigmoid(float x) noexcept;

// Squared or logistic loss on one (user, item, label) event; `offset` is the global bias.
// Returns false when the step was skipped because a new value would be non-finite.
bool pointwise_step(const StepConfig& config, Loss loss, const RowRef& user, const RowRef& item, float offset,
                    float label, float weight, float* scratch) noexcept;

// BPR on (user, positive item, negative item): maximises log sigmoid(s_ui - s_uj).
bool pairwise_step(const StepConfig& config, const RowRef& user, const RowRef& positive, const RowRef& negative,
                   float weight, float* scratch) noexcept;

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

// One event's step: `candidates[0]` is the positive (the rated item for the pointwise
// losses), the rest sampled negatives (accidental hits already removed). Softmax: sampled
// softmax over the candidates with logits <c_u, q_j> + b_j - log_q[j] (log_q: the sampling
// log-probabilities, null for uniform sampling, where the correction is a constant); bpr:
// the positive against each negative; logistic / squared: the positive alone, with
// `offset` (mu). Gradients flow into the candidates' rows, the tower and both encoder
// inputs. The tower's step goes into `buffer` when given (applied later by its owner), else
// straight into the weights. All-or-nothing: if any signal of the forward or backward pass
// or any step is non-finite, nothing is written and false is returned (steps are clipped and
// bounded by the learning rate, so finite steps keep finite values finite).
bool two_tower_step(const StepConfig& config, Loss loss, DenseTower& tower, TowerGradient* buffer,
                    const EncoderInput& in, const Parts* candidates, const float* log_q, uint32_t n_candidates,
                    float offset, float label, float weight, std::vector<float>& scratch) noexcept;

// scores[r] = biases[r] + <query, vectors[r]> for r in [0, rows).
void score_block(const float* query, const float* vectors, const float* biases, uint32_t rows, uint32_t stride,
                 float* scores) noexcept;

}  // namespace rtrec

#include <cmath>

inline float rtrec::sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }
