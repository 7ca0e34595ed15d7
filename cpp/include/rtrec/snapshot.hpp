// Versioned binary snapshots of a whole model: config, counters, every row with its
// optimizer state and metadata, string IDs, seen lists, and checksums.
//
// Layout (little-endian): header {magic "RTRECSNP" or "RTRECDLT", version, kind, config
// (expiry included), counters, lineage position, popularity pool} + checksum, then per
// table (users, items) {kind, rows, fixed-size row records, string IDs} + checksum, the seen
// lists + checksum, per side the side features {feature table rows, one list of feature
// keys per ID row of the file} + checksum, the evicted keys (deltas; or the live keys when
// the trainer's eviction log overflowed) + checksum, the admission sketches (full
// snapshots) + checksum, then a trailer {"RTRECEND", checksum of the section checksums}.
// Full snapshots hold live rows only, renumbered in order. No pickle, no pointers: a file
// is self-describing.
//
// Writing never stops the world: rows are read while other threads may be training, so a
// snapshot is Hogwild-consistent (each row as some thread left it at the moment it was
// copied; rows and IDs that existed when the save began are all there). The file is written
// to a temporary name in the same directory, fsynced, renamed over the target and the
// directory fsynced, so a crash at any point leaves the previous file intact.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

namespace rtrec {

class Model;

// A file that is not a snapshot, of another version, truncated or corrupted.
class SnapshotError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file to read does not exist (maps to FileNotFoundError: a follower polling for the
// next delta treats it as "not yet", and a pruned file as "gone").
class MissingFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A delta that does not extend this model's state: another lineage, a gap in the
// sequence, or another configuration.
class DeltaOrderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void save_snapshot(const Model& model, const std::string& path);

// Reads and verifies the whole file before returning; never returns a half-loaded model.
std::unique_ptr<Model> load_snapshot(const std::string& path);

// Incremental deltas: the rows (values, optimizer state, metadata, seen sets) that changed
// since the previous delta (or the first full snapshot), tagged with the model's lineage and
// a sequence number. `apply_delta` verifies the whole file, refuses a delta of another
// lineage or out of order, then overwrites the listed rows (creating new IDs) while readers
// go on.
void save_delta(const Model& model, const std::string& path);
void apply_delta(Model& model, const std::string& path);

// What a file is (full snapshot or delta) and its place in a lineage, from its verified
// header alone.
struct SnapshotPosition {
  bool full;
  uint64_t lineage;
  uint64_t sequence;
};
SnapshotPosition peek_snapshot(const std::string& path);

}  // namespace rtrec
