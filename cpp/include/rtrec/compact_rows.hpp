// A compact shadow of an item table's scored vectors, for retrieval="compact": each row's
// vector as int8 codes with one scale per row (v ~ scale x code), so a full scan reads
// dim + 4 bytes per item instead of 4 x stride (68 B against 256 B at dim 64). The scan
// ranks by these approximate scores, keeps a few hundred candidates and re-scores them
// exactly in float32 (topk.cpp), so reported scores are the exact ones.
//
// Rows live in chunks of EmbeddingTable::kChunkRows rows that never move (a ChunkDirectory,
// readers lock-free); a chunk is made when its first row is written. A row's codes are
// contiguous (dim rounded up to 64 bytes: one cache line at dim 64) and its two scales sit
// side by side, so writing a row touches two cache lines: the write rides along with the
// training step (measured: benchmarks/bench_compact_topk.py, update_one). The scan kernel
// multiplies 16 rows by the query (AVX-512 VNNI: one vpdpbusd a row per 64 dimensions; AVX2;
// a plain loop elsewhere; runtime dispatch) and reduces the 16 rows' partial sums together.
//
// A row is written by the same call that writes its float row (training steps, feature
// setting, imports) with plain stores, like the float rows themselves (Hogwild): a racing
// reader may see a mixture of the previous and the new codes of that same item, never
// another item's (a recycled row is cleared before it is handed to a new item). Since the
// candidates are re-scored from the float rows, such a tear can only change which rows are
// re-scored, not a reported score.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "rtrec/chunk_directory.hpp"
#include "rtrec/huge_pages.hpp"

namespace rtrec {

class CompactRows {
 public:
  static constexpr uint32_t kChunkShift = 10;  // as EmbeddingTable
  static constexpr uint32_t kChunkRows = 1u << kChunkShift;
  static constexpr uint32_t kBlockRows = 16;  // rows a kernel step scores together

  // `stride`: the item table's floats per row (dim rounded up to 16, zero padded).
  CompactRows(uint32_t dim, uint32_t stride);

  // A query quantised once per call: int8 codes (code_bytes, zero padded), its scale, and
  // the sum of its codes (the AVX-512 kernel reads row codes as unsigned, offset by 128).
  struct Query {
    std::vector<int8_t> codes;
    float scale = 0.0f;
    int32_t code_sum = 0;
  };
  void prepare(const float* query, Query& out) const;

  // Encodes `vector` (dim floats) as row `row`, making its chunk if needed (may throw
  // std::bad_alloc only then; the model's steps make chunks ahead, see reserve).
  void write(uint32_t row, const float* vector);
  // Makes the chunks of rows [0, rows) (a new chunk's rows score 0 until written).
  void reserve(uint32_t rows);
  // A row leaving its item (eviction, before the row is reused): scores 0 until written.
  void clear(uint32_t row) noexcept;
  // Hint that `row` will be written soon: the update path asks before the step, so the
  // shadow's two lines arrive while the step computes.
  void prefetch(uint32_t row) const noexcept;

  // Whether rows of chunk `c` are held (a chunk is made before its rows are published to
  // readers when the model reserves ahead; a scan falls back to exact scoring otherwise).
  bool has_chunk(uint32_t c) const noexcept { return c < directory_.allocated(); }

  // scores[r] ~ <query, v_r> + biases[r] (biases null: no bias) for rows [0, rows) of chunk c.
  void score(uint32_t c, const Query& query, uint32_t rows, const float* biases, float* scores) const noexcept;

  uint64_t memory_bytes() const noexcept;
  uint32_t bytes_per_row() const noexcept { return code_bytes_ + sizeof(float); }
  // Which kernel the CPU runs: "avx512-vnni", "avx2" or "portable".
  static const char* kernel_name() noexcept;

 private:
  struct Chunk {
    Chunk(uint32_t code_bytes, SlabStorage& storage);
    uint8_t* codes;  // kChunkRows x code_bytes, row by row; each code stored + 128
    float* scales;   // per row: v ~ scale x code (0: a zero row)
  };
  Chunk* chunk_for(uint32_t row);

  const uint32_t dim_;
  const uint32_t stride_;      // floats of a row in the item table (dim rounded up to 16)
  const uint32_t code_bytes_;  // dim rounded up to 64
  std::mutex grow_mutex_;
  SlabStorage storage_;  // outlives directory_: declared first
  ChunkDirectory<Chunk> directory_;
};

}  // namespace rtrec
