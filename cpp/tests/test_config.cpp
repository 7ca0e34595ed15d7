// The parameter table (model_params.def): ModelConfig{} is mf's defaults, the families'
// defaults pass validation, the checks the table drives refuse what they should, and a
// config survives a snapshot's header by name.
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "rtrec/config.hpp"

using rtrec::Family;
using rtrec::ModelConfig;

namespace {

// The message validate_config gives, or "" when the config is valid.
std::string refusal(const ModelConfig& c) {
  try {
    rtrec::validate_config(c);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE(a_default_config_is_mf_defaults) {
  // Fails when a member initializer and mf's default drift apart (both come from the table,
  // so only an edit outside it can make them differ).
  CHECK(rtrec::same_config(ModelConfig{}, rtrec::default_config(Family::kMf)));
  CHECK(!rtrec::same_config(ModelConfig{}, rtrec::default_config(Family::kTwoTower)));
  CHECK_EQ(ModelConfig{}.l2, rtrec::default_config(Family::kMf).l2);
  CHECK_EQ(ModelConfig{}.init_std, rtrec::default_config(Family::kMf).init_std);
}

TEST_CASE(both_families_defaults_are_valid) {
  CHECK_EQ(refusal(rtrec::default_config(Family::kMf)), std::string());
  CHECK_EQ(refusal(rtrec::default_config(Family::kTwoTower)), std::string());
  const ModelConfig two_tower = rtrec::default_config(Family::kTwoTower);
  CHECK_EQ(two_tower.tower.size(), size_t(1));
  CHECK_EQ(two_tower.history, 50u);
}

TEST_CASE(the_table_ranges_are_enforced) {
  ModelConfig c;
  c.dim = 0;
  CHECK(mentions(refusal(c), "dim must be between 1 and 65536, got 0"));
  c = ModelConfig{};
  c.learning_rate = 0.0f;
  CHECK(mentions(refusal(c), "learning_rate must be a finite number > 0"));
  c = ModelConfig{};
  c.dedup_window = -1.0;
  CHECK(mentions(refusal(c), "dedup_window"));
  c = ModelConfig{};
  c.max_rows = 0;  // 0 is "no cap"
  CHECK_EQ(refusal(c), std::string());
  c.negatives = 0;  // checked only for losses that sample negatives
  CHECK(mentions(refusal(c), "negatives must be between 1 and 4096 for the bpr loss"));
  c.loss = rtrec::Loss::kSquared;
  CHECK_EQ(refusal(c), std::string());
  ModelConfig t = rtrec::default_config(Family::kTwoTower);
  t.recency = 1.5f;
  CHECK(mentions(refusal(t), "recency must be a finite number > 0 and <= 1"));
  t = rtrec::default_config(Family::kTwoTower);
  t.tower = {0};
  CHECK(mentions(refusal(t), "tower widths must be between 1 and 8192"));
}

TEST_CASE(two_tower_parameters_are_refused_for_mf) {
  ModelConfig c;
  c.history = 5;
  CHECK(mentions(refusal(c), "history applies to model='two_tower' only"));
  c = ModelConfig{};
  c.tower = {8};
  CHECK(mentions(refusal(c), "tower applies to model='two_tower' only"));
}
