// What a model is: its family, loss, optimizer and hyperparameters (the table in
// model_params.def), with their defaults, limits and checks. This file is the one owner of
// those facts: the binding exports them (parameters(), defaults(), limits, consumed()) and the
// Python layer reads them from there.
#pragma once

#include <cstdint>
#include <limits>
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
constexpr uint32_t kMaxPartitions = 4096;            // trainers a model's users may be split over

// A parameter that is a list of widths (two_tower's hidden layers).
using Widths = std::vector<uint32_t>;
enum class NegativeSampling : int { kUniform = 0, kPopularity = 1 };
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

// How the parameter table (model_params.def) qualifies a parameter's range.
enum ParamFlag : uint32_t {
  kLowOpen = 1,             // the low end itself is refused (> low, not >= low)
  kZeroIsOff = 2,           // 0 switches the feature off (None in Python)
  kTwoTowerOnly = 4,        // applies to two_tower; for mf it is None and stays the mf default
  kSampledLossesOnly = 8,   // the range applies only to losses that sample negatives
};

// The names of an enum parameter's values, in value order: its Python and snapshot spelling.
template <class T>
struct Choices;
template <>
struct Choices<Family> {
  static constexpr const char* names[] = {"mf", "two_tower"};
};
template <>
struct Choices<Loss> {
  static constexpr const char* names[] = {"squared", "logistic", "bpr", "softmax", "warp", "huber"};
};
template <>
struct Choices<Optimizer> {
  static constexpr const char* names[] = {"sgd", "adagrad"};
};
template <>
struct Choices<NegativeSampling> {
  static constexpr const char* names[] = {"uniform", "popularity"};
};
template <>
struct Choices<Retrieval> {
  static constexpr const char* names[] = {"exact", "compact"};
};

}  // namespace rtrec

#include "rtrec/model_params.def"

namespace rtrec {

// One parameter's row of the table, without its values.
struct ParamInfo {
  const char* name;
  double low;
  double high;
  uint32_t flags;  // ParamFlag bits
  const char* doc;
};

// A model's family and parameters. Every member starts at mf's default, so ModelConfig{}
// is default_config(Family::kMf) (tests/test_params.py and cpp/tests check it stays so).
struct ModelConfig {
  Family family = Family::kMf;
#define RTREC_PARAM_FIELD(name, type, mf, two_tower, low, high, flags, doc) type name = mf;
  RTREC_MODEL_PARAMS(RTREC_PARAM_FIELD)
#undef RTREC_PARAM_FIELD

  bool popularity_negatives() const noexcept { return negative_sampling == NegativeSampling::kPopularity; }
};

// Calls f(info, configs.field...) for every parameter in table order (the snapshot's order),
// with the same field of each config given: for_each_param(f, a) reads or writes one config,
// for_each_param(f, a, b) walks two side by side.
template <class F, class... Config>
void for_each_param(F&& f, Config&... configs) {
#define RTREC_PARAM_VISIT(name, type, mf, two_tower, low, high, flags, doc) \
  f(ParamInfo{#name, double(low), double(high), uint32_t(flags), doc}, configs.name...);
  RTREC_MODEL_PARAMS(RTREC_PARAM_VISIT)
#undef RTREC_PARAM_VISIT
}

// Whether a parameter applies to the config's family (a kTwoTowerOnly one does not to mf).
bool param_applies(const ParamInfo& p, const ModelConfig& c) noexcept;

// Whether two configs are the same family with the same value of every parameter.
bool same_config(const ModelConfig& a, const ModelConfig& b);

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
NegativeSampling parse_negative_sampling(const std::string& name);
Retrieval parse_retrieval(const std::string& name);
const char* retrieval_name(Retrieval retrieval) noexcept;
const char* family_name(Family family) noexcept;
const char* loss_name(Loss loss) noexcept;
const char* optimizer_name(Optimizer optimizer) noexcept;
// The losses a family trains with, in documentation order.
std::vector<Loss> losses_of(Family family);

}  // namespace rtrec
