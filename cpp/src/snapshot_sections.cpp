// The sections of snapshot and delta files after the header: table rows, seen sets, side
// features, the two_tower section, evicted keys, admission sketches (layout in
// snapshot.hpp). Each is written from the model's persistence interface and read into an
// image that is applied only once the whole file is verified.
#include <algorithm>
#include <cmath>

#include "rtrec/hash.hpp"
#include "snapshot_format.hpp"

namespace rtrec {
namespace snapshot_detail {
namespace {

RowShape shape_of(const EmbeddingTable& t) {
  return RowShape{t.dim(), t.has_accumulators(), t.has_row_accumulators(), t.has_inputs()};
}

// Fixed-size row record: key, update count, last update, bias, bias accumulator, vector
// (dim floats, unpadded), accumulator (dim floats per coordinate, 1 per row, none under
// SGD), then for tables with input vectors the input vector (dim floats) and its row
// accumulator (one float, AdaGrad only).
size_t record_size(const RowShape& s) {
  size_t floats = size_t(s.dim) + s.accumulator_floats();
  if (s.inputs) floats += s.dim + (s.accumulators ? 1 : 0);
  return 8 + 4 + 8 + 4 + 4 + floats * 4;
}

std::vector<uint64_t> read_key_list(Reader& r) {
  const uint64_t n = r.value<uint64_t>();
  r.expect_room(n, 8, "evicted");
  std::vector<uint64_t> keys(n);
  r.bytes(keys.data(), n * 8);
  return keys;
}

void write_key_list(Writer& w, const std::vector<uint64_t>& keys) {
  w.value<uint64_t>(keys.size());
  w.bytes(keys.data(), keys.size() * 8);
}

}  // namespace

// ------------------------------------------------------------------------ rows

void write_rows(Writer& w, const EmbeddingTable& t, const std::vector<uint32_t>& rows) {
  const uint32_t dim = t.dim();
  const bool acc = t.has_accumulators();
  const uint32_t accumulator_floats = shape_of(t).accumulator_floats();
  w.value<uint32_t>(static_cast<uint32_t>(t.kind()));
  w.value<uint32_t>(static_cast<uint32_t>(rows.size()));
  std::vector<char> record(record_size(shape_of(t)));
  for (uint32_t r : rows) {
    char* p = record.data();
    const uint64_t key = t.key(r);
    const uint32_t count = t.update_count(r);
    const double last = t.last_update(r);
    const float bias = t.bias(r);
    const float bias_acc = acc ? t.bias_accumulator(r) : 0.0f;
    std::memcpy(p, &key, 8), p += 8;
    std::memcpy(p, &count, 4), p += 4;
    std::memcpy(p, &last, 8), p += 8;
    std::memcpy(p, &bias, 4), p += 4;
    std::memcpy(p, &bias_acc, 4), p += 4;
    std::memcpy(p, t.vector(r), size_t(dim) * 4), p += size_t(dim) * 4;
    if (acc) std::memcpy(p, t.accumulator(r), size_t(accumulator_floats) * 4), p += size_t(accumulator_floats) * 4;
    if (t.has_inputs()) {
      std::memcpy(p, t.input(r), size_t(dim) * 4), p += size_t(dim) * 4;
      if (acc) std::memcpy(p, &t.input_accumulator(r), 4);
    }
    w.bytes(record.data(), record.size());
  }
  if (t.kind() == IdKind::kString) {
    for (uint32_t r : rows) {
      const std::string& name = t.name(r);
      w.value<uint32_t>(static_cast<uint32_t>(name.size()));
      w.bytes(name.data(), name.size());
    }
  }
  w.end_section("table");
}

TableImage read_rows(Reader& r, const RowShape& shape, const char* name) {
  TableImage t;
  const uint32_t kind = r.value<uint32_t>();
  if (kind > static_cast<uint32_t>(IdKind::kString)) r.fail(std::string("corrupted file (bad ID kind in ") + name + ")");
  t.kind = static_cast<IdKind>(kind);
  t.rows = r.value<uint32_t>();
  const size_t size = t.record = record_size(shape);
  r.expect_room(t.rows, size, name);
  t.records.resize(size_t(t.rows) * size);
  r.bytes(t.records.data(), t.records.size());
  if (t.kind == IdKind::kString) {
    r.expect_room(t.rows, 4, name);
    t.names.resize(t.rows);
    for (uint32_t i = 0; i < t.rows; ++i) {
      const uint32_t length = r.value<uint32_t>();
      r.expect_room(length, 1, name);
      t.names[i].resize(length);
      r.bytes(&t.names[i][0], length);
    }
  }
  r.end_section(name);
  if (t.rows > 0 && t.kind == IdKind::kUnset) r.fail(std::string("corrupted file (rows without ID kind in ") + name + ")");
  // Every float of a record (bias, bias accumulator, vectors) is finite in a file this
  // library wrote: training never writes a non-finite value.
  for (uint32_t i = 0; i < t.rows; ++i) {
    const char* p = t.records.data() + size_t(i) * size + 8 + 4 + 8;
    const size_t floats = (size - 8 - 4 - 8) / 4;
    for (size_t k = 0; k < floats; ++k) {
      float v;
      std::memcpy(&v, p + 4 * k, 4);
      if (!std::isfinite(v)) r.fail(std::string("corrupted file (a non-finite value in ") + name + ")");
    }
  }
  for (uint32_t i = 0; i < t.names.size(); ++i) {
    uint64_t key;
    std::memcpy(&key, t.records.data() + size_t(i) * size, 8);
    if (hash_string_id(t.names[i]) != key) r.fail(std::string("corrupted file (string ID hash mismatch in ") + name + ")");
  }
  return t;
}

void accumulators_to_row_wise(TableImage& t, const RowShape& file) {
  if (!file.accumulators || file.row_accumulators || t.rows == 0) return;
  RowShape row_wise = file;
  row_wise.row_accumulators = true;
  const size_t from = record_size(file), to = record_size(row_wise);
  const size_t head = 8 + 4 + 8 + 4 + 4 + size_t(file.dim) * 4;  // key .. bias accumulator, vector
  const size_t per_coordinate = size_t(file.dim) * 4;
  std::vector<char> out(size_t(t.rows) * to);
  for (uint32_t i = 0; i < t.rows; ++i) {
    const char* p = t.records.data() + size_t(i) * from;
    char* q = out.data() + size_t(i) * to;
    std::memcpy(q, p, head);
    // A row-wise accumulator sums the mean square of each step's gradient over the row: the
    // mean of the per-coordinate sums is exactly that.
    double sum = 0.0;
    for (uint32_t k = 0; k < file.dim; ++k) {
      float a;
      std::memcpy(&a, p + head + 4 * size_t(k), 4);
      sum += a;
    }
    const float mean = file.dim > 0 ? static_cast<float>(sum / file.dim) : 0.0f;
    std::memcpy(q + head, &mean, 4);
    std::memcpy(q + head + 4, p + head + per_coordinate, from - head - per_coordinate);  // input vector and its accumulator
  }
  t.records.swap(out);
  t.record = to;
}

std::vector<uint64_t> keys_of(const TableImage& image) {
  std::vector<uint64_t> keys(image.rows);
  for (uint32_t i = 0; i < image.rows; ++i) std::memcpy(&keys[i], image.records.data() + size_t(i) * image.record, 8);
  return keys;
}

void check_applicable(Reader& r, const TableImage& image, const EmbeddingTable& t, const char* name) {
  const std::vector<uint64_t> keys = keys_of(image);
  try {
    t.check_batch(keys.data(), image.kind == IdKind::kString ? image.names.data() : nullptr, keys.size());
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("cannot apply the ") + name + ": " + e.what());
  }
}

void apply_rows(Reader& r, const TableImage& image, Model::Import& import, const EmbeddingTable& t, bool in_order,
                const char* name) {
  // The ID kinds were checked before the first change: check_applicable (deltas), or the
  // model is new (full snapshots).
  const RowShape shape = shape_of(t);
  const size_t size = record_size(shape);
  if (image.rows > 0 && image.record != size) r.fail(std::string("corrupted file (row size of the ") + name + ")");
  for (uint32_t i = 0; i < image.rows; ++i) {
    const char* p = image.records.data() + size_t(i) * size;
    RowValues v;
    std::memcpy(&v.key, p, 8), p += 8;
    std::memcpy(&v.update_count, p, 4), p += 4;
    std::memcpy(&v.last_update, p, 8), p += 8;
    std::memcpy(&v.bias, p, 4), p += 4;
    std::memcpy(&v.bias_accumulator, p, 4), p += 4;
    v.name = image.kind == IdKind::kString ? &image.names[i] : nullptr;
    v.vector = p, p += size_t(shape.dim) * 4;
    if (shape.accumulators) v.accumulator = p, p += size_t(shape.accumulator_floats()) * 4;
    if (shape.inputs) {
      v.input = p, p += size_t(shape.dim) * 4;
      if (shape.accumulators) std::memcpy(&v.input_accumulator, p, 4);
    }
    const uint32_t row = import.row(t, v);
    if (in_order && row != i) r.fail(std::string("corrupted file (duplicate ID in ") + name + ")");
  }
}

// ------------------------------------------------------------------------ seen sets

// Seen sets of the listed user rows, items named by key (row numbers differ between a
// trainer and the replicas that rebuild its tables from deltas). Only items the reader will
// know are named: for a full snapshot the rows in the file (`in_file`: row -> its place, or
// kNotFound), for a delta the live ones (a replica skips keys it does not know yet).
void write_seen(Writer& w, const Model::StateAccess& state, const std::vector<uint32_t>& user_rows, uint32_t n_items,
                const std::vector<uint32_t>* in_file) {
  const EmbeddingTable& items = state.model().items();
  std::vector<uint32_t> rows;
  std::vector<uint64_t> keys;
  w.value<uint32_t>(static_cast<uint32_t>(user_rows.size()));
  for (uint32_t u : user_rows) {
    rows.clear();
    keys.clear();
    state.seen_items(u, rows);
    std::sort(rows.begin(), rows.end());
    for (uint32_t i : rows) {
      // Items created after the cut wait for the next file; evicted ones are gone (and a
      // row recycled during a full save holds an item the file does not have).
      if (i >= n_items) continue;
      if (in_file != nullptr ? (*in_file)[i] != EmbeddingTable::kNotFound : items.is_live(i)) keys.push_back(items.key(i));
    }
    w.value<uint32_t>(static_cast<uint32_t>(keys.size()));
    w.bytes(keys.data(), keys.size() * sizeof(uint64_t));
  }
  w.end_section("seen");
}

std::vector<std::vector<uint64_t>> read_seen(Reader& r, uint32_t users) {
  if (r.value<uint32_t>() != users) r.fail("corrupted file (seen sets do not match the users)");
  std::vector<std::vector<uint64_t>> seen(users);
  for (uint32_t u = 0; u < users; ++u) {
    const uint32_t count = r.value<uint32_t>();
    r.expect_room(count, 8, "seen");
    seen[u].resize(count);
    r.bytes(seen[u].data(), size_t(count) * 8);
  }
  r.end_section("seen");
  return seen;
}

// ------------------------------------------------------------------------ side features

// Lists are read before the feature rows are chosen: a feature is created (and marked)
// before any list names it, so every feature a written list names is written too, or was in
// an earlier file.
void write_features(Writer& w, const Model::StateAccess& state, bool items, const std::vector<uint32_t>& id_rows,
                    bool delta, uint32_t since) {
  const EmbeddingTable& table = state.feature_table(items);
  const bool has_lists = state.has_feature_lists(items);
  std::vector<std::vector<uint64_t>> lists;
  if (has_lists) {
    lists.resize(id_rows.size());
    for (size_t i = 0; i < id_rows.size(); ++i)
      if (const FeatureList* list = state.feature_list(items, id_rows[i]))
        for (uint32_t k = 0; k < list->size; ++k) lists[i].push_back(table.key(list->rows[k]));
  }
  const uint32_t n = table.size();
  write_rows(w, table, delta ? table.rows_marked_since(n, since) : table.live_rows(n));
  w.value<uint32_t>(has_lists ? 1 : 0);
  for (const auto& list : lists) {
    w.value<uint32_t>(static_cast<uint32_t>(list.size()));
    w.bytes(list.data(), list.size() * 8);
  }
  w.end_section(items ? "item features" : "user features");
}

FeatureImage read_features(Reader& r, const RowShape& shape, uint32_t id_rows, const char* name) {
  FeatureImage f;
  f.table = read_rows(r, shape, name);
  if (f.table.rows > 0 && f.table.kind != IdKind::kString) r.fail(std::string("corrupted file (") + name + " are not named)");
  const uint32_t flag = r.value<uint32_t>();
  if (flag > 1) r.fail(std::string("corrupted file (bad ") + name + " flag)");
  f.has_lists = flag == 1;
  if (f.has_lists) {
    f.lists.resize(id_rows);
    for (auto& list : f.lists) {
      const uint32_t n = r.value<uint32_t>();
      r.expect_room(n, 8, name);
      list.resize(n);
      r.bytes(list.data(), size_t(n) * 8);
    }
  }
  r.end_section(name);
  return f;
}

void apply_features(Reader& r, Model::Import& import, bool items, const FeatureImage& image,
                    const std::vector<uint32_t>& id_rows, bool full) {
  const EmbeddingTable& table = import.feature_table(items);
  apply_rows(r, image.table, import, table, full, items ? "item features" : "user features");
  if (!image.has_lists) return;
  std::vector<uint32_t> rows;
  for (size_t i = 0; i < id_rows.size(); ++i) {
    rows.clear();
    for (uint64_t key : image.lists[i]) {
      const uint32_t row = table.find(key);
      if (row != EmbeddingTable::kNotFound) rows.push_back(row);
      else if (full) r.fail("corrupted file (a feature list names a feature that is not in the file)");
    }
    if (id_rows[i] != EmbeddingTable::kNotFound && (!rows.empty() || import.has_feature_lists(items)))
      import.set_features(items, id_rows[i], rows);
  }
}

void write_evicted(Writer& w, const EvictedKeys& e) {
  write_key_list(w, e.users);
  write_key_list(w, e.items);
  w.value<uint32_t>(e.membership ? 1 : 0);
  if (e.membership) {
    write_key_list(w, e.live_users);
    write_key_list(w, e.live_items);
  }
  w.end_section("evicted");
}

EvictedKeys read_evicted(Reader& r, bool full) {
  EvictedKeys e;
  e.users = read_key_list(r);
  e.items = read_key_list(r);
  const uint32_t membership = r.value<uint32_t>();
  if (membership > 1 || (membership == 1 && full)) r.fail("corrupted file (bad eviction section)");
  e.membership = membership == 1;
  if (e.membership) {
    e.live_users = read_key_list(r);
    e.live_items = read_key_list(r);
  }
  r.end_section("evicted");
  return e;
}

void write_hidden(Writer& w, bool present, const std::vector<uint64_t>& keys) {
  w.value<uint32_t>(present ? 1 : 0);
  if (present) write_key_list(w, keys);
  w.end_section("hidden");
}

HiddenImage read_hidden(Reader& r, bool full) {
  HiddenImage h;
  const uint32_t present = r.value<uint32_t>();
  if (present > 1 || (full && present != 1)) r.fail("corrupted file (bad hidden-items section)");
  h.present = present == 1;
  if (h.present) h.keys = read_key_list(r);
  r.end_section("hidden");
  return h;
}

void write_sketches(Writer& w, const CountMinSketch* users, const CountMinSketch* items) {
  std::vector<uint16_t> cells;
  if (users != nullptr) {
    cells.resize(2 * CountMinSketch::cells());
    for (size_t i = 0; i < CountMinSketch::cells(); ++i) {
      cells[i] = users->get(i);
      cells[CountMinSketch::cells() + i] = items->get(i);
    }
  }
  w.value<uint64_t>(cells.size());
  w.bytes(cells.data(), cells.size() * sizeof(uint16_t));
  w.end_section("sketch");
}

std::vector<uint16_t> read_sketches(Reader& r, const ModelConfig& c) {
  const uint64_t n = r.value<uint64_t>();
  const bool expected = c.min_count > 1;
  if (n != (expected ? 2 * CountMinSketch::cells() : 0)) r.fail("corrupted file (admission counts do not match the config)");
  std::vector<uint16_t> cells(n);
  r.bytes(cells.data(), n * sizeof(uint16_t));
  r.end_section("sketch");
  return cells;
}

}  // namespace snapshot_detail
}  // namespace rtrec
