#include "rtrec/compact_rows.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compact_kernels.hpp"

namespace rtrec {

using compact_kernels::kernels;

CompactRows::Chunk::Chunk(uint32_t code_bytes, SlabStorage& storage) {
  const size_t bytes = size_t(kChunkRows) * code_bytes;  // a multiple of 64
  codes = static_cast<uint8_t*>(storage.take(bytes));
  scales = static_cast<float*>(storage.take(kChunkRows * sizeof(float)));
  std::memset(codes, 128, bytes);  // code 0
  std::memset(scales, 0, kChunkRows * sizeof(float));
}

CompactRows::CompactRows(uint32_t dim, uint32_t stride)
    : dim_(dim), stride_(stride), code_bytes_((dim + 63) / 64 * 64) {}

const char* CompactRows::kernel_name() noexcept { return kernels().name; }

void CompactRows::reserve(uint32_t rows) {
  if (rows == 0) return;
  const uint32_t last = (rows - 1) >> kChunkShift;
  if (has_chunk(last)) return;
  std::lock_guard<std::mutex> lock(grow_mutex_);
  directory_.ensure(last, code_bytes_, storage_);
}

CompactRows::Chunk* CompactRows::chunk_for(uint32_t row) {
  reserve(row + 1);
  return directory_.get(row >> kChunkShift);
}

void CompactRows::prepare(const float* query, Query& out) const {
  out.codes.assign(code_bytes_, 0);
  float top = 0.0f;
  for (uint32_t d = 0; d < dim_; ++d) top = std::max(top, std::fabs(query[d]));
  out.code_sum = 0;
  if (!(top > 0.0f) || !std::isfinite(top)) {  // a zero query: every row scores its bias
    out.scale = 0.0f;
    return;
  }
  const float inverse = 127.0f / top;
  for (uint32_t d = 0; d < dim_; ++d) {
    const long code = std::lrint(query[d] * inverse);
    out.codes[d] = static_cast<int8_t>(std::min(127L, std::max(-127L, code)));
    out.code_sum += out.codes[d];
  }
  out.scale = top / 127.0f;
}

void CompactRows::write(uint32_t row, const float* vector) {
  Chunk* c = chunk_for(row);
  const uint32_t o = row & (kChunkRows - 1);
  kernels().encode(vector, stride_, code_bytes_, c->codes + size_t(o) * code_bytes_, c->scales + o);
}

void CompactRows::clear(uint32_t row) noexcept {
  if (!has_chunk(row >> kChunkShift)) return;
  Chunk* c = directory_.get(row >> kChunkShift);
  const uint32_t o = row & (kChunkRows - 1);
  c->scales[o] = 0.0f;
}

void CompactRows::prefetch(uint32_t row) const noexcept {
  if (!has_chunk(row >> kChunkShift)) return;
  const Chunk* c = directory_.get(row >> kChunkShift);
  const uint32_t o = row & (kChunkRows - 1);
  const uint8_t* codes = c->codes + size_t(o) * code_bytes_;
  for (uint32_t b = 0; b < code_bytes_; b += 64) __builtin_prefetch(codes + b, 1, 3);
  __builtin_prefetch(c->scales + o, 1, 3);
}

void CompactRows::score(uint32_t c, const Query& query, uint32_t rows, const float* biases,
                        float* scores) const noexcept {
  const Chunk* chunk = directory_.get(c);
  const compact_kernels::Block in{chunk->codes, code_bytes_, query.codes.data(), query.code_sum, query.scale,
                 chunk->scales, biases};
  // Whole blocks (a chunk's arrays, and `scores`, hold kChunkRows rows): scores past `rows`
  // are junk the caller ignores.
  kernels().score(in, (rows + kBlockRows - 1) / kBlockRows, scores);
}

uint64_t CompactRows::memory_bytes() const noexcept {
  return uint64_t(directory_.allocated()) * kChunkRows * bytes_per_row();
}

}  // namespace rtrec
