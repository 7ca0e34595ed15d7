#include "rtrec/config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <stdexcept>

namespace rtrec {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

constexpr uint32_t kMfEpochs = 40;

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
  ModelConfig c;  // mf's defaults (model_params.def)
  c.family = family;
  if (family == Family::kTwoTower) {
#define RTREC_TWO_TOWER_DEFAULT(name, type, mf, two_tower, low, high, flags, doc) c.name = two_tower;
    RTREC_MODEL_PARAMS(RTREC_TWO_TOWER_DEFAULT)
#undef RTREC_TWO_TOWER_DEFAULT
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

namespace {

// A limit as the messages print it: 65536, 0.05, 1e+06.
std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", v);
  return text;
}

template <class T>
bool valid_choice(T v) {
  return static_cast<size_t>(v) < std::size(Choices<T>::names);
}

// The table's range check of one parameter (the rules between parameters are below).
struct RangeCheck {
  const ModelConfig& config;

  void operator()(const ParamInfo& p, uint32_t v) const {
    if (applies(p)) whole(p, v);
  }
  void operator()(const ParamInfo& p, uint64_t v) const {
    if (applies(p)) whole(p, v);
  }
  void operator()(const ParamInfo& p, float v) const {
    if (applies(p)) real(p, v);
  }
  void operator()(const ParamInfo& p, double v) const {
    if (applies(p)) real(p, v);
  }
  void operator()(const ParamInfo&, bool) const {}
  void operator()(const ParamInfo& p, const Widths& widths) const {
    if (!applies(p)) return;
    for (uint32_t w : widths)
      if (w < p.low || w > p.high)
        bad(std::string(p.name) + " widths must be between " + number_text(p.low) + " and " + number_text(p.high) +
            ", got " + std::to_string(w));
  }
  template <class Choice>
  void operator()(const ParamInfo& p, Choice v) const {
    if (!valid_choice(v)) bad(std::string(p.name) + " has no value " + std::to_string(static_cast<int>(v)));
  }

  // A two_tower-only parameter of an mf model is FamilyCheck's to judge.
  bool applies(const ParamInfo& p) const { return param_applies(p, config); }

  template <class T>
  void whole(const ParamInfo& p, T v) const {
    if ((p.flags & kSampledLossesOnly) != 0 && !samples_negatives(config.loss)) return;
    if ((p.flags & kZeroIsOff) != 0 && v == 0) return;
    if (double(v) < p.low || double(v) > p.high)
      bad(std::string(p.name) + " must be between " + number_text(p.low) + " and " + number_text(p.high) +
          sampled_loss_note(p) + ", got " + std::to_string(v));
  }
  void real(const ParamInfo& p, double v) const {
    const bool low_open = (p.flags & kLowOpen) != 0;
    const bool ok = std::isfinite(v) && (low_open ? v > p.low : v >= p.low) && v <= p.high;
    if (ok) return;
    const std::string low = std::string(low_open ? "> " : ">= ") + number_text(p.low);
    bad(std::string(p.name) + " must be a finite number " + low +
        (std::isinf(p.high) ? "" : " and <= " + number_text(p.high)) + ", got " + number_text(v));
  }
  std::string sampled_loss_note(const ParamInfo& p) const {
    if ((p.flags & kSampledLossesOnly) == 0) return "";
    return std::string(" for the ") + loss_name(config.loss) + " loss" +
           (config.loss == Loss::kWarp ? " (the most items sampled per positive)" : "");
  }
};

// A two_tower-only parameter given to mf (it must keep mf's default, which is "none").
struct FamilyCheck {
  const ModelConfig& config;
  template <class T>
  void operator()(const ParamInfo& p, const T& value, const T& mf_default) const {
    if (!param_applies(p, config) && !(value == mf_default))
      bad(std::string(p.name) + " applies to model='two_tower' only");
  }
};

}  // namespace

bool param_applies(const ParamInfo& p, const ModelConfig& c) noexcept {
  return (p.flags & kTwoTowerOnly) == 0 || c.family == Family::kTwoTower;
}

void validate_config(const ModelConfig& c) {
  const bool two_tower = c.family == Family::kTwoTower;
  if (!valid_choice(c.family)) bad("model must be 'mf' or 'two_tower'");
  const std::vector<Loss> losses = losses_of(c.family);
  if (std::find(losses.begin(), losses.end(), c.loss) == losses.end()) {
    std::vector<std::string> names;
    for (Loss l : losses) names.push_back(loss_name(l));
    bad(std::string("loss '") + (valid_choice(c.loss) ? loss_name(c.loss) : "?") + "' is not available for model '" +
        family_name(c.family) + "': use " + quoted_list(names));
  }
  ModelConfig checked = c;  // for_each_param visits mutable fields; the checks only read
  for_each_param(RangeCheck{c}, checked);
  const ModelConfig mf_defaults;
  for_each_param(FamilyCheck{c}, checked, mf_defaults);
  // The rules between parameters.
  if (c.huber_delta != 1.0f && c.loss != Loss::kHuber) bad("huber_delta applies to loss='huber' only");
  if (c.adaptive_step && (two_tower || c.loss == Loss::kBpr))
    bad("adaptive_step applies to model='mf' with a pointwise loss ('squared', 'huber' or 'logistic') only");
  if (two_tower && (c.tower.empty() || c.tower.size() > kMaxTowerLayers))
    bad("tower must list 1 to " + std::to_string(kMaxTowerLayers) + " hidden layer widths, got " +
        std::to_string(c.tower.size()));
}

namespace {

struct SameValue {
  bool& same;
  template <class T>
  void operator()(const ParamInfo&, const T& a, const T& b) const {
    same = same && a == b;
  }
};

// Names -> values, or invalid_argument listing the accepted names.
template <class T>
T parse_choice(const std::string& name, const char* what) {
  const auto& names = Choices<T>::names;
  for (size_t i = 0; i < std::size(names); ++i)
    if (name == names[i]) return static_cast<T>(i);
  std::vector<std::string> accepted(std::begin(names), std::end(names));
  bad(std::string(what) + " must be " + quoted_list(accepted) + ", got '" + name + "'");
}

}  // namespace

bool same_config(const ModelConfig& a, const ModelConfig& b) {
  bool same = a.family == b.family;
  ModelConfig x = a, y = b;
  for_each_param(SameValue{same}, x, y);
  return same;
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

Family parse_family(const std::string& name) { return parse_choice<Family>(name, "model"); }
Loss parse_loss(const std::string& name) { return parse_choice<Loss>(name, "loss"); }
Optimizer parse_optimizer(const std::string& name) { return parse_choice<Optimizer>(name, "optimizer"); }
NegativeSampling parse_negative_sampling(const std::string& name) {
  return parse_choice<NegativeSampling>(name, "negative_sampling");
}
Retrieval parse_retrieval(const std::string& name) { return parse_choice<Retrieval>(name, "retrieval"); }

const char* family_name(Family family) noexcept { return Choices<Family>::names[static_cast<int>(family)]; }
const char* loss_name(Loss loss) noexcept { return Choices<Loss>::names[static_cast<int>(loss)]; }
const char* optimizer_name(Optimizer optimizer) noexcept { return Choices<Optimizer>::names[static_cast<int>(optimizer)]; }
const char* retrieval_name(Retrieval retrieval) noexcept { return Choices<Retrieval>::names[static_cast<int>(retrieval)]; }

}  // namespace rtrec
