#include "rtrec/config.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rtrec {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

constexpr uint32_t kMfEpochs = 40;

bool finite_at_least(float v, float low, bool inclusive) {
  return std::isfinite(v) && (inclusive ? v >= low : v > low);
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += "'" + names[i] + "'";
  }
  return out;
}

}  // namespace

ModelConfig default_config(Family family) {
  ModelConfig c;
  c.family = family;
  if (family == Family::kMf) {
    // Chosen by benchmarks/sweep_mf.py (MovieLens and the synthetic stream, tuned on
    // validation splits; see benchmarks/README.md): BPR with row-wise AdaGrad, one uniform
    // negative, a small start (init_std 0.1 -> 0.05) and a stronger L2 (1e-4 -> 1e-2).
    c.loss = Loss::kBpr;
    c.optimizer = Optimizer::kAdagrad;
    c.learning_rate = 0.05f;
    c.l2 = 1e-2f;
    c.init_std = 0.05f;
    c.negatives = 1;
  }
  if (family == Family::kTwoTower) {
    // Chosen by the MovieLens and synthetic-stream sweeps in benchmarks/ (see README).
    c.loss = Loss::kSoftmax;
    c.learning_rate = 0.1f;
    c.l2 = 1e-3f;
    c.negatives = 64;
    c.tower = {128};
    c.history = 50;
    c.recency = 0.9f;
  }
  return c;
}

uint32_t default_epochs(Family family) noexcept {
  // mf: chosen with its other defaults by benchmarks/sweep_mf.py; two_tower: as before.
  return family == Family::kMf ? kMfEpochs : 10;
}

std::vector<Loss> losses_of(Family family) {
  if (family == Family::kTwoTower) return {Loss::kSoftmax, Loss::kBpr, Loss::kLogistic, Loss::kSquared};
  // two_tower does not take warp: its block step scores every candidate with the weights as
  // they are when the block starts, so there is no sequential "sample until a violation".
  return {Loss::kSquared, Loss::kLogistic, Loss::kBpr, Loss::kWarp, Loss::kHuber};
}

void validate_config(const ModelConfig& c) {
  const bool two_tower = c.family == Family::kTwoTower;
  if (c.family != Family::kMf && !two_tower) bad("model must be 'mf' or 'two_tower'");
  if (c.dim == 0 || c.dim > kMaxDim) bad("dim must be between 1 and " + std::to_string(kMaxDim) + ", got " + std::to_string(c.dim));
  const std::vector<Loss> losses = losses_of(c.family);
  if (std::find(losses.begin(), losses.end(), c.loss) == losses.end()) {
    std::vector<std::string> names;
    for (Loss l : losses) names.push_back(loss_name(l));
    bad(std::string("loss '") + loss_name(c.loss) + "' is not available for model '" + family_name(c.family) +
        "': use " + quoted_list(names));
  }
  if (!finite_at_least(c.learning_rate, 0.0f, false)) bad("learning_rate must be a finite number > 0");
  if (!finite_at_least(c.l2, 0.0f, true)) bad("l2 must be a finite number >= 0");
  if (!finite_at_least(c.grad_clip, 0.0f, false)) bad("grad_clip must be a finite number > 0");
  if (!finite_at_least(c.init_std, 0.0f, true)) bad("init_std must be a finite number >= 0");
  if (samples_negatives(c.loss) && (c.negatives == 0 || c.negatives > kMaxNegatives))
    bad("negatives must be between 1 and " + std::to_string(kMaxNegatives) + " for the " + loss_name(c.loss) +
        " loss" + (c.loss == Loss::kWarp ? " (the most items sampled per positive)" : "") + ", got " +
        std::to_string(c.negatives));
  if (c.min_count == 0 || c.min_count > kMaxMinCount)
    bad("min_count must be between 1 and " + std::to_string(kMaxMinCount) + ", got " + std::to_string(c.min_count));
  if (!(c.ttl >= 0.0) || !std::isfinite(c.ttl)) bad("ttl must be a finite number of seconds >= 0");
  if (c.max_rows > kMaxRows) bad("max_rows must be at most " + std::to_string(kMaxRows));
  if (!(c.dedup_window >= 0.0 && c.dedup_window <= kMaxDedupWindow))
    bad("dedup_window must be a number of seconds between 0 and " + std::to_string(int64_t(kMaxDedupWindow)));
  if (!(c.max_user_rate >= 0.0 && c.max_user_rate <= kMaxUserRate))
    bad("max_user_rate must be a number of events per second between 0 and " + std::to_string(int64_t(kMaxUserRate)));
  if (!finite_at_least(c.huber_delta, 0.0f, false)) bad("huber_delta must be a finite number > 0");
  if (c.retrieval != Retrieval::kExact && c.retrieval != Retrieval::kCompact) bad("retrieval must be 'exact' or 'compact'");
  if (c.huber_delta != 1.0f && c.loss != Loss::kHuber) bad("huber_delta applies to loss='huber' only");
  if (c.adaptive_step && (two_tower || c.loss == Loss::kBpr))
    bad("adaptive_step applies to model='mf' with a pointwise loss ('squared', 'huber' or 'logistic') only");
  if (!two_tower) {
    if (!c.tower.empty()) bad("tower applies to model='two_tower' only");
    if (c.history != 0) bad("history applies to model='two_tower' only");
    return;
  }
  if (c.tower.empty() || c.tower.size() > kMaxTowerLayers)
    bad("tower must list 1 to " + std::to_string(kMaxTowerLayers) + " hidden layer widths, got " +
        std::to_string(c.tower.size()));
  for (uint32_t width : c.tower)
    if (width == 0 || width > kMaxTowerWidth)
      bad("tower widths must be between 1 and " + std::to_string(kMaxTowerWidth) + ", got " + std::to_string(width));
  if (c.history == 0 || c.history > kMaxHistory)
    bad("history must be between 1 and " + std::to_string(kMaxHistory) + ", got " + std::to_string(c.history));
  if (!(c.recency > 0.0f && c.recency <= 1.0f)) bad("recency must be in (0, 1]");
}

bool consumed(Loss loss, float label, float weight) noexcept {
  if (!(weight > 0.0f)) return false;  // a weight-0 event is recorded, not consumed
  switch (loss) {
    case Loss::kSquared:
    case Loss::kHuber: return true;  // any rated item has been consumed
    case Loss::kLogistic: return label >= 0.5f;
    case Loss::kBpr:
    case Loss::kSoftmax:
    case Loss::kWarp: return label > 0.0f;
  }
  return false;
}

bool samples_negatives(Loss loss) noexcept {
  return loss == Loss::kBpr || loss == Loss::kSoftmax || loss == Loss::kWarp;
}

Family parse_family(const std::string& name) {
  if (name == "mf") return Family::kMf;
  if (name == "two_tower") return Family::kTwoTower;
  bad("model must be 'mf' or 'two_tower', got '" + name + "'");
}

Loss parse_loss(const std::string& name) {
  for (Loss l : {Loss::kSquared, Loss::kLogistic, Loss::kBpr, Loss::kSoftmax, Loss::kWarp, Loss::kHuber})
    if (name == loss_name(l)) return l;
  bad("loss must be 'squared', 'logistic', 'bpr', 'softmax', 'warp' or 'huber', got '" + name + "'");
}

Optimizer parse_optimizer(const std::string& name) {
  if (name == "sgd") return Optimizer::kSgd;
  if (name == "adagrad") return Optimizer::kAdagrad;
  bad("optimizer must be 'sgd' or 'adagrad', got '" + name + "'");
}

bool parse_negative_sampling(const std::string& name) {
  if (name == "uniform") return false;
  if (name == "popularity") return true;
  bad("negative_sampling must be 'uniform' or 'popularity', got '" + name + "'");
}

Retrieval parse_retrieval(const std::string& name) {
  if (name == "exact") return Retrieval::kExact;
  if (name == "compact") return Retrieval::kCompact;
  bad("retrieval must be 'exact' or 'compact', got '" + name + "'");
}

const char* retrieval_name(Retrieval retrieval) noexcept {
  return retrieval == Retrieval::kCompact ? "compact" : "exact";
}

const char* family_name(Family family) noexcept { return family == Family::kTwoTower ? "two_tower" : "mf"; }

const char* loss_name(Loss loss) noexcept {
  switch (loss) {
    case Loss::kSquared: return "squared";
    case Loss::kLogistic: return "logistic";
    case Loss::kBpr: return "bpr";
    case Loss::kSoftmax: return "softmax";
    case Loss::kWarp: return "warp";
    case Loss::kHuber: return "huber";
  }
  return "?";
}

const char* optimizer_name(Optimizer optimizer) noexcept { return optimizer == Optimizer::kSgd ? "sgd" : "adagrad"; }

}  // namespace rtrec
