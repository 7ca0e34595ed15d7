// The sections of a snapshot or delta file (layout in snapshot.hpp): each written from the
// model's persistence interface (model_persistence.hpp) and read back into an image that is
// verified whole before anything is applied through Model::Import. Internal to the format:
// snapshot_header.cpp (the header), snapshot_sections.cpp (the rest), snapshot.cpp (the
// order of the sections and the four entry points).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rtrec/model_persistence.hpp"
#include "snapshot_io.hpp"

namespace rtrec {
namespace snapshot_detail {

constexpr char kMagic[8] = {'R', 'T', 'R', 'E', 'C', 'S', 'N', 'P'};
constexpr char kDeltaMagic[8] = {'R', 'T', 'R', 'E', 'C', 'D', 'L', 'T'};
// Every change to what is saved bumps the version; a file of another version is refused as
// "version N is not supported" before anything else of it is read.
// 2: lineage + sequence, 4-lane checksum; 3: expiry, evicted keys, then side features;
// 4: model families (two_tower: item input vectors, user histories, the tower).
// 5: the noisy-feedback options (dedup_window, max_user_rate, huber_delta, adaptive_step)
// and counters (deduplicated, rate_limited) at the end of the header; mf AdaGrad rows keep
// one accumulator float per row, as two_tower's do (version 4: one per coordinate). Version 4
// files load: the options off, the counters at 0, mf accumulators made row-wise
// (accumulators_to_row_wise).
// 6: hidden items and item display names, two sections after the evicted keys and before
// the admission counts, which stay last (hidden: full snapshots always, deltas when the set
// changed; names: snapshot_item_names.cpp); the header ends with the retrieval mode. Version
// 4 and 5 files load with nothing hidden, no names, and retrieval "exact".
// 7: the header names each model parameter (family, then name and value per row of the
// parameter table), so adding a parameter no longer changes the layout, and a file missing a
// parameter loads with the family's default; the counters follow. Versions 4 to 6 load
// (snapshot_header_legacy.cpp).
constexpr uint32_t kVersion = 7;
constexpr uint32_t kOldestVersion = 4;
constexpr uint32_t kFullSnapshot = 0;
constexpr uint32_t kDelta = 1;
constexpr uint32_t kAnyKind = 2;  // read_header: accept either (peek_snapshot)

// ---- header (snapshot_header.cpp)

struct SnapshotHeader {
  uint32_t version = kVersion;  // of the file read (written files: kVersion)
  uint32_t kind;
  ModelConfig config;
  ModelCounters counters;
  // The deltas' lineage. sequence: full, the last delta before it; delta, its number. link:
  // full, the id of the last link before it; delta, its own id.
  LineagePosition position;
  uint64_t follows = 0;        // delta: id of the link it follows; full: unused
  std::vector<uint32_t> pool;  // popularity-negative pool (full snapshots; empty in deltas)
  uint64_t pool_written = 0;
};

// The header of a file about to be written: the model's config and counters now.
SnapshotHeader header_of(const Model::StateAccess& state, uint32_t kind, const LineagePosition& position);
// The popularity pool of a full snapshot, with item rows renumbered to their place in the
// file (`position`: row -> index among the saved rows, kNotFound for rows left out).
void fill_pool(const Model::StateAccess& state, SnapshotHeader& h, const std::vector<uint32_t>& position);
void write_header(Writer& w, const SnapshotHeader& h);
// Refuses another magic, another version (before reading anything else) or another kind
// than `expected_kind`.
SnapshotHeader read_header(Reader& r, uint32_t expected_kind);
// The counters every version's header holds in this order, from label_sum to update_events.
void read_learning_counters(Reader& r, ModelCounters& c);
// The source position and the popularity pool, which every version's header holds in this order.
void read_source_position_and_pool(Reader& r, SnapshotHeader& h);
// The rest of a version 4, 5 or 6 header, after its magic and version.
SnapshotHeader read_header_v4_to_v6(Reader& r, uint32_t version, uint32_t expected_kind, bool delta);

// ---- rows (snapshot_sections.cpp)

// What a table's rows hold: their size, AdaGrad accumulators (per coordinate or per row),
// input vectors (two_tower items).
struct RowShape {
  uint32_t dim;
  bool accumulators;
  bool row_accumulators;
  bool inputs;
  uint32_t accumulator_floats() const { return accumulators ? (row_accumulators ? 1 : dim) : 0; }
};

struct TableImage {
  IdKind kind;
  uint32_t rows;
  size_t record;  // bytes per row
  std::vector<char> records;
  std::vector<std::string> names;
};

void write_rows(Writer& w, const EmbeddingTable& t, const std::vector<uint32_t>& rows);
TableImage read_rows(Reader& r, const RowShape& shape, const char* name);
// Rewrites the records of a table read in `file` shape with per-coordinate AdaGrad
// accumulators (mf, version 4) into the row-wise shape this build keeps.
void accumulators_to_row_wise(TableImage& t, const RowShape& file);
std::vector<uint64_t> keys_of(const TableImage& image);
// Refuses (as a corrupted file) rows whose ID kind or names do not fit the table.
void check_applicable(Reader& r, const TableImage& image, const EmbeddingTable& t, const char* name);
// Writes the image's rows into `table`: new IDs get rows, known ones are overwritten. A full
// snapshot demands that every row is new and lands at its saved index (`in_order`).
void apply_rows(Reader& r, const TableImage& image, Model::Import& import, const EmbeddingTable& table, bool in_order,
                const char* name);

// ---- seen sets

// Seen sets of the listed user rows, items named by key (see snapshot_sections.cpp).
void write_seen(Writer& w, const Model::StateAccess& state, const std::vector<uint32_t>& user_rows, uint32_t n_items,
                const std::vector<uint32_t>* in_file);
std::vector<std::vector<uint64_t>> read_seen(Reader& r, uint32_t users);

// ---- side features

// Side features of one table in a file: the feature table's rows, then (if the side has
// ever had features) one list of feature keys per ID row of the file, in the file's order.
struct FeatureImage {
  TableImage table;
  bool has_lists = false;
  std::vector<std::vector<uint64_t>> lists;
};

void write_features(Writer& w, const Model::StateAccess& state, bool items, const std::vector<uint32_t>& id_rows,
                    bool delta, uint32_t since);
FeatureImage read_features(Reader& r, const RowShape& shape, uint32_t id_rows, const char* name);
// After the ID rows are in place: `id_rows[i]` is the model row of the file's i-th ID. A
// full snapshot must name only features it holds; a delta skips unknown ones.
void apply_features(Reader& r, Model::Import& import, bool items, const FeatureImage& image,
                    const std::vector<uint32_t>& id_rows, bool full);

// ---- two_tower: the tower's parameters, then one history per user row of the file (item
// keys, oldest first). Empty for mf (no parameters, no histories).

struct TwoTowerImage {
  std::vector<float> parameters;
  std::vector<std::vector<uint64_t>> histories;
};

// `in_file`: for a full snapshot, item row -> its place in the file (kNotFound: left out);
// null for a delta, which names live items.
void write_two_tower(Writer& w, const Model::StateAccess& state, const std::vector<uint32_t>& user_rows,
                     uint32_t n_items, const std::vector<uint32_t>* in_file);
TwoTowerImage read_two_tower(Reader& r, const ModelConfig& c, uint32_t user_rows);
// After the ID rows are in place: `user_rows[u]` is the model row of the file's u-th user.
// A full snapshot must name only items it holds; a delta skips unknown ones.
void apply_two_tower(Reader& r, Model::Import& import, const TwoTowerImage& image,
                     const std::vector<uint32_t>& user_rows, bool full);

// ---- evicted keys, admission sketches

void write_evicted(Writer& w, const EvictedKeys& e);
EvictedKeys read_evicted(Reader& r, bool full);
// Admission counts travel with full snapshots (a restored trainer keeps counting where it
// was); deltas leave them out, replicas do not admit. Null sketches: none.
void write_sketches(Writer& w, const CountMinSketch* users, const CountMinSketch* items);

// ---- hidden items (version >= 6): the whole set of hidden keys, in full snapshots always, in
// deltas when it changed since the previous delta (`present`).
struct HiddenImage {
  bool present = false;
  std::vector<uint64_t> keys;
};
void write_hidden(Writer& w, bool present, const std::vector<uint64_t>& keys);
HiddenImage read_hidden(Reader& r, bool full);
std::vector<uint16_t> read_sketches(Reader& r, const ModelConfig& c);

// ---- item names (snapshot_item_names.cpp; version >= 6): full snapshots all of them,
// deltas those set since the previous cut.
void write_item_names(Writer& w, const std::vector<ItemNames::Entry>& names);
std::vector<ItemNames::Entry> read_item_names(Reader& r);
// Sets them unmarked (not changes of this model for its next delta).
void apply_item_names(ItemNames& store, const std::vector<ItemNames::Entry>& names);

}  // namespace snapshot_detail
}  // namespace rtrec
