#include "rtrec/snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
constexpr char kEndMagic[8] = {'R', 'T', 'R', 'E', 'C', 'E', 'N', 'D'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFullSnapshot = 0;
constexpr uint32_t kMaxDim = 1u << 16;

// Streaming 64-bit checksum over 8-byte words: the value depends only on the bytes, not on
// how they were split into writes and reads. A corruption detector, not a cryptographic hash.
class Checksum {
 public:
  void add(const void* data, size_t n) noexcept {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    length_ += n;
    while (n > 0 && pending_size_ > 0) {  // finish a word started by an earlier call
      pending_[pending_size_++] = *p++;
      --n;
      if (pending_size_ == 8) consume_pending();
    }
    for (; n >= 8; n -= 8, p += 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      consume(w);
    }
    for (; n > 0; --n) pending_[pending_size_++] = *p++;
  }
  uint64_t value() const noexcept {
    uint64_t tail = 0;
    std::memcpy(&tail, pending_, pending_size_);
    return mix64(state_ ^ mix64(tail ^ length_));
  }
  void reset() noexcept { *this = Checksum(); }

 private:
  void consume(uint64_t w) noexcept {
    state_ = (state_ ^ (w * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
    state_ ^= state_ >> 29;
  }
  void consume_pending() noexcept {
    uint64_t w;
    std::memcpy(&w, pending_, 8);
    consume(w);
    pending_size_ = 0;
  }

  uint64_t state_ = 0x243f6a8885a308d3ULL;
  uint64_t length_ = 0;
  unsigned char pending_[8] = {};
  size_t pending_size_ = 0;
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
    total_.add(data, n);
  }
  template <class T>
  void value(const T& v) {
    bytes(&v, sizeof v);
  }
  void end_section(const char* /*name, for symmetry with Reader*/) {
    const uint64_t sum = section_.value();
    bytes(&sum, sizeof sum);
    section_.reset();
  }
  void finish() {
    bytes(kEndMagic, sizeof kEndMagic);
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
    total_.add(data, n);
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
    const uint64_t expected = total_.value();
    uint64_t stored;
    if (sizeof stored > remaining_ || std::fread(&stored, 1, sizeof stored, file_) != sizeof stored) fail("truncated file");
    remaining_ -= sizeof stored;
    if (stored != expected) fail("checksum mismatch over the whole file (corrupted file)");
    if (remaining_ != 0) fail("unexpected data after the end of the snapshot");
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t remaining_ = 0;
  Checksum section_, total_;
};

// Fixed-size row record: key, update count, last update, bias, bias accumulator, vector
// (dim floats, unpadded), accumulator (dim floats, AdaGrad only).
size_t record_size(uint32_t dim, bool accumulators) {
  return 8 + 4 + 8 + 4 + 4 + size_t(dim) * 4 * (accumulators ? 2 : 1);
}

void write_table(Writer& w, const EmbeddingTable& t, uint32_t rows) {
  const uint32_t dim = t.dim();
  const bool acc = t.has_accumulators();
  w.value<uint32_t>(static_cast<uint32_t>(t.kind()));
  w.value<uint32_t>(rows);
  std::vector<char> record(record_size(dim, acc));
  for (uint32_t r = 0; r < rows; ++r) {
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
    if (acc) std::memcpy(p, t.accumulator(r), size_t(dim) * 4);
    w.bytes(record.data(), record.size());
  }
  if (t.kind() == IdKind::kString) {
    for (uint32_t r = 0; r < rows; ++r) {
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
  std::vector<char> records;
  std::vector<std::string> names;
};

TableImage read_table(Reader& r, uint32_t dim, bool acc, const char* name) {
  TableImage t;
  const uint32_t kind = r.value<uint32_t>();
  if (kind > static_cast<uint32_t>(IdKind::kString)) r.fail(std::string("corrupted file (bad ID kind in ") + name + ")");
  t.kind = static_cast<IdKind>(kind);
  t.rows = r.value<uint32_t>();
  const size_t size = record_size(dim, acc);
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
  return t;
}

void restore_table(Reader& r, const TableImage& image, EmbeddingTable& t, const char* name) {
  if (image.rows > 0 && image.kind == IdKind::kUnset) r.fail(std::string("corrupted file (rows without ID kind in ") + name + ")");
  const uint32_t dim = t.dim();
  const bool acc = t.has_accumulators();
  const size_t size = record_size(dim, acc);
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
    if (id_name != nullptr && hash_string_id(*id_name) != key) r.fail(std::string("corrupted file (string ID hash mismatch in ") + name + ")");
    const uint32_t row = t.find_or_insert(key, id_name);
    if (row != i) r.fail(std::string("corrupted file (duplicate ID in ") + name + ")");
    std::memcpy(t.vector(row), p, size_t(dim) * 4), p += size_t(dim) * 4;
    if (acc) {
      std::memcpy(t.accumulator(row), p, size_t(dim) * 4);
      t.bias_accumulator(row) = bias_acc;
    }
    t.bias(row) = bias;
    t.set_metadata(row, count, last);
  }
}

void fsync_directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: the rename itself is already atomic
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void save_snapshot(const Model& m, const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  try {
    Writer w(temp);
    const ModelConfig& c = m.config_;
    w.bytes(kMagic, sizeof kMagic);
    w.value<uint32_t>(kVersion);
    w.value<uint32_t>(kFullSnapshot);
    w.value<uint32_t>(c.dim);
    w.value<uint32_t>(static_cast<uint32_t>(c.loss));
    w.value<uint32_t>(static_cast<uint32_t>(c.optimizer));
    w.value<uint32_t>(c.negatives);
    w.value<float>(c.learning_rate);
    w.value<float>(c.l2);
    w.value<float>(c.grad_clip);
    w.value<float>(c.init_std);
    w.value<uint64_t>(c.seed);
    w.value<double>(m.label_sum_.load(std::memory_order_relaxed));
    w.value<double>(m.weight_sum_.load(std::memory_order_relaxed));
    w.value<float>(m.global_bias_.load(std::memory_order_relaxed));
    w.value<uint64_t>(m.updates_.load(std::memory_order_relaxed));
    w.value<uint64_t>(m.skipped_.load(std::memory_order_relaxed));
    w.value<uint64_t>(m.calls_.load(std::memory_order_relaxed));
    w.end_section("header");

    // The rows that exist now are the snapshot; rows created while it is written are left
    // for the next one, and so are seen pairs that name them.
    const uint32_t users = m.users_.size();
    const uint32_t items = m.items_.size();
    write_table(w, m.users_, users);
    write_table(w, m.items_, items);
    std::vector<uint32_t> seen;
    w.value<uint32_t>(users);
    for (uint32_t u = 0; u < users; ++u) {
      seen.clear();
      m.seen_.collect(u, seen);
      seen.erase(std::remove_if(seen.begin(), seen.end(), [&](uint32_t i) { return i >= items; }), seen.end());
      w.value<uint32_t>(static_cast<uint32_t>(seen.size()));
      w.bytes(seen.data(), seen.size() * sizeof(uint32_t));
    }
    w.end_section("seen");
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

std::unique_ptr<Model> load_snapshot(const std::string& path) {
  Reader r(path);
  char magic[8];
  r.bytes(magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof magic) != 0) r.fail("not an rtrec_native snapshot (bad magic)");
  const uint32_t version = r.value<uint32_t>();
  if (version != kVersion)
    r.fail("snapshot format version " + std::to_string(version) + " is not supported (this build reads version " +
           std::to_string(kVersion) + ")");
  if (r.value<uint32_t>() != kFullSnapshot) r.fail("not a full snapshot");
  ModelConfig c;
  c.dim = r.value<uint32_t>();
  const uint32_t loss = r.value<uint32_t>();
  const uint32_t optimizer = r.value<uint32_t>();
  c.negatives = r.value<uint32_t>();
  c.learning_rate = r.value<float>();
  c.l2 = r.value<float>();
  c.grad_clip = r.value<float>();
  c.init_std = r.value<float>();
  c.seed = r.value<uint64_t>();
  const double label_sum = r.value<double>();
  const double weight_sum = r.value<double>();
  const float global_bias = r.value<float>();
  const uint64_t updates = r.value<uint64_t>();
  const uint64_t skipped = r.value<uint64_t>();
  const uint64_t calls = r.value<uint64_t>();
  r.end_section("header");
  if (c.dim == 0 || c.dim > kMaxDim || loss > 2 || optimizer > 1) r.fail("corrupted file (bad config)");
  c.loss = static_cast<Loss>(loss);
  c.optimizer = static_cast<Optimizer>(optimizer);

  const bool acc = c.optimizer == Optimizer::kAdagrad;
  const TableImage users = read_table(r, c.dim, acc, "users");
  const TableImage items = read_table(r, c.dim, acc, "items");
  const uint32_t seen_users = r.value<uint32_t>();
  if (seen_users != users.rows) r.fail("corrupted file (seen lists do not match the users)");
  std::vector<std::vector<uint32_t>> seen(seen_users);
  for (uint32_t u = 0; u < seen_users; ++u) {
    const uint32_t count = r.value<uint32_t>();
    r.expect_room(count, 4, "seen");
    seen[u].resize(count);
    r.bytes(seen[u].data(), size_t(count) * 4);
    for (uint32_t item : seen[u])
      if (item >= items.rows) r.fail("corrupted file (seen item out of range)");
  }
  r.end_section("seen");
  r.finish();

  // Everything is verified; build the model. Row order is preserved, so row indices (and
  // with them negative sampling and tie-breaking) are identical to the saved model's.
  std::unique_ptr<Model> m;
  try {
    m = std::make_unique<Model>(c);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("corrupted file (") + e.what() + ")");
  }
  restore_table(r, users, m->users_, "users");
  restore_table(r, items, m->items_, "items");
  for (uint32_t u = 0; u < seen_users; ++u)
    for (uint32_t item : seen[u]) m->seen_.add(u, item);
  m->label_sum_.store(label_sum);
  m->weight_sum_.store(weight_sum);
  m->global_bias_.store(global_bias);
  m->updates_.store(updates);
  m->skipped_.store(skipped);
  m->calls_.store(calls);
  return m;
}

}  // namespace rtrec
