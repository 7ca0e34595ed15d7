// The header of snapshot and delta files: magic, version, kind, config, counters, lineage
// position, popularity pool (layout in snapshot.hpp).
#include <algorithm>
#include <cmath>

#include "snapshot_format.hpp"

namespace rtrec {
namespace snapshot_detail {

SnapshotHeader header_of(const Model::StateAccess& state, uint32_t kind, const LineagePosition& position) {
  SnapshotHeader h;
  h.kind = kind;
  h.config = state.model().config();
  h.counters = state.counters();
  h.position = position;
  return h;
}

void fill_pool(const Model::StateAccess& state, SnapshotHeader& h, const std::vector<uint32_t>& position) {
  h.pool_written = state.pool_written();
  const uint64_t n = std::min<uint64_t>(h.pool_written, Model::kPoolSize);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t row = state.pool_item(i);
    if (row < position.size() && position[row] != EmbeddingTable::kNotFound) h.pool.push_back(position[row]);
  }
  if (h.pool.size() < n) h.pool_written = h.pool.size();  // evicted items dropped: the ring restarts
}

void write_header(Writer& w, const SnapshotHeader& h) {
  w.bytes(h.kind == kDelta ? kDeltaMagic : kMagic, sizeof kMagic);
  w.value<uint32_t>(kVersion);
  w.value<uint32_t>(h.kind);
  const ModelConfig& c = h.config;
  w.value<uint32_t>(c.dim);
  w.value<uint32_t>(static_cast<uint32_t>(c.loss));
  w.value<uint32_t>(static_cast<uint32_t>(c.optimizer));
  w.value<uint32_t>(c.negatives);
  w.value<float>(c.learning_rate);
  w.value<float>(c.l2);
  w.value<float>(c.grad_clip);
  w.value<float>(c.init_std);
  w.value<uint64_t>(c.seed);
  w.value<double>(h.counters.label_sum);
  w.value<double>(h.counters.weight_sum);
  w.value<float>(h.counters.global_bias);
  w.value<uint64_t>(h.counters.updates);
  w.value<uint64_t>(h.counters.skipped);
  w.value<uint64_t>(h.counters.calls);
  w.value<uint64_t>(h.counters.update_events);
  w.value<uint64_t>(h.position.lineage);
  w.value<uint64_t>(h.position.sequence);
  w.value<uint64_t>(h.follows);
  w.value<uint64_t>(h.position.link);
  w.value<uint32_t>(c.popularity_negatives ? 1 : 0);
  w.value<uint32_t>(c.min_count);
  w.value<double>(c.ttl);
  w.value<uint64_t>(c.max_rows);
  w.value<uint64_t>(h.counters.evicted_users);
  w.value<uint64_t>(h.counters.evicted_items);
  w.value<double>(h.counters.clock);
  w.value<uint32_t>(static_cast<uint32_t>(c.family));
  w.value<uint32_t>(c.history);
  w.value<float>(c.recency);
  w.value<uint32_t>(static_cast<uint32_t>(c.tower.size()));
  w.bytes(c.tower.data(), c.tower.size() * sizeof(uint32_t));
  w.value<uint32_t>(static_cast<uint32_t>(h.counters.source_position.size()));
  w.bytes(h.counters.source_position.data(), h.counters.source_position.size());
  w.value<uint64_t>(h.pool_written);
  w.value<uint32_t>(static_cast<uint32_t>(h.pool.size()));
  w.bytes(h.pool.data(), h.pool.size() * sizeof(uint32_t));
  w.value<double>(c.dedup_window);
  w.value<double>(c.max_user_rate);
  w.value<float>(c.huber_delta);
  w.value<uint32_t>(c.adaptive_step ? 1 : 0);
  w.value<uint64_t>(h.counters.deduplicated);
  w.value<uint64_t>(h.counters.rate_limited);
  w.value<uint32_t>(static_cast<uint32_t>(c.retrieval));  // version 6
  w.end_section("header");
}

SnapshotHeader read_header(Reader& r, uint32_t expected_kind) {
  char magic[8];
  r.bytes(magic, sizeof magic);
  const bool full = std::memcmp(magic, kMagic, sizeof magic) == 0;
  const bool delta = std::memcmp(magic, kDeltaMagic, sizeof magic) == 0;
  if (!full && !delta) r.fail("not an rtrec_native snapshot (bad magic)");
  if (expected_kind == kFullSnapshot && !full) r.fail("this is a delta, not a full snapshot (use apply_delta)");
  if (expected_kind == kDelta && !delta) r.fail("this is a full snapshot, not a delta (use load)");
  const uint32_t version = r.value<uint32_t>();
  if (version < kOldestVersion || version > kVersion)
    r.fail("snapshot format version " + std::to_string(version) + " is not supported (this build reads versions " +
           std::to_string(kOldestVersion) + " to " + std::to_string(kVersion) + ")");
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
  h.counters.label_sum = r.value<double>();
  h.counters.weight_sum = r.value<double>();
  h.counters.global_bias = r.value<float>();
  h.counters.updates = r.value<uint64_t>();
  h.counters.skipped = r.value<uint64_t>();
  h.counters.calls = r.value<uint64_t>();
  h.counters.update_events = r.value<uint64_t>();
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
  const uint32_t position_bytes = r.value<uint32_t>();
  if (position_bytes > Model::kMaxSourcePosition) r.fail("corrupted file (bad source position)");
  h.counters.source_position.resize(position_bytes);
  r.bytes(&h.counters.source_position[0], position_bytes);
  h.pool_written = r.value<uint64_t>();
  const uint32_t pool_size = r.value<uint32_t>();
  r.expect_room(pool_size, 4, "pool");
  h.pool.resize(pool_size);
  r.bytes(h.pool.data(), size_t(pool_size) * 4);
  c.popularity_negatives = popularity == 1;
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
