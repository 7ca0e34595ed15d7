// Where a model stands in its lineage of snapshots and deltas (the protocol is in
// model_persistence.hpp): the deltas of one model are numbered 1, 2, ... and each applies to
// any copy at the previous number, whether that copy followed every delta or loaded a full
// snapshot taken since (a snapshot records the number of the last delta before it). Every
// field is guarded by `mutex`: one save or apply at a time.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace rtrec {

struct LineagePosition {
  uint64_t lineage = 0;   // 0 until the first full snapshot is saved or loaded
  uint64_t sequence = 0;  // last delta saved or applied in that lineage
  uint64_t link = 0;      // id of that delta (the lineage id before the first)
};

struct DeltaLineage {
  mutable std::mutex mutex;
  LineagePosition at;
  uint32_t next_since = 0;        // the next delta holds rows marked >= this generation
  uint64_t hidden_published = 0;  // the hidden-set version the last delta carried
  std::string source_position;    // see Model::set_source_position

  bool started() const noexcept { return at.lineage != 0; }
  // A first full snapshot starts the lineage: the chain starts at the lineage id itself.
  void start(uint64_t id, uint32_t since) noexcept {
    at = LineagePosition{id, 0, id};
    next_since = since;
  }
  // The first snapshot was not written after all: no lineage, no delta can follow.
  void abandon() noexcept { at = LineagePosition{}; }
  // A delta was written at `position`; the next holds rows marked >= `since`.
  void advance(const LineagePosition& position, uint32_t since) noexcept {
    at.sequence = position.sequence;
    at.link = position.link;
    next_since = since;
  }
};

}  // namespace rtrec
