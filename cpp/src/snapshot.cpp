// Snapshots and deltas: the order of a file's sections and the four entry points. The
// sections are snapshot_header.cpp's and snapshot_sections.cpp's; the model is reached only
// through its persistence interface (model_persistence.hpp) and its public views.
#include "rtrec/snapshot.hpp"

#include <cstring>
#include <vector>

#include "rtrec/epoch.hpp"
#include "model_family.hpp"
#include "snapshot_format.hpp"

namespace rtrec {
using namespace snapshot_detail;
namespace {

// A whole file read and verified (checksums, trailer) before anything is applied.
struct FileImage {
  SnapshotHeader header;
  TableImage users, items;
  std::vector<std::vector<uint64_t>> seen;
  FeatureImage user_features, item_features;
  TwoTowerImage two_tower;
  EvictedKeys evicted;
  std::vector<uint16_t> sketches;  // full snapshots of admission models: users', then items'
  HiddenImage hidden;
  std::vector<ItemNames::Entry> item_names;  // version >= 6
};

FileImage read_file(Reader& r, uint32_t kind) {
  FileImage f;
  f.header = read_header(r, kind);
  const ModelConfig& c = f.header.config;
  // Every family trains its embedding rows with row-wise AdaGrad (one accumulator per row);
  // mf files before version 5 kept one per coordinate, made row-wise as they are read.
  const bool row_wise = c.family == Family::kTwoTower || f.header.version >= 5;
  const RowShape plain{c.dim, c.optimizer == Optimizer::kAdagrad, row_wise, false};
  RowShape items = plain;
  items.inputs = family_shape(c.family).item_inputs;
  f.users = read_rows(r, plain, "users");
  f.items = read_rows(r, items, "items");
  f.seen = read_seen(r, f.users.rows);
  f.user_features = read_features(r, plain, f.users.rows, "user features");
  f.item_features = read_features(r, plain, f.items.rows, "item features");
  if (!row_wise) {
    accumulators_to_row_wise(f.users, plain);
    accumulators_to_row_wise(f.items, items);
    accumulators_to_row_wise(f.user_features.table, plain);
    accumulators_to_row_wise(f.item_features.table, plain);
  }
  f.two_tower = read_two_tower(r, c, f.users.rows);
  f.evicted = read_evicted(r, kind == kFullSnapshot);
  if (f.header.version >= 6) f.hidden = read_hidden(r, kind == kFullSnapshot);
  if (f.header.version >= 6) f.item_names = read_item_names(r);
  // The admission counts (16 MiB when kept) stay the last section of a full snapshot.
  if (kind == kFullSnapshot) f.sketches = read_sketches(r, c);
  r.finish();
  return f;
}

}  // namespace

// ---------------------------------------------------------------------------------- full

void save_snapshot(const Model& m, const std::string& path) {
  Model::SnapshotCut cut(m);  // rolls a lineage it started back unless committed
  EpochGuard pin;             // rows being written are not recycled meanwhile
  // The rows that exist now are the snapshot; rows created while it is written are left for
  // the next delta, and so are seen pairs that name them. Evicted rows are left out, so the
  // file's row numbers are the live rows renumbered in order.
  const uint32_t n_users = m.users().size();
  const uint32_t n_items = m.items().size();
  const std::vector<uint32_t> users = m.users().live_rows(n_users);
  const std::vector<uint32_t> items = m.items().live_rows(n_items);
  std::vector<uint32_t> position(n_items, EmbeddingTable::kNotFound);
  for (uint32_t i = 0; i < items.size(); ++i) position[items[i]] = i;
  write_atomically(path, [&](Writer& w) {
    SnapshotHeader h = header_of(cut, kFullSnapshot, cut.position());
    fill_pool(cut, h, position);
    write_header(w, h);
    write_rows(w, m.users(), users);
    write_rows(w, m.items(), items);
    write_seen(w, cut, users, n_items, &position);
    write_features(w, cut, false, users, false, 0);
    write_features(w, cut, true, items, false, 0);
    write_two_tower(w, cut, users, n_items, &position);
    write_evicted(w, EvictedKeys{});
    write_hidden(w, true, cut.hidden_keys());
    write_item_names(w, m.item_name_store().since(0));
    write_sketches(w, cut.sketch(false), cut.sketch(true));
  });
  cut.commit();
}

std::unique_ptr<Model> load_snapshot(const std::string& path) {
  Reader r(path);
  const FileImage f = read_file(r, kFullSnapshot);
  const SnapshotHeader& h = f.header;
  const TableImage& users = f.users;
  const TableImage& items = f.items;

  // Everything is verified; build the model. Row order is preserved, so row indices (and
  // with them negative sampling and tie-breaking) are identical to the saved model's.
  std::unique_ptr<Model> m;
  try {
    m = std::make_unique<Model>(h.config);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("corrupted file (") + e.what() + ")");
  }
  for (uint32_t slot : h.pool)
    if (slot >= items.rows) r.fail("corrupted file (pool item out of range)");
  Model::Import import(*m);
  apply_rows(r, users, import, m->users(), true, "users");
  apply_rows(r, items, import, m->items(), true, "items");
  for (uint32_t u = 0; u < users.rows; ++u) {
    for (uint64_t key : f.seen[u]) {
      const uint32_t item = m->items().find(key);
      if (item == EmbeddingTable::kNotFound) r.fail("corrupted file (seen item is not in the file)");
      import.add_seen(u, item);
    }
  }
  std::vector<uint32_t> in_order_users(users.rows), in_order_items(items.rows);
  for (uint32_t i = 0; i < users.rows; ++i) in_order_users[i] = i;
  for (uint32_t i = 0; i < items.rows; ++i) in_order_items[i] = i;
  apply_features(r, import, false, f.user_features, in_order_users, true);
  apply_features(r, import, true, f.item_features, in_order_items, true);
  apply_two_tower(r, import, f.two_tower, in_order_users, true);
  import.restore(h.counters);
  import.set_pool(h.pool, h.pool_written);
  import.set_hidden(f.hidden.keys);
  if (import.sketch(false) != nullptr) {
    import.set_sketch(false, f.sketches.data());
    import.set_sketch(true, f.sketches.data() + CountMinSketch::cells());
  }
  // The copy continues the lineage at the file's position: if it trains and publishes, its
  // next delta holds what changed after loading (restored rows are unmarked).
  apply_item_names(m->item_name_store(), f.item_names);
  import.continue_from(h.position, /*loaded=*/true);
  return m;
}

// ---------------------------------------------------------------------------------- deltas

void save_delta(const Model& m, const std::string& path) {
  Model::DeltaCut cut(m);  // undone unless committed: the next delta carries what this one held
  if (!cut.has_lineage())
    throw DeltaOrderError("this model has no base snapshot: save (or load) a full snapshot before the first delta");
  EpochGuard pin;  // the rows the cut lists are not recycled meanwhile
  const DeltaContents& d = cut.cut();
  write_atomically(path, [&](Writer& w) {
    SnapshotHeader h = header_of(cut, kDelta, d.position);
    h.follows = d.follows;
    write_header(w, h);
    write_rows(w, m.users(), d.users);
    write_rows(w, m.items(), d.items);
    write_seen(w, cut, d.users, d.n_items, nullptr);
    write_features(w, cut, false, d.users, true, d.since);
    write_features(w, cut, true, d.items, true, d.since);
    write_two_tower(w, cut, d.users, d.n_items, nullptr);
    write_evicted(w, d.evicted);
    write_hidden(w, d.hidden_changed, d.hidden);
    write_item_names(w, m.item_name_store().since(d.since));
  });
  cut.commit();
}

SnapshotPosition peek_snapshot(const std::string& path) {
  Reader r(path);
  const SnapshotHeader h = read_header(r, kAnyKind);
  return SnapshotPosition{h.kind == kFullSnapshot, h.position.lineage, h.position.sequence};
}

void apply_delta(Model& m, const std::string& path) {
  Model::Import import(m);
  Reader r(path);
  const FileImage f = read_file(r, kDelta);
  const SnapshotHeader& h = f.header;
  const TableImage& users = f.users;
  const TableImage& items = f.items;
  const ModelConfig& c = m.config();
  if (h.config.family != c.family || h.config.dim != c.dim || h.config.optimizer != c.optimizer ||
      h.config.loss != c.loss || h.config.negative_sampling != c.negative_sampling || h.config.tower != c.tower ||
      h.config.history != c.history || h.config.recency != c.recency)
    throw DeltaOrderError(path + ": this delta is for a model with another configuration");
  const LineagePosition at = import.position();
  if (h.position.lineage != at.lineage)
    throw DeltaOrderError(path + ": this delta belongs to another model's lineage than the one this copy was loaded from");
  if (h.position.sequence != at.sequence + 1)
    throw DeltaOrderError(path + ": delta " + std::to_string(h.position.sequence) + " does not follow delta " +
                          std::to_string(at.sequence) + " (deltas must be applied in order, without gaps)");
  if (h.follows != at.link)
    throw DeltaOrderError(path + ": delta " + std::to_string(h.position.sequence) + " follows another delta " +
                          std::to_string(at.sequence) + " than the one this copy has (two writers continued one lineage?)");
  {
    EpochGuard pin;  // the checks read stored names by row, then rows are written
    // Everything that could still fail is checked before the first row is written, so a
    // refused delta changes nothing: ID kinds and string-hash collisions against the tables.
    check_applicable(r, users, m.users(), "users");
    check_applicable(r, items, m.items(), "items");
    check_applicable(r, f.user_features.table, import.feature_table(false), "user features");
    check_applicable(r, f.item_features.table, import.feature_table(true), "item features");
    // Evictions first: a key evicted and then seen again before the cut comes back as a row.
    import.evictions(f.evicted);
    apply_rows(r, users, import, m.users(), false, "users");
    apply_rows(r, items, import, m.items(), false, "items");
    for (uint32_t u = 0; u < users.rows; ++u) {
      uint64_t user_key;
      std::memcpy(&user_key, users.records.data() + size_t(u) * users.record, 8);
      const uint32_t user = m.users().find(user_key);
      for (uint64_t key : f.seen[u]) {
        const uint32_t item = m.items().find(key);
        if (item != EmbeddingTable::kNotFound) import.add_seen(user, item);
      }
    }
    auto rows_of = [](const TableImage& image, const EmbeddingTable& t) {
      std::vector<uint32_t> rows;
      for (uint64_t key : keys_of(image)) rows.push_back(t.find(key));
      return rows;
    };
    const std::vector<uint32_t> user_rows = rows_of(users, m.users());
    apply_features(r, import, false, f.user_features, user_rows, false);
    apply_features(r, import, true, f.item_features, rows_of(items, m.items()), false);
    apply_two_tower(r, import, f.two_tower, user_rows, false);
    if (f.hidden.present) import.set_hidden(f.hidden.keys);
    apply_item_names(m.item_name_store(), f.item_names);  // after the evictions: a re-set name stays
    import.restore(h.counters);
    import.continue_from(h.position, /*loaded=*/false);
  }
  import.recycle();
}

}  // namespace rtrec
