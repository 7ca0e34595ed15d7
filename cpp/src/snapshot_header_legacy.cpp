// The header of format versions 4 to 6, read only: their model parameters sit at fixed
// places between the counters. Version 7 names each parameter (snapshot_header.cpp), so a new
// parameter no longer changes the layout.
#include <cmath>

#include "snapshot_format.hpp"

namespace rtrec {
namespace snapshot_detail {

SnapshotHeader read_header_v4_to_v6(Reader& r, uint32_t version, uint32_t expected_kind, bool delta) {
  SnapshotHeader h;
  h.version = version;
  h.kind = r.value<uint32_t>();
  ModelConfig& c = h.config;
  c.dim = r.value<uint32_t>();
  const uint32_t loss = r.value<uint32_t>();
  const uint32_t optimizer = r.value<uint32_t>();
  c.negatives = r.value<uint32_t>();
  c.learning_rate = r.value<float>();
  c.l2 = r.value<float>();
  c.grad_clip = r.value<float>();
  c.init_std = r.value<float>();
  c.seed = r.value<uint64_t>();
  read_learning_counters(r, h.counters);
  h.position.lineage = r.value<uint64_t>();
  h.position.sequence = r.value<uint64_t>();
  h.follows = r.value<uint64_t>();
  h.position.link = r.value<uint64_t>();
  const uint32_t popularity = r.value<uint32_t>();
  c.min_count = r.value<uint32_t>();
  c.ttl = r.value<double>();
  c.max_rows = r.value<uint64_t>();
  h.counters.evicted_users = r.value<uint64_t>();
  h.counters.evicted_items = r.value<uint64_t>();
  h.counters.clock = r.value<double>();
  const uint32_t family = r.value<uint32_t>();
  c.history = r.value<uint32_t>();
  c.recency = r.value<float>();
  const uint32_t layers = r.value<uint32_t>();
  if (family > 1 || layers > kMaxTowerLayers) r.fail("corrupted file (bad model family)");
  c.family = static_cast<Family>(family);
  c.tower.resize(layers);
  r.bytes(c.tower.data(), layers * sizeof(uint32_t));
  read_source_position_and_pool(r, h);
  const uint32_t pool_size = static_cast<uint32_t>(h.pool.size());
  c.negative_sampling = popularity == 1 ? NegativeSampling::kPopularity : NegativeSampling::kUniform;
  uint32_t adaptive = 0;
  if (version >= 5) {
    c.dedup_window = r.value<double>();
    c.max_user_rate = r.value<double>();
    c.huber_delta = r.value<float>();
    adaptive = r.value<uint32_t>();
    h.counters.deduplicated = r.value<uint64_t>();
    h.counters.rate_limited = r.value<uint64_t>();
  }
  c.adaptive_step = adaptive == 1;
  // Version 6 keeps the retrieval mode; older files load as "exact" (what they were served by).
  const uint32_t retrieval = version >= 6 ? r.value<uint32_t>() : 0;
  if (retrieval > 1) r.fail("corrupted file (bad retrieval mode)");
  c.retrieval = static_cast<Retrieval>(retrieval);
  r.end_section("header");
  if (adaptive > 1 || !(c.dedup_window >= 0.0 && c.dedup_window <= kMaxDedupWindow) ||
      !(c.max_user_rate >= 0.0 && c.max_user_rate <= kMaxUserRate) || !(c.huber_delta > 0.0f) ||
      !std::isfinite(c.huber_delta))
    r.fail("corrupted file (bad header)");
  if (popularity > 1 || pool_size > Model::kPoolSize || c.min_count == 0 || !(c.ttl >= 0.0) || !std::isfinite(c.ttl) ||
      !std::isfinite(h.counters.clock))
    r.fail("corrupted file (bad header)");
  if (h.kind != (expected_kind == kAnyKind ? (delta ? kDelta : kFullSnapshot) : expected_kind) || c.dim == 0 || c.dim > kMaxDim ||
      loss > static_cast<uint32_t>(Loss::kHuber) || optimizer > 1)
    r.fail("corrupted file (bad header)");
  c.loss = static_cast<Loss>(loss);
  c.optimizer = static_cast<Optimizer>(optimizer);
  return h;
}

}  // namespace snapshot_detail
}  // namespace rtrec
