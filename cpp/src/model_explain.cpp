// Model: explanations — which of the user's items and which features make an item score
// as it does for the user (see Model::explain).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model_family.hpp"
#include "model_internal.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/model.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

std::string id_text(const char* side, uint64_t key, const std::string* name) {
  return std::string(side) + " " + (name != nullptr ? "'" + *name + "'" : std::to_string(int64_t(key)));
}

}  // namespace

Model::Reason Model::item_reason(uint32_t row, float weight) const {
  return Reason{false, items_.key(row), items_.kind() == IdKind::kString ? items_.name(row) : std::string(), weight};
}

std::vector<Model::Reason> Model::explain(uint64_t user_key, const std::string* user_name, uint64_t item_key,
                                          const std::string* item_name, uint32_t n) const {
  if (n == 0) throw std::invalid_argument("n must be >= 1");
  users_.check_kind(user_name, 1);
  items_.check_kind(item_name, 1);
  EpochGuard pin;  // the rows read stay these IDs until their names are copied
  const uint32_t user = lookup(users_, user_key, user_name);
  if (user == kNoRow) throw std::out_of_range(id_text("user", user_key, user_name) + " is not in the model");
  const uint32_t item = lookup(items_, item_key, item_name);
  if (item == kNoRow) throw std::out_of_range(id_text("item", item_key, item_name) + " is not in the model");

  const uint32_t stride = items_.stride();
  std::vector<float> item_vector(stride), query(stride);
  effective(items_, item_features_, item, item_vector.data());
  user_query(user, query.data());
  std::vector<Reason> reasons;
  family_->explain(user, item, item_vector.data(), query.data(), reasons);
  // Strongest first; ties: items before features, then by key / name, so the order is stable.
  std::sort(reasons.begin(), reasons.end(), [](const Reason& a, const Reason& b) {
    if (a.weight != b.weight) return a.weight > b.weight;
    if (a.feature != b.feature) return !a.feature;
    return a.feature ? a.name < b.name : a.key < b.key;
  });
  if (reasons.size() > n) reasons.resize(n);
  return reasons;
}

}  // namespace rtrec
