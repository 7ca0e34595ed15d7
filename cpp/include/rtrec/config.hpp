// What a model is: its family, loss, optimizer and hyperparameters, with their defaults,
// limits and checks. This file is the one owner of those facts: the binding exports them
// (defaults(), limits, consumed()) and the Python layer reads them from there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rtrec {

// mf: score = mu + b_u + b_i + <p_u, q_i>.
// two_tower: score = mu + b_i + <c_u, q_i>, c_u a dense ReLU tower over the user's ID row and
// the pooled input rows of their recent positives (see model.hpp).
enum class Family : int { kMf = 0, kTwoTower = 1 };
// huber: squared near the rating, linear beyond huber_delta (a wrong rating pulls less).
// warp: LightFM's ranking loss (MF only): per positive, sampled items until one scores within
// a margin of 1 of it (at most `negatives` tries), then a BPR step scaled by the rank estimate.
enum class Loss : int { kSquared = 0, kLogistic = 1, kBpr = 2, kSoftmax = 3, kWarp = 4, kHuber = 5 };
enum class Optimizer : int { kSgd = 0, kAdagrad = 1 };
// How retrieval ranks the catalogue: exact (every row scored in float32), or compact (every
// row scored from an int8 shadow of the item vectors, the best kCompactDepth re-scored
// exactly; see compact_rows.hpp). Chosen by benchmarks/bench_compact_topk.py.
enum class Retrieval : int { kExact = 0, kCompact = 1 };
// Candidates the compact scan re-scores exactly: max(kCompactDepth, kCompactDepthPerResult x
// k). benchmarks/bench_compact_topk.py replays the int8 scores of trained models (1M mf items,
// 200k two_tower items, 1,000 users each): every user's exact top 10 was within the int8
// top 14 (mf) and 12 (two_tower); the depth keeps a margin of 4.5x over that at k = 10 and
// about 3x per result beyond.
constexpr uint32_t kCompactDepth = 64;
constexpr uint32_t kCompactDepthPerResult = 4;

// Limits. Each is a property of the core's data structures, named where it comes from.
constexpr uint32_t kMaxDim = 1u << 16;               // rows stay far from any size overflow
constexpr uint32_t kMaxFeaturesPerId = 1024;         // per-ID feature lists are small
constexpr uint32_t kMaxMinCount = 65535;             // the admission sketch's 16-bit counters
constexpr uint64_t kMaxRows = uint64_t(1) << 28;     // ChunkDirectory::kMaxChunks x 1024 rows
constexpr uint32_t kMaxNegatives = 4096;             // per-event scratch stays bounded
constexpr uint32_t kMaxTowerLayers = 8;              // hidden layers of the user tower
constexpr uint32_t kMaxTowerWidth = 8192;            // units per hidden layer
constexpr uint32_t kMaxHistory = 1024;               // recent positives kept per user
constexpr double kMaxDedupWindow = 366.0 * 86400.0;  // a year: a window is about retries, not history
constexpr double kMaxUserRate = 1e6;                 // events per second per user

struct ModelConfig {
  Family family = Family::kMf;
  uint32_t dim = 64;
  Loss loss = Loss::kBpr;
  Optimizer optimizer = Optimizer::kAdagrad;
  float learning_rate = 0.05f;
  float l2 = 1e-4f;
  float grad_clip = 10.0f;
  float init_std = 0.1f;
  uint32_t negatives = 1;
  uint64_t seed = 0;
  // BPR/softmax negatives: uniform over known items, or popularity-weighted (drawn from a
  // pool of recent positives' items), which pushes personal taste over plain popularity.
  bool popularity_negatives = false;
  // Admission: an ID gets a row only once it has been seen this many times (counted in a
  // count-min sketch, no row per rare ID); events involving an unadmitted ID are not learned.
  uint32_t min_count = 1;
  // Expiry: rows not updated for `ttl` seconds of the model's clock are evicted (0: never),
  // and each table keeps at most `max_rows` rows, the least recently updated going first
  // (0: no cap). Checked after every fit, update and set_features call.
  double ttl = 0.0;
  uint64_t max_rows = 0;
  // two_tower only: hidden layer widths of the user tower, how many recent positives each
  // user keeps, and the weight of the k-th most recent one in the pool (recency^k).
  std::vector<uint32_t> tower;
  uint32_t history = 0;
  float recency = 1.0f;
  // Noisy feedback (the real-time path, update(); fit() learns every event it is given).
  // dedup_window: an event identical to one learned within this many seconds of event time
  // (same user, item and label) is counted as deduplicated, not learned (0: off).
  // max_user_rate: a user's events beyond this many per second of event time (a token
  // bucket holding one second's worth, at least one event) are counted as rate limited,
  // not learned (0: off). Both remember a bounded number of recent events and users (see
  // NoiseGuard), whatever the number of users.
  double dedup_window = 0.0;
  double max_user_rate = 0.0;
  // huber loss: residuals beyond this (label units) pull with constant force.
  float huber_delta = 1.0f;
  // mf, pointwise losses: each event's step is scaled down for user and item rows whose
  // recent residuals disagree in sign (noisy labels), see AdaptiveStep.
  bool adaptive_step = false;
  // Retrieval mode (see Retrieval): compact keeps an int8 shadow of the item vectors.
  Retrieval retrieval = Retrieval::kCompact;
};

// The defaults of a family (every field set; mf leaves the two_tower fields empty).
ModelConfig default_config(Family family);
// How many passes fit() makes over its events unless told otherwise.
uint32_t default_epochs(Family family) noexcept;

// Throws std::invalid_argument naming the first field that is out of range or does not
// apply to the family (a loss the family does not support, a tower for mf, ...).
void validate_config(const ModelConfig& config);

// Whether an event puts the item among the user's consumed items (the seen set that
// recommend excludes, and the history two_tower encodes). The one definition of the rule.
bool consumed(Loss loss, float label, float weight) noexcept;
// Losses that regress a label (rating): squared and huber.
inline bool rating_loss(Loss loss) noexcept { return loss == Loss::kSquared || loss == Loss::kHuber; }

// Losses that learn from implicit positives against sampled items (bpr, warp, softmax):
// labels are optional (a missing one is 1), a label <= 0 is not a positive and teaches
// nothing, and `negatives` applies. The one definition of that rule.
bool samples_negatives(Loss loss) noexcept;

// Names <-> values. parse_* throw std::invalid_argument listing the accepted names.
Family parse_family(const std::string& name);
Loss parse_loss(const std::string& name);
Optimizer parse_optimizer(const std::string& name);
bool parse_negative_sampling(const std::string& name);  // "uniform" -> false, "popularity" -> true
Retrieval parse_retrieval(const std::string& name);
const char* retrieval_name(Retrieval retrieval) noexcept;
const char* family_name(Family family) noexcept;
const char* loss_name(Loss loss) noexcept;
const char* optimizer_name(Optimizer optimizer) noexcept;
// The losses a family trains with, in documentation order.
std::vector<Loss> losses_of(Family family);

}  // namespace rtrec
