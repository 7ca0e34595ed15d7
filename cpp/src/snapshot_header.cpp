// The header of snapshot and delta files: magic, version, kind, config, counters, lineage
// position, popularity pool (layout in snapshot.hpp). The model's parameters are written by
// name, one entry per row of the parameter table (model_params.def); versions 4 to 6 are
// read by snapshot_header_legacy.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>

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

namespace {

// One parameter's value in the file, by its type in the table (model_params.def).
struct ParamWriter {
  Writer& w;
  void operator()(const ParamInfo&, uint32_t v) const { w.value<uint32_t>(v); }
  void operator()(const ParamInfo&, uint64_t v) const { w.value<uint64_t>(v); }
  void operator()(const ParamInfo&, float v) const { w.value<float>(v); }
  void operator()(const ParamInfo&, double v) const { w.value<double>(v); }
  void operator()(const ParamInfo&, bool v) const { w.value<uint32_t>(v ? 1 : 0); }
  void operator()(const ParamInfo&, const Widths& v) const {
    w.value<uint32_t>(static_cast<uint32_t>(v.size()));
    w.bytes(v.data(), v.size() * sizeof(uint32_t));
  }
  template <class Choice>
  void operator()(const ParamInfo&, Choice v) const {
    w.value<uint32_t>(static_cast<uint32_t>(v));
  }
};

// The parameter named `wanted`, read into its field (found: whether the table has it).
struct ParamReader {
  Reader& r;
  const std::string& wanted;
  bool& found;

  template <class T>
  void operator()(const ParamInfo& p, T& field) const {
    if (found || wanted != p.name) return;
    found = true;
    field = read(field);
  }
  uint32_t read(uint32_t) const { return r.value<uint32_t>(); }
  uint64_t read(uint64_t) const { return r.value<uint64_t>(); }
  float read(float) const { return r.value<float>(); }
  double read(double) const { return r.value<double>(); }
  bool read(bool) const {
    const uint32_t v = r.value<uint32_t>();
    if (v > 1) r.fail("corrupted file (bad parameter '" + wanted + "')");
    return v == 1;
  }
  Widths read(const Widths&) const {
    const uint32_t n = r.value<uint32_t>();
    if (n > kMaxTowerLayers) r.fail("corrupted file (bad parameter '" + wanted + "')");
    Widths v(n);
    r.bytes(v.data(), n * sizeof(uint32_t));
    return v;
  }
  template <class Choice>
  Choice read(Choice) const {
    const uint32_t v = r.value<uint32_t>();
    if (v >= std::size(Choices<Choice>::names)) r.fail("corrupted file (bad parameter '" + wanted + "')");
    return static_cast<Choice>(v);
  }
};

constexpr uint32_t kMaxParamName = 64;
constexpr uint32_t kMaxParams = 256;

void write_config(Writer& w, const ModelConfig& config) {
  w.value<uint32_t>(static_cast<uint32_t>(config.family));
  ModelConfig c = config;
  uint32_t n = 0;
  for_each_param([&](const ParamInfo&, const auto&) { ++n; }, c);
  w.value<uint32_t>(n);
  for_each_param(
      [&](const ParamInfo& p, const auto& value) {
        const uint32_t length = static_cast<uint32_t>(std::strlen(p.name));
        w.value<uint32_t>(length);
        w.bytes(p.name, length);
        ParamWriter{w}(p, value);
      },
      c);
}

// A parameter the file does not name keeps the family's default: a file written before a
// parameter existed loads as if it had been left at its default.
ModelConfig read_config(Reader& r) {
  const uint32_t family = r.value<uint32_t>();
  if (family >= std::size(Choices<Family>::names)) r.fail("corrupted file (bad model family)");
  ModelConfig c = default_config(static_cast<Family>(family));
  const uint32_t n = r.value<uint32_t>();
  if (n > kMaxParams) r.fail("corrupted file (bad parameter count)");
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t length = r.value<uint32_t>();
    if (length == 0 || length > kMaxParamName) r.fail("corrupted file (bad parameter name)");
    std::string name(length, '\0');
    r.bytes(&name[0], length);
    for (char ch : name)  // the table's names are lowercase identifiers
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) r.fail("corrupted file (bad parameter name)");
    bool found = false;
    for_each_param(ParamReader{r, name, found}, c);
    if (!found) r.fail("model parameter '" + name + "' is not known to this build (a corrupted file, or one written by a newer version)");
  }
  try {
    validate_config(c);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("corrupted file (bad header: ") + e.what() + ")");
  }
  return c;
}

}  // namespace

void read_learning_counters(Reader& r, ModelCounters& c) {
  c.label_sum = r.value<double>();
  c.weight_sum = r.value<double>();
  c.global_bias = r.value<float>();
  c.updates = r.value<uint64_t>();
  c.skipped = r.value<uint64_t>();
  c.calls = r.value<uint64_t>();
  c.update_events = r.value<uint64_t>();
}

void read_source_position_and_pool(Reader& r, SnapshotHeader& h) {
  const uint32_t position_bytes = r.value<uint32_t>();
  if (position_bytes > Model::kMaxSourcePosition) r.fail("corrupted file (bad source position)");
  h.counters.source_position.resize(position_bytes);
  r.bytes(&h.counters.source_position[0], position_bytes);
  h.pool_written = r.value<uint64_t>();
  const uint32_t pool_size = r.value<uint32_t>();
  if (pool_size > Model::kPoolSize) r.fail("corrupted file (bad header)");
  r.expect_room(pool_size, 4, "pool");
  h.pool.resize(pool_size);
  r.bytes(h.pool.data(), size_t(pool_size) * 4);
}

void write_header(Writer& w, const SnapshotHeader& h) {
  w.bytes(h.kind == kDelta ? kDeltaMagic : kMagic, sizeof kMagic);
  w.value<uint32_t>(kVersion);
  w.value<uint32_t>(h.kind);
  write_config(w, h.config);
  w.value<double>(h.counters.label_sum);
  w.value<double>(h.counters.weight_sum);
  w.value<float>(h.counters.global_bias);
  w.value<uint64_t>(h.counters.updates);
  w.value<uint64_t>(h.counters.skipped);
  w.value<uint64_t>(h.counters.calls);
  w.value<uint64_t>(h.counters.update_events);
  w.value<uint64_t>(h.counters.deduplicated);
  w.value<uint64_t>(h.counters.rate_limited);
  w.value<uint64_t>(h.counters.evicted_users);
  w.value<uint64_t>(h.counters.evicted_items);
  w.value<double>(h.counters.clock);
  w.value<uint64_t>(h.position.lineage);
  w.value<uint64_t>(h.position.sequence);
  w.value<uint64_t>(h.follows);
  w.value<uint64_t>(h.position.link);
  w.value<uint32_t>(static_cast<uint32_t>(h.counters.source_position.size()));
  w.bytes(h.counters.source_position.data(), h.counters.source_position.size());
  w.value<uint64_t>(h.pool_written);
  w.value<uint32_t>(static_cast<uint32_t>(h.pool.size()));
  w.bytes(h.pool.data(), h.pool.size() * sizeof(uint32_t));
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
  if (version < 7) return read_header_v4_to_v6(r, version, expected_kind, delta);
  SnapshotHeader h;
  h.version = version;
  h.kind = r.value<uint32_t>();
  if (h.kind != (expected_kind == kAnyKind ? (delta ? kDelta : kFullSnapshot) : expected_kind))
    r.fail("corrupted file (bad header)");
  h.config = read_config(r);
  read_learning_counters(r, h.counters);
  h.counters.deduplicated = r.value<uint64_t>();
  h.counters.rate_limited = r.value<uint64_t>();
  h.counters.evicted_users = r.value<uint64_t>();
  h.counters.evicted_items = r.value<uint64_t>();
  h.counters.clock = r.value<double>();
  if (!std::isfinite(h.counters.clock)) r.fail("corrupted file (bad header)");
  h.position.lineage = r.value<uint64_t>();
  h.position.sequence = r.value<uint64_t>();
  h.follows = r.value<uint64_t>();
  h.position.link = r.value<uint64_t>();
  read_source_position_and_pool(r, h);
  r.end_section("header");
  return h;
}

}  // namespace snapshot_detail
}  // namespace rtrec
