// The compact scan's kernels, chosen once at run time (internal to compact_rows.cpp and
// compact_kernels.cpp): AVX-512 VNNI, AVX2 or portable loops; RTREC_COMPACT_KERNEL=avx2 or
// =portable asks for a lower one (tests check every kernel against the exact scan).
#pragma once

#include <cstdint>

#include "rtrec/compact_rows.hpp"

namespace rtrec {
namespace compact_kernels {

constexpr uint32_t kRows = CompactRows::kBlockRows;

// What `score` computes for `blocks` blocks of 16 rows of a chunk: the exact integer dot
// product d_r = <query codes, row codes> (codes stored + 128, `code_bytes` a row), then
// scores[r] = query scale x scale[r] x d_r (+ biases[r] unless null), in one pass so the
// dot products never leave registers.
struct Block {
  const uint8_t* codes;
  uint32_t code_bytes;
  const int8_t* query;
  int32_t code_sum;
  float query_scale;
  const float* scale;
  const float* biases;
};

struct Kernels {
  void (*score)(const Block& in, uint32_t blocks, float* scores);
  // Encodes one row (stride floats, zero padded) into `codes` (code_bytes >= stride) and its
  // scale max|v| / 127: code = round(v x 127 / max|v|) + 128, rounding half to even; a zero
  // or non-finite row encodes as zeros.
  void (*encode)(const float* v, uint32_t stride, uint32_t code_bytes, uint8_t* codes, float* scale);
  const char* name;
};

const Kernels& kernels() noexcept;

}  // namespace compact_kernels
}  // namespace rtrec
