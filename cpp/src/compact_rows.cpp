#include "rtrec/compact_rows.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define RTREC_X86_KERNELS 1
#endif

namespace rtrec {
namespace {

constexpr uint32_t kBlockBytes = CompactRows::kBlockRows * 4;  // one group of 4 dimensions of a block

// What a kernel computes for `blocks` blocks of 16 rows of a chunk: the exact integer dot
// product d_r = <query codes, row codes> (`codes`: interleaved, stored as code + 128), then
// scores[r] = query scale x factor[r] x d_r (+ biases[r] unless null), in one pass so the
// dot products never leave registers.
struct Block {
  const uint8_t* codes;
  uint32_t groups;
  const int8_t* query;
  int32_t code_sum;
  float query_scale;
  const float* factor;
  const float* biases;
};
using ScoreKernel = void (*)(const Block& in, uint32_t blocks, float* scores);

void score_portable(const Block& in, uint32_t blocks, float* scores) {
  for (uint32_t b = 0; b < blocks; ++b) {
    int32_t acc[CompactRows::kBlockRows] = {};
    const uint8_t* block = in.codes + size_t(b) * in.groups * kBlockBytes;
    for (uint32_t g = 0; g < in.groups; ++g) {
      const uint8_t* p = block + size_t(g) * kBlockBytes;
      const int8_t* q = in.query + 4 * g;
      for (uint32_t r = 0; r < CompactRows::kBlockRows; ++r)
        for (uint32_t j = 0; j < 4; ++j) acc[r] += (int32_t(p[4 * r + j]) - 128) * q[j];
    }
    for (uint32_t r = 0; r < CompactRows::kBlockRows; ++r) {
      const uint32_t row = b * CompactRows::kBlockRows + r;
      scores[row] = in.query_scale * in.factor[row] * float(acc[r]) + (in.biases != nullptr ? in.biases[row] : 0.0f);
    }
  }
}

#ifdef RTREC_X86_KERNELS
// AVX2: codes back to signed (xor 0x80), the query's signs moved onto them so that
// maddubs multiplies |q| (unsigned) by sign(q) x code (signed); no pair sum can saturate
// (2 x 127 x 128 < 2^15).
__attribute__((target("avx2,fma"))) void score_avx2(const Block& in, uint32_t blocks, float* scores) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 query_scale = _mm256_set1_ps(in.query_scale);
  for (uint32_t b = 0; b < blocks; ++b) {
    const uint8_t* block = in.codes + size_t(b) * in.groups * kBlockBytes;
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (uint32_t g = 0; g < in.groups; ++g) {
      int32_t word;
      std::memcpy(&word, in.query + 4 * g, 4);
      const __m256i q = _mm256_set1_epi32(word);
      const __m256i q_abs = _mm256_abs_epi8(q);
      const uint8_t* p = block + size_t(g) * kBlockBytes;
      const __m256i v0 = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)), flip);
      const __m256i v1 = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32)), flip);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(v0, q)), ones));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(v1, q)), ones));
    }
    const size_t at = size_t(b) * 16;
    __m256 s0 = _mm256_mul_ps(_mm256_mul_ps(query_scale, _mm256_loadu_ps(in.factor + at)), _mm256_cvtepi32_ps(lo));
    __m256 s1 = _mm256_mul_ps(_mm256_mul_ps(query_scale, _mm256_loadu_ps(in.factor + at + 8)), _mm256_cvtepi32_ps(hi));
    if (in.biases != nullptr) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(in.biases + at));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(in.biases + at + 8));
    }
    _mm256_storeu_ps(scores + at, s0);
    _mm256_storeu_ps(scores + at + 8, s1);
  }
}

// AVX-512 VNNI: one vpdpbusd multiplies 16 rows x 4 dimensions of unsigned codes (code +
// 128) by the signed query and adds them up; the +128 is removed once per row at the end
// (128 x the query's code sum).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void score_vnni(const Block& in, uint32_t blocks,
                                                                        float* scores) {
  const __m512i offset = _mm512_set1_epi32(128 * in.code_sum);
  const __m512 query_scale = _mm512_set1_ps(in.query_scale);
  const uint32_t groups = in.groups;
  const int8_t* query = in.query;
  for (uint32_t b = 0; b < blocks; ++b) {
    const uint8_t* block = in.codes + size_t(b) * groups * kBlockBytes;
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    uint32_t g = 0;
    for (; g + 1 < groups; g += 2) {
      int32_t w0, w1;
      std::memcpy(&w0, query + 4 * g, 4);
      std::memcpy(&w1, query + 4 * g + 4, 4);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_load_si512(block + size_t(g) * kBlockBytes), _mm512_set1_epi32(w0));
      a1 = _mm512_dpbusd_epi32(a1, _mm512_load_si512(block + size_t(g + 1) * kBlockBytes), _mm512_set1_epi32(w1));
    }
    if (g < groups) {
      int32_t w;
      std::memcpy(&w, query + 4 * g, 4);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_load_si512(block + size_t(g) * kBlockBytes), _mm512_set1_epi32(w));
    }
    const size_t at = size_t(b) * 16;
    const __m512 dots = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_add_epi32(a0, a1), offset));
    __m512 s = _mm512_mul_ps(_mm512_mul_ps(query_scale, _mm512_loadu_ps(in.factor + at)), dots);
    if (in.biases != nullptr) s = _mm512_add_ps(s, _mm512_loadu_ps(in.biases + at));
    _mm512_storeu_ps(scores + at, s);
  }
}
#endif

struct Dispatch {
  ScoreKernel kernel;
  const char* name;
};

// The best kernel the CPU runs. RTREC_COMPACT_KERNEL=avx2 or =portable asks for a lower one
// (tests check every kernel against the exact scan on one machine).
Dispatch choose() noexcept {
  const char* forced = std::getenv("RTREC_COMPACT_KERNEL");
  const std::string ask = forced != nullptr ? forced : "";
  if (ask == "portable") return {score_portable, "portable"};
#ifdef RTREC_X86_KERNELS
  __builtin_cpu_init();
  if (ask != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vnni"))
    return {score_vnni, "avx512-vnni"};
  if (__builtin_cpu_supports("avx2")) return {score_avx2, "avx2"};
#endif
  return {score_portable, "portable"};
}

const Dispatch& dispatch() noexcept {
  static const Dispatch d = choose();
  return d;
}

}  // namespace

CompactRows::Chunk::Chunk(uint32_t groups, SlabStorage& storage) {
  const size_t code_bytes = size_t(kChunkRows) * groups * 4;  // a multiple of 64
  codes = static_cast<uint8_t*>(storage.take(code_bytes));
  scale = static_cast<float*>(storage.take(kChunkRows * sizeof(float)));
  cosine_scale = static_cast<float*>(storage.take(kChunkRows * sizeof(float)));
  std::memset(codes, 128, code_bytes);  // code 0
  std::memset(scale, 0, kChunkRows * sizeof(float));
  std::memset(cosine_scale, 0, kChunkRows * sizeof(float));
}

CompactRows::CompactRows(uint32_t dim) : dim_(dim), groups_((dim + 3) / 4) {}

const char* CompactRows::kernel_name() noexcept { return dispatch().name; }

void CompactRows::reserve(uint32_t rows) {
  if (rows == 0) return;
  const uint32_t last = (rows - 1) >> kChunkShift;
  if (has_chunk(last)) return;
  std::lock_guard<std::mutex> lock(grow_mutex_);
  directory_.ensure(last, groups_, storage_);
}

CompactRows::Chunk* CompactRows::chunk_for(uint32_t row) {
  reserve(row + 1);
  return directory_.get(row >> kChunkShift);
}

void CompactRows::prepare(const float* query, Query& out) const {
  out.codes.assign(size_t(groups_) * 4, 0);
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
  uint8_t* at = c->codes + size_t(o / kBlockRows) * groups_ * kBlockBytes + (o % kBlockRows) * 4;
  float top = 0.0f, squares = 0.0f;
  for (uint32_t d = 0; d < dim_; ++d) {
    top = std::max(top, std::fabs(vector[d]));
    squares += vector[d] * vector[d];
  }
  const bool usable = top > 0.0f && std::isfinite(top) && std::isfinite(squares) && squares > 0.0f;
  const float inverse = usable ? 127.0f / top : 0.0f;
  for (uint32_t g = 0; g < groups_; ++g) {
    uint8_t word[4];
    for (uint32_t j = 0; j < 4; ++j) {
      const uint32_t d = 4 * g + j;
      const long code = d < dim_ && usable ? std::lrint(vector[d] * inverse) : 0;
      word[j] = static_cast<uint8_t>(std::min(127L, std::max(-127L, code)) + 128);
    }
    std::memcpy(at + size_t(g) * kBlockBytes, word, 4);
  }
  const float scale = usable ? top / 127.0f : 0.0f;
  c->scale[o] = scale;
  c->cosine_scale[o] = usable ? scale / std::sqrt(squares) : 0.0f;
}

void CompactRows::clear(uint32_t row) noexcept {
  if (!has_chunk(row >> kChunkShift)) return;
  Chunk* c = directory_.get(row >> kChunkShift);
  const uint32_t o = row & (kChunkRows - 1);
  c->scale[o] = 0.0f;
  c->cosine_scale[o] = 0.0f;
}

void CompactRows::score(uint32_t c, const Query& query, uint32_t rows, bool cosine, const float* biases,
                        float* scores) const noexcept {
  const Chunk* chunk = directory_.get(c);
  const Block in{chunk->codes,  groups_, query.codes.data(), query.code_sum, query.scale,
                 cosine ? chunk->cosine_scale : chunk->scale, cosine ? nullptr : biases};
  // Whole blocks (a chunk's arrays, and `scores`, hold kChunkRows rows): scores past `rows`
  // are junk the caller ignores.
  dispatch().kernel(in, (rows + kBlockRows - 1) / kBlockRows, scores);
}

uint64_t CompactRows::memory_bytes() const noexcept {
  return uint64_t(directory_.allocated()) * kChunkRows * bytes_per_row();
}

}  // namespace rtrec
