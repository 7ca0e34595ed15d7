// The base a partitioned trainer takes its increments against (Model::reset_shared_base):
// the shared rows, and where each item and feature is among them. Internal to the core.
#pragma once

#include <string>
#include <unordered_map>

#include "rtrec/model.hpp"

namespace rtrec {

struct Model::SharedBase {
  SharedRows rows;
  std::unordered_map<uint64_t, size_t> item_at;
  std::unordered_map<std::string, size_t> feature_at;

  void index() {
    item_at.clear();
    feature_at.clear();
    for (size_t i = 0; i < rows.item_keys.size(); ++i) item_at.emplace(rows.item_keys[i], i);
    for (size_t i = 0; i < rows.feature_names.size(); ++i) feature_at.emplace(rows.feature_names[i], i);
  }
};

}  // namespace rtrec
