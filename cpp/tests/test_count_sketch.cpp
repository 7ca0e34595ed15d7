// CountMinSketch: estimates never undercount; conservative update raises only the counters
// that hold the minimum; counters saturate instead of wrapping.
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "check.hpp"
#include "rtrec/count_sketch.hpp"

using rtrec::CountMinSketch;

namespace {

// The cells of `key`, found by counting it once in an empty sketch (one per row).
std::vector<size_t> cells_of(uint64_t key) {
  CountMinSketch probe;
  probe.add(key);
  std::vector<size_t> cells;
  for (size_t i = 0; i < CountMinSketch::cells(); ++i)
    if (probe.get(i) != 0) cells.push_back(i);
  return cells;
}

}  // namespace

TEST_CASE(a_lone_key_is_counted_exactly) {
  CountMinSketch sketch;
  CHECK_EQ(sketch.estimate(42), 0u);
  for (uint32_t n = 1; n <= 100; ++n) CHECK_EQ(sketch.add(42), n);
  CHECK_EQ(sketch.estimate(42), 100u);
  CHECK_EQ(sketch.estimate(43), 0u);
}

TEST_CASE(estimates_never_undercount) {
  // A long-tailed stream, heavy enough that keys share cells: every estimate must still be
  // at least the true count, at every point of the stream.
  CountMinSketch sketch;
  std::mt19937_64 rng(7);
  std::unordered_map<uint64_t, uint32_t> truth;
  bool ok = true;
  for (int i = 0; i < 600000; ++i) {
    const uint64_t key = (rng() % 3 == 0) ? rng() % 50 : rng() % 2000000;  // a few hot keys, a long tail
    const uint32_t count = ++truth[key];
    const uint32_t estimate = sketch.add(key);
    ok = ok && estimate >= count;
  }
  CHECK(ok);
  for (const auto& kv : truth) ok = ok && sketch.estimate(kv.first) >= kv.second;
  CHECK(ok);
}

TEST_CASE(conservative_update_raises_only_the_minimum_counters) {
  const uint64_t key = 0x1234567;
  const std::vector<size_t> cells = cells_of(key);
  REQUIRE(cells.size() == CountMinSketch::kDepth);
  CountMinSketch sketch;
  // Another key's counts collide with one of this key's cells.
  sketch.set(cells[0], 5);
  CHECK_EQ(sketch.estimate(key), 0u);
  CHECK_EQ(sketch.add(key), 1u);
  CHECK_EQ(sketch.get(cells[0]), 5);  // a plain count-min would have made it 6
  for (size_t d = 1; d < cells.size(); ++d) CHECK_EQ(sketch.get(cells[d]), 1);
  for (int i = 0; i < 4; ++i) sketch.add(key);  // now 5 everywhere: all raised together
  CHECK_EQ(sketch.estimate(key), 5u);
  CHECK_EQ(sketch.add(key), 6u);
  for (size_t d = 0; d < cells.size(); ++d) CHECK_EQ(sketch.get(cells[d]), 6);
}

TEST_CASE(counters_saturate_at_the_16_bit_maximum) {
  const uint64_t key = 99;
  const std::vector<size_t> cells = cells_of(key);
  REQUIRE(cells.size() == CountMinSketch::kDepth);
  CountMinSketch sketch;
  for (size_t c : cells) sketch.set(c, UINT16_MAX - 1);
  CHECK_EQ(sketch.add(key), uint32_t(UINT16_MAX));
  CHECK_EQ(sketch.add(key), uint32_t(UINT16_MAX));  // stays, never wraps to 0
  CHECK_EQ(sketch.estimate(key), uint32_t(UINT16_MAX));
}
