// Model: explanations — which of the user's items and which features make an item score
// as it does for the user (see Model::explain).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model_internal.hpp"
#include "rtrec/epoch.hpp"
#include "rtrec/model.hpp"

namespace rtrec {
using namespace model_detail;
namespace {

std::string id_text(const char* side, uint64_t key, const std::string* name) {
  return std::string(side) + " " + (name != nullptr ? "'" + *name + "'" : std::to_string(int64_t(key)));
}

float cosine(const float* a, const float* b, uint32_t stride) noexcept {
  const float norms = std::sqrt(dot(a, a, stride) * dot(b, b, stride));
  return norms > 0.0f && std::isfinite(norms) ? dot(a, b, stride) / norms : 0.0f;
}

}  // namespace

float Model::encoded_score(const std::vector<Part>& user_parts, const uint32_t* history, uint32_t n, const float* item,
                           std::vector<float>& query) const {
  thread_local std::vector<Part> pool_parts;
  thread_local std::vector<float> scratch;
  pool_parts.clear();
  history_parts(history, n, pool_parts);
  const EncoderInput in{Parts{user_parts.data(), uint32_t(user_parts.size())},
                        Parts{pool_parts.data(), uint32_t(pool_parts.size())}};
  encode(*tower_, in, users_.stride(), query.data(), scratch);
  return dot(query.data(), item, users_.stride());
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
  std::vector<float> item_vector(stride), query(stride), other(stride);
  effective(items_, item_features_, item, item_vector.data());
  user_query(user, query.data());
  std::vector<Reason> reasons;
  auto add_item = [&](uint32_t row, float weight) {
    reasons.push_back(Reason{false, items_.key(row), items_.kind() == IdKind::kString ? items_.name(row) : std::string(), weight});
  };
  const FeatureList* item_list = item_features_.lists.get(item);
  const FeatureList* user_list = user_features_.lists.get(user);

  if (!two_tower()) {
    // mf: everything is a cosine in the model's space. The user's consumed items by their
    // similarity to the item (as implicit's ALS explain lists the liked items behind a
    // score); the item's features by how well they match the user's vector; the user's
    // features by how well they match the item's.
    std::vector<uint32_t> consumed;
    seen_.collect(user, consumed);
    std::sort(consumed.begin(), consumed.end());
    consumed.erase(std::unique(consumed.begin(), consumed.end()), consumed.end());
    const uint32_t n_items = items_.size();
    for (uint32_t row : consumed) {
      if (row >= n_items || (items_.has_erased() && !items_.is_live(row))) continue;
      effective(items_, item_features_, row, other.data());
      add_item(row, cosine(other.data(), item_vector.data(), stride));
    }
    for (uint32_t k = 0; item_list != nullptr && k < item_list->size; ++k) {
      const uint32_t f = item_list->rows[k];
      reasons.push_back(Reason{true, 0, item_features_.table.name(f), cosine(item_features_.table.vector(f), query.data(), stride)});
    }
    for (uint32_t k = 0; user_list != nullptr && k < user_list->size; ++k) {
      const uint32_t f = user_list->rows[k];
      reasons.push_back(Reason{true, 0, user_features_.table.name(f), cosine(user_features_.table.vector(f), item_vector.data(), stride)});
    }
  } else {
    // two_tower: score contributions. Leave-one-out through the encoder for what the user
    // side is made of (each distinct history item, each user feature): the score minus the
    // score without it. An item feature adds its own term to the item vector, so its
    // contribution is that term's score, scale * (b_f + <c_u, v_f>).
    std::vector<uint32_t> recent(config_.history), without(config_.history);
    const uint32_t n_recent = recent_items(user, recent.data());
    std::vector<Part> user_parts;
    parts_of(users_, user_features_, user, user_parts);
    const float full = encoded_score(user_parts, recent.data(), n_recent, item_vector.data(), other);
    // History items are weighed with the user's ID row left out of the encoding: that row
    // learned from the same items (a user whose only event is A has an ID row that points
    // at A's neighbours), so with it in, removing A from the history would hide that A is
    // what the row learned from.
    std::vector<Part> history_only(user_parts);
    history_only[0].weight = 0.0f;
    const float from_history = encoded_score(history_only, recent.data(), n_recent, item_vector.data(), other);
    std::vector<uint32_t> distinct(recent.begin(), recent.begin() + n_recent);
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (uint32_t row : distinct) {
      uint32_t kept = 0;
      for (uint32_t k = 0; k < n_recent; ++k)
        if (recent[k] != row) without[kept++] = recent[k];
      add_item(row, from_history - encoded_score(history_only, without.data(), kept, item_vector.data(), other));
    }
    for (uint32_t k = 0; user_list != nullptr && k < user_list->size; ++k) {
      std::vector<Part> fewer(user_parts);
      fewer.erase(fewer.begin() + 1 + k);  // parts_of lists the ID row, then the features in order
      const float weight = full - encoded_score(fewer, recent.data(), n_recent, item_vector.data(), other);
      reasons.push_back(Reason{true, 0, user_features_.table.name(user_list->rows[k]), weight});
    }
    for (uint32_t k = 0; item_list != nullptr && k < item_list->size; ++k) {
      const uint32_t f = item_list->rows[k];
      const EmbeddingTable& t = item_features_.table;
      const float weight = item_list->scale * (t.bias(f) + dot(query.data(), t.vector(f), stride));
      reasons.push_back(Reason{true, 0, t.name(f), weight});
    }
  }
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
