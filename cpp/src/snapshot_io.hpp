// The byte level of snapshot files: a streaming checksum, a writer and a reader that
// checksum every section, and the atomic write (temporary file, fsync, rename). Internal to
// the snapshot format (snapshot*.cpp); knows nothing of what the sections hold.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "rtrec/hash.hpp"
#include "rtrec/snapshot.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rtrec snapshots are little-endian; add byte swapping for this platform"
#endif

namespace rtrec {
namespace snapshot_detail {

constexpr char kEndMagic[8] = {'R', 'T', 'R', 'E', 'C', 'E', 'N', 'D'};

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

inline std::string errno_text() { return std::strerror(errno); }

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

inline void fsync_directory_of(const std::string& path) {
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

}  // namespace snapshot_detail
}  // namespace rtrec
