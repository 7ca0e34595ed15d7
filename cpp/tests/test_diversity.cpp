// mmr_select: maximal marginal relevance on hand-made pools (the rule of diversity.hpp).
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "rtrec/diversity.hpp"

namespace {

constexpr uint32_t kStride = 16;  // the kernels read whole 16-float blocks

// Rows of kStride floats, the first two coordinates given, the rest zero.
std::vector<float> rows(const std::vector<std::pair<float, float>>& xy) {
  std::vector<float> out(xy.size() * kStride, 0.0f);
  for (size_t j = 0; j < xy.size(); ++j) {
    out[j * kStride] = xy[j].first;
    out[j * kStride + 1] = xy[j].second;
  }
  return out;
}

std::vector<uint32_t> picks(const std::vector<float>& relevance, const std::vector<float>& vectors, uint32_t k,
                            float lambda) {
  std::vector<uint32_t> order(k);
  std::vector<float> scratch;
  rtrec::mmr_select(relevance.data(), vectors.data(), static_cast<uint32_t>(relevance.size()), kStride, k, lambda,
                    order.data(), scratch);
  return order;
}

}  // namespace

TEST_CASE(lambda_zero_is_the_order_of_relevance) {
  const auto v = rows({{1, 0}, {1, 0.1f}, {0, 1}, {-1, 0}});
  const auto order = picks({0.5f, 3.0f, 1.0f, 2.0f}, v, 4, 0.0f);
  CHECK(order == (std::vector<uint32_t>{1, 3, 2, 0}));
}

TEST_CASE(a_near_duplicate_gives_way_to_a_different_item) {
  // 0 and 1 point the same way; 2 is orthogonal and a little less relevant.
  const auto v = rows({{1, 0}, {1, 0.01f}, {0, 1}});
  const std::vector<float> relevance{1.0f, 0.95f, 0.9f};
  CHECK(picks(relevance, v, 2, 0.0f) == (std::vector<uint32_t>{0, 1}));
  CHECK(picks(relevance, v, 2, 0.5f) == (std::vector<uint32_t>{0, 2}));
}

TEST_CASE(the_first_pick_is_the_most_relevant_whatever_lambda) {
  const auto v = rows({{1, 0}, {0, 1}, {-1, 0}, {0, -1}});
  for (float lambda : {0.0f, 0.3f, 1.0f}) {
    const std::vector<uint32_t> order = picks({0.1f, 0.2f, 0.9f, 0.3f}, v, 1, lambda);
    CHECK_EQ(order[0], 2u);
  }
}

TEST_CASE(k_beyond_the_pool_picks_everything_once) {
  const auto v = rows({{1, 0}, {0, 1}, {0, 0}});  // a zero vector is similar to nothing
  std::vector<uint32_t> order(3);
  std::vector<float> scratch;
  const std::vector<float> relevance{1.0f, 1.0f, 1.0f};  // equal: ties go to the lower index
  rtrec::mmr_select(relevance.data(), v.data(), 3, kStride, 10, 0.5f, order.data(), scratch);
  CHECK(order == (std::vector<uint32_t>{0, 1, 2}));
}

TEST_CASE(pool_size_and_range_check) {
  CHECK_EQ(rtrec::diversity_pool(1), 50u);
  CHECK_EQ(rtrec::diversity_pool(10), 50u);
  CHECK_EQ(rtrec::diversity_pool(11), 55u);
  CHECK_EQ(rtrec::diversity_pool(std::numeric_limits<uint32_t>::max()), std::numeric_limits<uint32_t>::max());
  for (double bad : {-0.1, 1.0000001, std::nan(""), std::numeric_limits<double>::infinity()}) {
    bool threw = false;
    try {
      rtrec::check_diversity(bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }
  rtrec::check_diversity(0.0);
  rtrec::check_diversity(1.0);
}
