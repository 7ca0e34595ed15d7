#include "rtrec/snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "rtrec/hash.hpp"
#include "rtrec/model.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rtrec snapshots are little-endian; add byte swapping for this platform"
#endif

namespace rtrec {
namespace {

constexpr char kMagic[8] = {'R', 'T', 'R', 'E', 'C', 'S', 'N', 'P'};
constexpr char kDeltaMagic[8] = {'R', 'T', 'R', 'E', 'C', 'D', 'L', 'T'};
constexpr char kEndMagic[8] = {'R', 'T', 'R', 'E', 'C', 'E', 'N', 'D'};
// 2: lineage + sequence, 4-lane checksum; 3: expiry, evicted keys, then side features;
// 4: model families (two_tower: item input vectors, user histories, the tower);
// 5: mf AdaGrad is row-wise too (one accumulator float per row, not one per coordinate).
constexpr uint32_t kVersion = 5;
constexpr uint32_t kFullSnapshot = 0;
constexpr uint32_t kDelta = 1;
constexpr uint32_t kAnyKind = 2;  // read_header: accept either (peek_snapshot)

// Streaming 64-bit checksum over 8-byte words: the value depends only on the bytes, not on
// how they were split into writes and reads. Four independent lanes (word i goes to lane
// i % 4) so that the multiply chains overlap: one serial chain capped save and load at a
// fraction of disk speed. A corruption detector, not a cryptographic hash.
class Checksum {
 public:
  void add(const void* data, size_t n) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    length_ += n;
    while (n > 0 && pending_bytes_ > 0) {  // finish a word started by an earlier call
      pending_ |= uint64_t(*p++) << (8 * pending_bytes_);
      --n;
      if (++pending_bytes_ == 8) {
        consume(pending_);
        pending_ = 0;
        pending_bytes_ = 0;
      }
    }
    while (n >= 8 && lane_ != 0) {  // realign so the bulk loop starts at lane 0
      consume(load(p));
      p += 8, n -= 8;
    }
    uint64_t a = lanes_[0], b = lanes_[1], c = lanes_[2], d = lanes_[3];
    for (; n >= 32; n -= 32, p += 32) {
      a = step(a, load(p));
      b = step(b, load(p + 8));
      c = step(c, load(p + 16));
      d = step(d, load(p + 24));
    }
    lanes_[0] = a, lanes_[1] = b, lanes_[2] = c, lanes_[3] = d;
    for (; n >= 8; n -= 8, p += 8) consume(load(p));
    for (; n > 0; --n) pending_ |= uint64_t(*p++) << (8 * pending_bytes_++);
  }
  uint64_t value() const noexcept {
    uint64_t h = mix64(pending_ ^ length_);
    for (uint64_t lane : lanes_) h = mix64(h ^ lane);
    return h;
  }
  void reset() noexcept { *this = Checksum(); }

 private:
  static uint64_t load(const unsigned char* p) noexcept {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static uint64_t step(uint64_t state, uint64_t w) noexcept {
    state = (state ^ (w * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
    return state ^ (state >> 29);
  }
  void consume(uint64_t w) noexcept {
    lanes_[lane_] = step(lanes_[lane_], w);
    lane_ = (lane_ + 1) & 3;
  }

  uint64_t lanes_[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
  unsigned lane_ = 0;           // lane of the next whole word
  uint64_t length_ = 0;
  uint64_t pending_ = 0;        // the bytes of an unfinished word, little-endian
  unsigned pending_bytes_ = 0;  // 0..7
};

std::string errno_text() { return std::strerror(errno); }

class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "wb");
    if (file_ == nullptr) throw std::runtime_error("cannot create " + path + ": " + errno_text());
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  ~Writer() {
    if (file_ != nullptr) std::fclose(file_);
  }

  void bytes(const void* data, size_t n) {
    if (n > 0 && std::fwrite(data, 1, n, file_) != n) throw std::runtime_error("write failed on " + path_ + ": " + errno_text());
    section_.add(data, n);
  }
  template <class T>
  void value(const T& v) {
    bytes(&v, sizeof v);
  }
  // Every byte before the trailer belongs to a checksummed section; the trailer's checksum
  // covers the sequence of section checksums (so no section can be dropped or reordered).
  void end_section(const char* /*name, for symmetry with Reader*/) {
    const uint64_t sum = section_.value();
    bytes(&sum, sizeof sum);
    total_.add(&sum, sizeof sum);
    section_.reset();
  }
  void finish() {
    bytes(kEndMagic, sizeof kEndMagic);
    total_.add(kEndMagic, sizeof kEndMagic);
    const uint64_t sum = total_.value();
    if (std::fwrite(&sum, 1, sizeof sum, file_) != sizeof sum) throw std::runtime_error("write failed on " + path_);
    if (std::fflush(file_) != 0) throw std::runtime_error("flush failed on " + path_ + ": " + errno_text());
    if (::fsync(fileno(file_)) != 0) throw std::runtime_error("fsync failed on " + path_ + ": " + errno_text());
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) throw std::runtime_error("close failed on " + path_ + ": " + errno_text());
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  Checksum section_, total_;
};

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr && errno == ENOENT) throw MissingFileError("no such file: " + path);
    if (file_ == nullptr) throw std::runtime_error("cannot open " + path + ": " + errno_text());
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
    struct stat st;
    if (::fstat(fileno(file_), &st) != 0) throw std::runtime_error("cannot stat " + path + ": " + errno_text());
    remaining_ = static_cast<uint64_t>(st.st_size);
  }
  ~Reader() { std::fclose(file_); }

  [[noreturn]] void fail(const std::string& what) const { throw SnapshotError(path_ + ": " + what); }

  void bytes(void* data, size_t n) {
    if (n > remaining_ || std::fread(data, 1, n, file_) != n) fail("truncated file (unexpected end of data)");
    remaining_ -= n;
    section_.add(data, n);
  }
  template <class T>
  T value() {
    T v;
    bytes(&v, sizeof v);
    return v;
  }
  // Refuses counts that cannot fit in what is left of the file, before allocating for them.
  void expect_room(uint64_t count, uint64_t bytes_each, const char* what) const {
    if (bytes_each != 0 && count > remaining_ / bytes_each) fail(std::string("truncated or corrupted file (") + what + " needs more data than the file holds)");
  }
  void end_section(const char* name) {
    const uint64_t expected = section_.value();
    uint64_t stored;
    if (sizeof stored > remaining_ || std::fread(&stored, 1, sizeof stored, file_) != sizeof stored) fail("truncated file");
    remaining_ -= sizeof stored;
    total_.add(&stored, sizeof stored);
    if (stored != expected) fail(std::string("checksum mismatch in the ") + name + " section (corrupted file)");
    section_.reset();
  }
  void finish() {
    char magic[8];
    bytes(magic, sizeof magic);
    if (std::memcmp(magic, kEndMagic, sizeof magic) != 0) fail("corrupted file (bad trailer)");
    total_.add(magic, sizeof magic);
    const uint64_t expected = total_.value();
    uint64_t stored;
    if (sizeof stored > remaining_ || std::fread(&stored, 1, sizeof stored, file_) != sizeof stored) fail("truncated file");
    remaining_ -= sizeof stored;
    if (stored != expected) fail("checksum mismatch in the trailer (corrupted file)");
    if (remaining_ != 0) fail("unexpected data after the end of the snapshot");
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t remaining_ = 0;
  Checksum section_, total_;
};

// What a table's rows hold: their size, AdaGrad accumulators (one per row since version 5),
// input vectors (two_tower items).
struct RowShape {
  uint32_t dim;
  bool accumulators;
  bool row_accumulators;
  bool inputs;
  uint32_t accumulator_floats() const { return accumulators ? (row_accumulators ? 1 : dim) : 0; }
};

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

struct TableImage {
  IdKind kind;
  uint32_t rows;
  size_t record;  // bytes per row
  std::vector<char> records;
  std::vector<std::string> names;
};

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

std::vector<uint64_t> keys_of(const TableImage& image) {
  std::vector<uint64_t> keys(image.rows);
  for (uint32_t i = 0; i < image.rows; ++i) std::memcpy(&keys[i], image.records.data() + size_t(i) * image.record, 8);
  return keys;
}

void check_applicable(Reader& r, const TableImage& image, const EmbeddingTable& t, const char* name) {
  if (image.rows > 0 && t.kind() != IdKind::kUnset && t.kind() != image.kind)
    r.fail(std::string("ID kind of the ") + name + " does not match the model");
  const std::vector<uint64_t> keys = keys_of(image);
  try {
    t.check_batch(keys.data(), image.kind == IdKind::kString ? image.names.data() : nullptr, keys.size());
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("cannot apply the ") + name + ": " + e.what());
  }
}

// Writes the image's rows into the table: new IDs get rows, known ones are overwritten (a
// delta carries absolute values, so applying one twice changes nothing). A full snapshot
// demands that every row is new and lands at its saved index (`in_order`).
void apply_rows(Reader& r, const TableImage& image, EmbeddingTable& t, bool in_order, const char* name) {
  if (image.rows > 0 && t.kind() != IdKind::kUnset && t.kind() != image.kind)
    r.fail(std::string("ID kind of the ") + name + " does not match the model");
  const uint32_t dim = t.dim();
  const bool acc = t.has_accumulators();
  const uint32_t accumulator_floats = shape_of(t).accumulator_floats();
  const size_t size = record_size(shape_of(t));
  if (image.rows > 0 && image.record != size) r.fail(std::string("corrupted file (row size of the ") + name + ")");
  for (uint32_t i = 0; i < image.rows; ++i) {
    const char* p = image.records.data() + size_t(i) * size;
    uint64_t key;
    uint32_t count;
    double last;
    float bias, bias_acc;
    std::memcpy(&key, p, 8), p += 8;
    std::memcpy(&count, p, 4), p += 4;
    std::memcpy(&last, p, 8), p += 8;
    std::memcpy(&bias, p, 4), p += 4;
    std::memcpy(&bias_acc, p, 4), p += 4;
    const std::string* id_name = image.kind == IdKind::kString ? &image.names[i] : nullptr;
    const uint32_t row = t.find_or_insert(key, id_name, /*random_init=*/false);
    if (in_order && row != i) r.fail(std::string("corrupted file (duplicate ID in ") + name + ")");
    std::memcpy(t.vector(row), p, size_t(dim) * 4), p += size_t(dim) * 4;
    if (acc) {
      std::memcpy(t.accumulator(row), p, size_t(accumulator_floats) * 4), p += size_t(accumulator_floats) * 4;
      t.bias_accumulator(row) = bias_acc;
    }
    if (t.has_inputs()) {
      std::memcpy(t.input(row), p, size_t(dim) * 4), p += size_t(dim) * 4;
      if (acc) std::memcpy(&t.input_accumulator(row), p, 4);
    }
    t.bias(row) = bias;
    t.set_metadata(row, count, last);
  }
}

// Seen sets of the listed user rows, items named by key (row numbers differ between a
// trainer and the replicas that rebuild its tables from deltas).
// Seen sets of the listed user rows, items named by key (row numbers differ between a
// trainer and the replicas that rebuild its tables from deltas). Only items the reader will
// know are named: for a full snapshot the rows in the file (`in_file`: row -> its place, or
// kNotFound), for a delta the live ones (a replica skips keys it does not know yet).
void write_seen(Writer& w, const SeenStore& seen, const EmbeddingTable& items, const std::vector<uint32_t>& user_rows,
                uint32_t n_items, const std::vector<uint32_t>* in_file) {
  std::vector<uint32_t> rows;
  std::vector<uint64_t> keys;
  w.value<uint32_t>(static_cast<uint32_t>(user_rows.size()));
  for (uint32_t u : user_rows) {
    rows.clear();
    keys.clear();
    seen.collect(u, rows);
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

// Side features of one table in a file: the feature table's rows, then (if the side has
// ever had features) one list of feature keys per ID row of the file, in the file's order.
struct FeatureImage {
  TableImage table;
  bool has_lists = false;
  std::vector<std::vector<uint64_t>> lists;
};

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

// The two_tower section: the tower's parameters, then one history per user row of the
// file (item keys, oldest first). Empty for mf (no parameters, no histories).
struct TwoTowerImage {
  std::vector<float> parameters;
  std::vector<std::vector<uint64_t>> histories;
};

TwoTowerImage read_two_tower(Reader& r, const ModelConfig& c, uint32_t user_rows) {
  TwoTowerImage t;
  const uint64_t count = r.value<uint64_t>();
  r.expect_room(count, 4, "two_tower");
  t.parameters.resize(count);
  r.bytes(t.parameters.data(), count * 4);
  for (float v : t.parameters)
    if (!std::isfinite(v)) r.fail("corrupted file (a non-finite tower parameter)");
  const uint32_t users = r.value<uint32_t>();
  const bool two_tower = c.family == Family::kTwoTower;
  if (users != (two_tower ? user_rows : 0)) r.fail("corrupted file (histories do not match the users)");
  t.histories.resize(users);
  for (auto& history : t.histories) {
    const uint32_t n = r.value<uint32_t>();
    if (n > c.history) r.fail("corrupted file (a history longer than the model keeps)");
    history.resize(n);
    r.bytes(history.data(), size_t(n) * 8);
  }
  r.end_section("two_tower");
  return t;
}

void fsync_directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: the rename itself is already atomic
  ::fsync(fd);
  ::close(fd);
}

// Writes `body` to a temporary file next to `path`, fsyncs it, renames it over `path` and
// fsyncs the directory; on any failure the temporary is removed and `path` is untouched.
template <class Body>
void write_atomically(const std::string& path, Body&& body) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  try {
    Writer w(temp);
    body(w);
    w.finish();
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    std::remove(temp.c_str());
    throw std::runtime_error("cannot rename " + temp + " to " + path + ": " + why);
  }
  fsync_directory_of(path);
}

// Rows that hold an ID (evicted rows waiting for reuse are left out).
std::vector<uint32_t> live_rows(const EmbeddingTable& t, uint32_t n) {
  std::vector<uint32_t> rows;
  rows.reserve(t.live_count());
  for (uint32_t i = 0; i < n; ++i)
    if (t.is_live(i)) rows.push_back(i);
  return rows;
}

std::vector<uint32_t> rows_since(const EmbeddingTable& t, uint32_t n, uint32_t generation) {
  std::vector<uint32_t> rows;
  for (uint32_t i = 0; i < n; ++i)
    if (t.generation(i) >= generation && t.is_live(i)) rows.push_back(i);
  return rows;
}

// Keys evicted since the previous delta (empty in full snapshots). When the trainer's log
// overflowed (see Model::log_evictions), `live` holds every live key of users then items
// instead, and a replica drops every key not in it.
struct Evictions {
  std::vector<uint64_t> users, items;
  bool membership = false;
  std::vector<uint64_t> live_users, live_items;
};

void write_key_list(Writer& w, const std::vector<uint64_t>& keys) {
  w.value<uint64_t>(keys.size());
  w.bytes(keys.data(), keys.size() * 8);
}

void write_keys(Writer& w, const Evictions& e) {
  write_key_list(w, e.users);
  write_key_list(w, e.items);
  w.value<uint32_t>(e.membership ? 1 : 0);
  if (e.membership) {
    write_key_list(w, e.live_users);
    write_key_list(w, e.live_items);
  }
  w.end_section("evicted");
}

std::vector<uint64_t> live_keys(const EmbeddingTable& t, uint32_t n) {
  std::vector<uint64_t> keys;
  for (uint32_t r : live_rows(t, n)) keys.push_back(t.key(r));
  return keys;
}

std::vector<uint64_t> read_key_list(Reader& r) {
  const uint64_t n = r.value<uint64_t>();
  r.expect_room(n, 8, "evicted");
  std::vector<uint64_t> keys(n);
  r.bytes(keys.data(), n * 8);
  return keys;
}

uint64_t fresh_id() {
  // Identity of a full snapshot: deltas name the base they extend. Wall clock, pid and a
  // counter make collisions between two trainers practically impossible.
  static std::atomic<uint64_t> counter{0};
  const uint64_t now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                       static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  uint64_t id = mix64(now ^ mix64(static_cast<uint64_t>(::getpid())) ^ mix64(counter.fetch_add(1) + 0x51ed));
  return id == 0 ? 1 : id;
}

}  // namespace

// ---------------------------------------------------------------------------------- header

struct SnapshotHeader {
  uint32_t kind;
  ModelConfig config;
  double label_sum, weight_sum;
  float global_bias;
  uint64_t updates, skipped, calls, update_events;
  uint64_t lineage, sequence;  // the deltas' lineage; full: last delta before it, delta: its number
  // The chain: each delta names the delta (or lineage start) it follows, so two writers that
  // continue one lineage from the same point cannot be mixed by a follower.
  uint64_t follows = 0;  // delta: id of the previous link; full: unused
  uint64_t link = 0;     // delta: its own id; full: id of the last link before it
  std::vector<uint32_t> pool;   // popularity-negative pool (full snapshots; empty in deltas)
  uint64_t pool_written = 0;
  uint64_t evicted_users = 0, evicted_items = 0;
  double clock = 0.0;
  std::string source_position;  // where the model's input stream stood (e.g. a stream entry ID)
};

static void write_header(Writer& w, const SnapshotHeader& h) {
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
  w.value<double>(h.label_sum);
  w.value<double>(h.weight_sum);
  w.value<float>(h.global_bias);
  w.value<uint64_t>(h.updates);
  w.value<uint64_t>(h.skipped);
  w.value<uint64_t>(h.calls);
  w.value<uint64_t>(h.update_events);
  w.value<uint64_t>(h.lineage);
  w.value<uint64_t>(h.sequence);
  w.value<uint64_t>(h.follows);
  w.value<uint64_t>(h.link);
  w.value<uint32_t>(c.popularity_negatives ? 1 : 0);
  w.value<uint32_t>(c.min_count);
  w.value<double>(c.ttl);
  w.value<uint64_t>(c.max_rows);
  w.value<uint64_t>(h.evicted_users);
  w.value<uint64_t>(h.evicted_items);
  w.value<double>(h.clock);
  w.value<uint32_t>(static_cast<uint32_t>(c.family));
  w.value<uint32_t>(c.history);
  w.value<float>(c.recency);
  w.value<uint32_t>(static_cast<uint32_t>(c.tower.size()));
  w.bytes(c.tower.data(), c.tower.size() * sizeof(uint32_t));
  w.value<uint32_t>(static_cast<uint32_t>(h.source_position.size()));
  w.bytes(h.source_position.data(), h.source_position.size());
  w.value<uint64_t>(h.pool_written);
  w.value<uint32_t>(static_cast<uint32_t>(h.pool.size()));
  w.bytes(h.pool.data(), h.pool.size() * sizeof(uint32_t));
  w.end_section("header");
}

static SnapshotHeader read_header(Reader& r, uint32_t expected_kind) {
  char magic[8];
  r.bytes(magic, sizeof magic);
  const bool full = std::memcmp(magic, kMagic, sizeof magic) == 0;
  const bool delta = std::memcmp(magic, kDeltaMagic, sizeof magic) == 0;
  if (!full && !delta) r.fail("not an rtrec_native snapshot (bad magic)");
  if (expected_kind == kFullSnapshot && !full) r.fail("this is a delta, not a full snapshot (use apply_delta)");
  if (expected_kind == kDelta && !delta) r.fail("this is a full snapshot, not a delta (use load)");
  const uint32_t version = r.value<uint32_t>();
  if (version != kVersion)
    r.fail("snapshot format version " + std::to_string(version) + " is not supported (this build reads version " +
           std::to_string(kVersion) + ")");
  SnapshotHeader h;
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
  h.label_sum = r.value<double>();
  h.weight_sum = r.value<double>();
  h.global_bias = r.value<float>();
  h.updates = r.value<uint64_t>();
  h.skipped = r.value<uint64_t>();
  h.calls = r.value<uint64_t>();
  h.update_events = r.value<uint64_t>();
  h.lineage = r.value<uint64_t>();
  h.sequence = r.value<uint64_t>();
  h.follows = r.value<uint64_t>();
  h.link = r.value<uint64_t>();
  const uint32_t popularity = r.value<uint32_t>();
  c.min_count = r.value<uint32_t>();
  c.ttl = r.value<double>();
  c.max_rows = r.value<uint64_t>();
  h.evicted_users = r.value<uint64_t>();
  h.evicted_items = r.value<uint64_t>();
  h.clock = r.value<double>();
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
  h.source_position.resize(position_bytes);
  r.bytes(&h.source_position[0], position_bytes);
  h.pool_written = r.value<uint64_t>();
  const uint32_t pool_size = r.value<uint32_t>();
  r.expect_room(pool_size, 4, "pool");
  h.pool.resize(pool_size);
  r.bytes(h.pool.data(), size_t(pool_size) * 4);
  c.popularity_negatives = popularity == 1;
  r.end_section("header");
  if (popularity > 1 || pool_size > Model::kPoolSize || c.min_count == 0 || !(c.ttl >= 0.0) || !std::isfinite(c.ttl) ||
      !std::isfinite(h.clock))
    r.fail("corrupted file (bad header)");
  if (h.kind != (expected_kind == kAnyKind ? (delta ? kDelta : kFullSnapshot) : expected_kind) || c.dim == 0 || c.dim > kMaxDim || loss > 3 || optimizer > 1)
    r.fail("corrupted file (bad header)");
  c.loss = static_cast<Loss>(loss);
  c.optimizer = static_cast<Optimizer>(optimizer);
  return h;
}

SnapshotHeader header_of(const Model& m, uint32_t kind, uint64_t lineage, uint64_t sequence) {
  SnapshotHeader h;
  h.kind = kind;
  h.config = m.config_;
  h.label_sum = m.label_sum_.load(std::memory_order_relaxed);
  h.weight_sum = m.weight_sum_.load(std::memory_order_relaxed);
  h.global_bias = m.global_bias_.load(std::memory_order_relaxed);
  h.updates = m.updates_.load(std::memory_order_relaxed);
  h.skipped = m.skipped_.load(std::memory_order_relaxed);
  h.calls = m.calls_.load(std::memory_order_relaxed);
  h.update_events = m.update_events_.load(std::memory_order_relaxed);
  h.lineage = lineage;
  h.sequence = sequence;
  h.evicted_users = m.evicted_users_.load(std::memory_order_relaxed);
  h.evicted_items = m.evicted_items_.load(std::memory_order_relaxed);
  h.clock = m.clock();
  h.source_position = m.source_position_;
  return h;
}

void restore_counters(Model& m, const SnapshotHeader& h) {
  m.label_sum_.store(h.label_sum);
  m.weight_sum_.store(h.weight_sum);
  m.global_bias_.store(h.global_bias);
  m.updates_.store(h.updates);
  m.skipped_.store(h.skipped);
  m.calls_.store(h.calls);
  m.update_events_.store(h.update_events);
  m.evicted_users_.store(h.evicted_users);
  m.evicted_items_.store(h.evicted_items);
  m.advance_clock(h.clock);
  m.source_position_ = h.source_position;
}

// The popularity pool of a full snapshot, with item rows renumbered to their place in the
// file (`position`: row -> index among the saved rows, kNotFound for rows left out).
void fill_pool(const Model& m, SnapshotHeader& h, const std::vector<uint32_t>& position) {
  h.pool_written = m.pool_written_.load(std::memory_order_relaxed);
  const uint64_t n = std::min<uint64_t>(h.pool_written, Model::kPoolSize);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t row = m.pool_[i].load(std::memory_order_relaxed);
    if (row < position.size() && position[row] != EmbeddingTable::kNotFound) h.pool.push_back(position[row]);
  }
  if (h.pool.size() < n) h.pool_written = h.pool.size();  // evicted items dropped: the ring restarts
}

// Admission counts travel with full snapshots (a restored trainer keeps counting where it
// was); deltas leave them out, replicas do not admit.
static void write_sketches(Writer& w, const CountMinSketch* users, const CountMinSketch* items) {
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

// Model internals the file format needs for the two_tower family.
struct TwoTowerAccess {
  // `in_file`: for a full snapshot, item row -> its place in the file (kNotFound: left out);
  // null for a delta, which names live items.
  static void write(Writer& w, const Model& m, const std::vector<uint32_t>& user_rows, uint32_t n_items,
                    const std::vector<uint32_t>* in_file) {
    if (!m.two_tower()) {
      w.value<uint64_t>(0);
      w.value<uint32_t>(0);
      w.end_section("two_tower");
      return;
    }
    // Copied while other threads may step: Hogwild-consistent, like the rows.
    const DenseTower& tower = *m.tower_;
    std::vector<float> parameters(tower.parameters(), tower.parameters() + tower.parameter_count());
    w.value<uint64_t>(parameters.size());
    w.bytes(parameters.data(), parameters.size() * 4);
    w.value<uint32_t>(static_cast<uint32_t>(user_rows.size()));
    std::vector<uint32_t> recent(m.config_.history);
    std::vector<uint64_t> keys;
    for (uint32_t u : user_rows) {
      keys.clear();
      const uint32_t n = m.recent_items(u, recent.data());
      for (uint32_t k = n; k-- > 0;) {  // oldest first
        const uint32_t i = recent[k];
        if (i >= n_items) continue;  // created after the cut: the next file has it
        if (in_file != nullptr ? (*in_file)[i] != EmbeddingTable::kNotFound : m.items_.is_live(i)) keys.push_back(m.items_.key(i));
      }
      w.value<uint32_t>(static_cast<uint32_t>(keys.size()));
      w.bytes(keys.data(), keys.size() * 8);
    }
    w.end_section("two_tower");
  }

  // After the ID rows are in place: `user_rows[u]` is the model row of the file's u-th user.
  // A full snapshot must name only items it holds; a delta skips unknown ones.
  static void apply(Reader& r, Model& m, const TwoTowerImage& image, const std::vector<uint32_t>& user_rows, bool full) {
    if (!m.two_tower()) return;
    DenseTower& tower = *m.tower_;
    if (image.parameters.size() != tower.parameter_count()) r.fail("corrupted file (the tower does not match the model)");
    std::copy(image.parameters.begin(), image.parameters.end(), tower.parameters());
    std::vector<uint32_t> items;
    for (size_t u = 0; u < image.histories.size(); ++u) {
      items.clear();
      for (uint64_t key : image.histories[u]) {
        const uint32_t row = m.items_.find(key);
        if (row != EmbeddingTable::kNotFound) items.push_back(row);
        else if (full) r.fail("corrupted file (a history names an item that is not in the file)");
      }
      if (user_rows[u] != EmbeddingTable::kNotFound) m.history_->assign(user_rows[u], items.data(), uint32_t(items.size()));
    }
  }
};

// Model internals the file format needs for side features.
struct FeatureAccess {
  static const Model::FeatureSide& side(const Model& m, bool items) { return items ? m.item_features_ : m.user_features_; }
  static Model::FeatureSide& side(Model& m, bool items) { return items ? m.item_features_ : m.user_features_; }

  // Lists are read before the feature rows are chosen: a feature is created (and marked)
  // before any list names it, so every feature a written list names is written too, or
  // was in an earlier file.
  static void write(Writer& w, const Model& m, bool items, const std::vector<uint32_t>& id_rows, bool delta,
                    uint32_t since) {
    const Model::FeatureSide& f = side(m, items);
    const bool has_lists = f.lists.any();
    std::vector<std::vector<uint64_t>> lists;
    if (has_lists) {
      lists.resize(id_rows.size());
      for (size_t i = 0; i < id_rows.size(); ++i)
        if (const FeatureList* list = f.lists.get(id_rows[i]))
          for (uint32_t k = 0; k < list->size; ++k) lists[i].push_back(f.table.key(list->rows[k]));
    }
    const uint32_t n = f.table.size();
    write_rows(w, f.table, delta ? rows_since(f.table, n, since) : live_rows(f.table, n));
    w.value<uint32_t>(has_lists ? 1 : 0);
    for (const auto& list : lists) {
      w.value<uint32_t>(static_cast<uint32_t>(list.size()));
      w.bytes(list.data(), list.size() * 8);
    }
    w.end_section(items ? "item features" : "user features");
  }

  // After the ID rows are in place: `id_rows[i]` is the model row of the file's i-th ID.
  // A full snapshot must name only features it holds; a delta skips unknown ones.
  static void apply(Reader& r, Model& m, bool items, const FeatureImage& image, const std::vector<uint32_t>& id_rows,
                    bool full) {
    Model::FeatureSide& f = side(m, items);
    apply_rows(r, image.table, f.table, full, items ? "item features" : "user features");
    if (!image.has_lists) return;
    std::vector<uint32_t> rows;
    for (size_t i = 0; i < id_rows.size(); ++i) {
      rows.clear();
      for (uint64_t key : image.lists[i]) {
        const uint32_t row = f.table.find(key);
        if (row != EmbeddingTable::kNotFound) rows.push_back(row);
        else if (full) r.fail("corrupted file (a feature list names a feature that is not in the file)");
      }
      if (id_rows[i] != EmbeddingTable::kNotFound && (!rows.empty() || f.lists.any())) f.lists.set(id_rows[i], rows);
    }
  }
};

// ---------------------------------------------------------------------------------- full

void save_snapshot(const Model& m, const std::string& path) {
  std::lock_guard<std::mutex> lock(m.persist_mutex_);
  // The first snapshot starts the lineage: deltas from here on hold only what changed after
  // this cut. Later snapshots do not cut: replicas that follow the deltas must still get
  // every change, and a copy loaded from this file may apply the next delta as well (it
  // repeats rows the file already has, with values as new or newer; deltas are idempotent).
  const bool starts_lineage = m.lineage_ == 0;
  if (starts_lineage) {
    m.lineage_ = fresh_id();
    m.last_link_ = m.lineage_;  // the chain starts at the lineage itself
    m.next_since_ = m.generation_.fetch_add(1, std::memory_order_seq_cst) + 1;
    m.logging_evictions_.store(true);
  }
  try {
    EpochGuard pin;  // rows being written are not recycled meanwhile
    // The rows that exist now are the snapshot; rows created while it is written are left
    // for the next delta, and so are seen pairs that name them. Evicted rows are left out,
    // so the file's row numbers are the live rows renumbered in order.
    const uint32_t n_users = m.users_.size();
    const uint32_t n_items = m.items_.size();
    const std::vector<uint32_t> users = live_rows(m.users_, n_users);
    const std::vector<uint32_t> items = live_rows(m.items_, n_items);
    std::vector<uint32_t> position(n_items, EmbeddingTable::kNotFound);
    for (uint32_t i = 0; i < items.size(); ++i) position[items[i]] = i;
    write_atomically(path, [&](Writer& w) {
      SnapshotHeader h = header_of(m, kFullSnapshot, m.lineage_, m.sequence_);
      h.link = m.last_link_;
      fill_pool(m, h, position);
      write_header(w, h);
      write_rows(w, m.users_, users);
      write_rows(w, m.items_, items);
      write_seen(w, m.seen_, m.items_, users, n_items, &position);
      FeatureAccess::write(w, m, false, users, false, 0);
      FeatureAccess::write(w, m, true, items, false, 0);
      TwoTowerAccess::write(w, m, users, n_items, &position);
      write_keys(w, Evictions{});
      write_sketches(w, m.user_sketch_.get(), m.item_sketch_.get());
    });
  } catch (...) {
    if (starts_lineage) {  // nothing was written: no lineage, no delta can follow
      std::lock_guard<std::mutex> log_lock(m.eviction_log_mutex_);
      m.logging_evictions_.store(false);
      m.evicted_user_keys_.clear();
      m.evicted_item_keys_.clear();
      m.evictions_overflowed_ = false;
      m.lineage_ = 0;
      m.last_link_ = 0;
    }
    throw;
  }
}



// A whole file read and verified (checksums, trailer) before anything is applied.
struct FileImage {
  SnapshotHeader header;
  TableImage users, items;
  std::vector<std::vector<uint64_t>> seen;
  FeatureImage user_features, item_features;
  TwoTowerImage two_tower;
  Evictions evicted;
  std::vector<uint16_t> sketches;  // full snapshots of admission models: users', then items'
};

static FileImage read_file(Reader& r, uint32_t kind) {
  FileImage f;
  f.header = read_header(r, kind);
  const ModelConfig& c = f.header.config;
  // Every family trains its embedding rows with row-wise AdaGrad (one accumulator per row).
  const RowShape plain{c.dim, c.optimizer == Optimizer::kAdagrad, true, false};
  RowShape items = plain;
  items.inputs = c.family == Family::kTwoTower;
  f.users = read_rows(r, plain, "users");
  f.items = read_rows(r, items, "items");
  f.seen = read_seen(r, f.users.rows);
  f.user_features = read_features(r, plain, f.users.rows, "user features");
  f.item_features = read_features(r, plain, f.items.rows, "item features");
  f.two_tower = read_two_tower(r, c, f.users.rows);
  f.evicted.users = read_key_list(r);
  f.evicted.items = read_key_list(r);
  const uint32_t membership = r.value<uint32_t>();
  if (membership > 1 || (membership == 1 && kind == kFullSnapshot)) r.fail("corrupted file (bad eviction section)");
  f.evicted.membership = membership == 1;
  if (f.evicted.membership) {
    f.evicted.live_users = read_key_list(r);
    f.evicted.live_items = read_key_list(r);
  }
  r.end_section("evicted");
  if (kind == kFullSnapshot) {
    const uint64_t n = r.value<uint64_t>();
    const bool expected = f.header.config.min_count > 1;
    if (n != (expected ? 2 * CountMinSketch::cells() : 0)) r.fail("corrupted file (admission counts do not match the config)");
    f.sketches.resize(n);
    r.bytes(f.sketches.data(), n * sizeof(uint16_t));
    r.end_section("sketch");
  }
  r.finish();
  return f;
}

std::unique_ptr<Model> load_snapshot(const std::string& path) {
  Reader r(path);
  const FileImage f = read_file(r, kFullSnapshot);
  const SnapshotHeader& h = f.header;
  const TableImage& users = f.users;
  const TableImage& items = f.items;
  const auto& seen = f.seen;

  // Everything is verified; build the model. Row order is preserved, so row indices (and
  // with them negative sampling and tie-breaking) are identical to the saved model's.
  std::unique_ptr<Model> m;
  try {
    m = std::make_unique<Model>(h.config);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("corrupted file (") + e.what() + ")");
  }
  apply_rows(r, users, m->users_, true, "users");
  apply_rows(r, items, m->items_, true, "items");
  for (uint32_t u = 0; u < users.rows; ++u) {
    for (uint64_t key : seen[u]) {
      const uint32_t item = m->items_.find(key);
      if (item == EmbeddingTable::kNotFound) r.fail("corrupted file (seen item is not in the file)");
      m->seen_.add(u, item);
    }
  }
  std::vector<uint32_t> in_order_users(users.rows), in_order_items(items.rows);
  for (uint32_t i = 0; i < users.rows; ++i) in_order_users[i] = i;
  for (uint32_t i = 0; i < items.rows; ++i) in_order_items[i] = i;
  FeatureAccess::apply(r, *m, false, f.user_features, in_order_users, true);
  FeatureAccess::apply(r, *m, true, f.item_features, in_order_items, true);
  TwoTowerAccess::apply(r, *m, f.two_tower, in_order_users, true);
  restore_counters(*m, h);
  for (size_t i = 0; i < h.pool.size(); ++i) {
    if (h.pool[i] >= items.rows) r.fail("corrupted file (pool item out of range)");
    m->pool_[i].store(h.pool[i], std::memory_order_relaxed);
  }
  m->pool_written_.store(h.pool_written, std::memory_order_relaxed);
  if (m->user_sketch_) {
    for (size_t i = 0; i < CountMinSketch::cells(); ++i) {
      m->user_sketch_->set(i, f.sketches[i]);
      m->item_sketch_->set(i, f.sketches[CountMinSketch::cells() + i]);
    }
  }
  // The copy continues the lineage at the file's position: if it trains and publishes, its
  // next delta holds what changed after loading (restored rows are unmarked).
  m->lineage_ = h.lineage;
  m->sequence_ = h.sequence;
  m->last_link_ = h.link;
  m->next_since_ = 1;
  m->logging_evictions_.store(true);
  return m;
}

// ---------------------------------------------------------------------------------- deltas

void save_delta(const Model& m, const std::string& path) {
  std::lock_guard<std::mutex> lock(m.persist_mutex_);
  if (m.lineage_ == 0)
    throw DeltaOrderError("this model has no base snapshot: save (or load) a full snapshot before the first delta");
  // Writers re-mark a row if a cut lands while they mark it (EmbeddingTable::mark), so
  // every change since the previous cut carries a generation >= next_since_.
  EpochGuard pin;
  const uint32_t cut = m.generation_.fetch_add(1, std::memory_order_seq_cst);
  // The log is taken and the rows chosen under the log's lock, so that no eviction falls
  // between the two (see Model::evict_rows).
  Evictions evicted;
  std::vector<uint32_t> users, items;
  uint32_t n_users, n_items;
  {
    std::lock_guard<std::mutex> log_lock(m.eviction_log_mutex_);
    evicted.users.swap(m.evicted_user_keys_);
    evicted.items.swap(m.evicted_item_keys_);
    n_users = m.users_.size();
    n_items = m.items_.size();
    users = rows_since(m.users_, n_users, m.next_since_);
    items = rows_since(m.items_, n_items, m.next_since_);
    if (m.evictions_overflowed_) {
      evicted.membership = true;
      evicted.live_users = live_keys(m.users_, n_users);
      evicted.live_items = live_keys(m.items_, n_items);
      m.evictions_overflowed_ = false;
    }
  }
  const uint64_t sequence = m.sequence_ + 1;
  const uint64_t link = fresh_id();
  try {
    write_atomically(path, [&](Writer& w) {
      SnapshotHeader h = header_of(m, kDelta, m.lineage_, sequence);
      h.follows = m.last_link_;
      h.link = link;
      write_header(w, h);
      write_rows(w, m.users_, users);
      write_rows(w, m.items_, items);
      write_seen(w, m.seen_, m.items_, users, n_items, nullptr);
      FeatureAccess::write(w, m, false, users, true, m.next_since_);
      FeatureAccess::write(w, m, true, items, true, m.next_since_);
      TwoTowerAccess::write(w, m, users, n_items, nullptr);
      write_keys(w, evicted);
    });
  } catch (...) {
    // The next delta carries these evictions (ahead of any logged since: order matters
    // only for a key evicted twice, and evicting it twice is the same as once), or the
    // live keys again if this one was to list them.
    std::lock_guard<std::mutex> log_lock(m.eviction_log_mutex_);
    if (evicted.membership) {
      m.evictions_overflowed_ = true;
    } else {
      m.evicted_user_keys_.insert(m.evicted_user_keys_.begin(), evicted.users.begin(), evicted.users.end());
      m.evicted_item_keys_.insert(m.evicted_item_keys_.begin(), evicted.items.begin(), evicted.items.end());
    }
    throw;
  }
  // Only after success: a failed delta leaves the next one to carry its rows.
  m.sequence_ = sequence;
  m.last_link_ = link;
  m.next_since_ = cut + 1;
}

SnapshotPosition peek_snapshot(const std::string& path) {
  Reader r(path);
  const SnapshotHeader h = read_header(r, kAnyKind);
  return SnapshotPosition{h.kind == kFullSnapshot, h.lineage, h.sequence};
}

void apply_delta(Model& m, const std::string& path) {
  std::lock_guard<std::mutex> lock(m.persist_mutex_);
  Reader r(path);
  const FileImage f = read_file(r, kDelta);
  const SnapshotHeader& h = f.header;
  const TableImage& users = f.users;
  const TableImage& items = f.items;
  const auto& seen = f.seen;
  const ModelConfig& c = m.config_;
  if (h.config.family != c.family || h.config.dim != c.dim || h.config.optimizer != c.optimizer ||
      h.config.loss != c.loss || h.config.popularity_negatives != c.popularity_negatives || h.config.tower != c.tower ||
      h.config.history != c.history || h.config.recency != c.recency)
    throw DeltaOrderError(path + ": this delta is for a model with another configuration");
  if (h.lineage != m.lineage_)
    throw DeltaOrderError(path + ": this delta belongs to another model's lineage than the one this copy was loaded from");
  if (h.sequence != m.sequence_ + 1)
    throw DeltaOrderError(path + ": delta " + std::to_string(h.sequence) + " does not follow delta " +
                          std::to_string(m.sequence_) + " (deltas must be applied in order, without gaps)");
  if (h.follows != m.last_link_)
    throw DeltaOrderError(path + ": delta " + std::to_string(h.sequence) +
                          " follows another delta " + std::to_string(m.sequence_) +
                          " than the one this copy has (two writers continued one lineage?)");
  {
    EpochGuard pin;  // the checks read stored names by row, then rows are written
    // Everything that could still fail is checked before the first row is written, so a
    // refused delta changes nothing: ID kinds and string-hash collisions against the tables.
    check_applicable(r, users, m.users_, "users");
    check_applicable(r, items, m.items_, "items");
    check_applicable(r, f.user_features.table, m.user_features_.table, "user features");
    check_applicable(r, f.item_features.table, m.item_features_.table, "item features");
    // Evictions first: a key evicted and then seen again before the cut comes back as a row.
    m.evict_keys(f.evicted.users, f.evicted.items);
    if (f.evicted.membership) m.keep_only(f.evicted.live_users, f.evicted.live_items);
    apply_rows(r, users, m.users_, false, "users");
    apply_rows(r, items, m.items_, false, "items");
    for (uint32_t u = 0; u < users.rows; ++u) {
      uint64_t user_key;
      std::memcpy(&user_key, users.records.data() + size_t(u) * users.record, 8);
      const uint32_t user = m.users_.find(user_key);
      for (uint64_t key : seen[u]) {
        const uint32_t item = m.items_.find(key);
        if (item != EmbeddingTable::kNotFound) m.seen_.add(user, item);
      }
    }
    auto rows_of = [](const TableImage& image, const EmbeddingTable& t) {
      std::vector<uint32_t> rows;
      for (uint64_t key : keys_of(image)) rows.push_back(t.find(key));
      return rows;
    };
    const std::vector<uint32_t> user_rows = rows_of(users, m.users_);
    FeatureAccess::apply(r, m, false, f.user_features, user_rows, false);
    FeatureAccess::apply(r, m, true, f.item_features, rows_of(items, m.items_), false);
    TwoTowerAccess::apply(r, m, f.two_tower, user_rows, false);
    restore_counters(m, h);
    m.sequence_ = h.sequence;
    m.last_link_ = h.link;
  }
  // The rows the delta evicted are recycled once no reader holds them (now, unless another
  // thread is mid-call). A replica follows the trainer's evictions and makes none of its
  // own: its ttl / max_rows apply only if it trains itself.
  std::lock_guard<std::mutex> maintenance(m.maintenance_mutex_);
  m.recycle();
}

}  // namespace rtrec
