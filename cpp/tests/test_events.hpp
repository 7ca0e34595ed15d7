// Events with integer IDs (keys as given), labels and timestamps, for the C++ tests that train
// a whole model; batch() views them as the core's EventBatch (valid while the Events live).
#pragma once

#include <cstdint>
#include <vector>

#include "rtrec/model.hpp"

namespace rtrec_test {

struct Events {
  std::vector<uint64_t> users, items;
  std::vector<float> labels;
  std::vector<double> times;
  rtrec::EventBatch batch() const {
    rtrec::EventBatch b;
    b.users = rtrec::IdBatch{users.data(), nullptr, users.size()};
    b.items = rtrec::IdBatch{items.data(), nullptr, items.size()};
    b.labels = labels.data();
    b.timestamps = times.data();
    b.size = users.size();
    return b;
  }
};

}  // namespace rtrec_test
