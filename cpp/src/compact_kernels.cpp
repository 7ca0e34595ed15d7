// The compact scan's kernels (see compact_kernels.hpp). Value accesses only: this file is
// compiled without TSan instrumentation, like kernels.cpp (see CMakeLists.txt), so that
// compact_rows.cpp's structure (chunks, their growth) stays checked.
#include "compact_kernels.hpp"

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
namespace compact_kernels {
namespace {




void score_portable(const Block& in, uint32_t blocks, float* scores) {
  for (uint32_t r = 0; r < blocks * kRows; ++r) {
    const uint8_t* row = in.codes + size_t(r) * in.code_bytes;
    int32_t d = 0;
    for (uint32_t j = 0; j < in.code_bytes; ++j) d += (int32_t(row[j]) - 128) * in.query[j];
    scores[r] = in.query_scale * in.scale[r] * float(d) + (in.biases != nullptr ? in.biases[r] : 0.0f);
  }
}

#ifdef RTREC_X86_KERNELS
// AVX-512 VNNI: one vpdpbusd multiplies a row's 64 unsigned codes (code + 128) by 64 signed
// query codes into 16 partial sums; 16 rows' partial sums are then reduced together by a
// transpose (the +128 is removed once at the end: 128 x the query's code sum). kWords: 64-byte
// words a row (0: read from `in`); fixed for the usual dims so the loop is straight-line
// with the query in registers.
template <uint32_t kWords>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void score_vnni(const Block& in, uint32_t blocks,
                                                                        float* scores) {
  const __m512i offset = _mm512_set1_epi32(128 * in.code_sum);
  const __m512 query_scale = _mm512_set1_ps(in.query_scale);
  const uint32_t words = kWords != 0 ? kWords : in.code_bytes / 64;
  const size_t row_bytes = size_t(words) * 64;
  __m512i q[kWords != 0 ? kWords : 1];
  for (uint32_t w = 0; w < (kWords != 0 ? kWords : 1); ++w) q[w] = _mm512_loadu_si512(in.query + 64 * size_t(w));
  for (uint32_t b = 0; b < blocks; ++b) {
    const uint8_t* block = in.codes + size_t(b) * kRows * row_bytes;
    __m512i a[kRows];
    for (uint32_t r = 0; r < kRows; ++r) a[r] = _mm512_setzero_si512();
    for (uint32_t w = 0; w < words; ++w) {
      const __m512i qw = kWords != 0 ? q[w] : _mm512_loadu_si512(in.query + 64 * size_t(w));
      for (uint32_t r = 0; r < kRows; ++r)
        a[r] = _mm512_dpbusd_epi32(a[r], _mm512_load_si512(block + r * row_bytes + 64 * size_t(w)), qw);
    }
    // 16 vectors of 16 partial sums -> one vector of 16 row sums.
    __m512i x[8], y[4], z[2];
    for (uint32_t i = 0; i < 8; ++i)
      x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
    for (uint32_t i = 0; i < 4; ++i)
      y[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * i], x[2 * i + 1]), _mm512_unpackhi_epi64(x[2 * i], x[2 * i + 1]));
    // y[i], 128-bit lane L: rows 4i..4i+3, partial L. Now sum over the lanes.
    for (uint32_t i = 0; i < 2; ++i)
      z[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(y[2 * i], y[2 * i + 1], 0x88), _mm512_shuffle_i32x4(y[2 * i], y[2 * i + 1], 0xdd));
    const __m512i sums = _mm512_add_epi32(_mm512_shuffle_i32x4(z[0], z[1], 0x88), _mm512_shuffle_i32x4(z[0], z[1], 0xdd));
    const size_t at = size_t(b) * kRows;
    const __m512 dots = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, offset));
    __m512 s = _mm512_mul_ps(_mm512_mul_ps(query_scale, _mm512_loadu_ps(in.scale + at)), dots);
    if (in.biases != nullptr) s = _mm512_add_ps(s, _mm512_loadu_ps(in.biases + at));
    _mm512_storeu_ps(scores + at, s);
  }
}

void score_vnni_any(const Block& in, uint32_t blocks, float* scores) {
  switch (in.code_bytes) {
    case 64: score_vnni<1>(in, blocks, scores); return;
    case 128: score_vnni<2>(in, blocks, scores); return;
    default: score_vnni<0>(in, blocks, scores); return;
  }
}

// AVX2: codes back to signed (xor 0x80), the query's signs moved onto them so that maddubs
// multiplies |q| (unsigned) by sign(q) x code (signed); no pair sum can saturate
// (2 x 127 x 128 < 2^15). 8 rows' partial sums are reduced together by hadd.
__attribute__((target("avx2,fma"))) void score_avx2(const Block& in, uint32_t blocks, float* scores) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 query_scale = _mm256_set1_ps(in.query_scale);
  const uint32_t words = in.code_bytes / 32;
  for (uint32_t h = 0; h < 2 * blocks; ++h) {  // 8 rows at a time
    const uint8_t* block = in.codes + size_t(h) * 8 * in.code_bytes;
    __m256i a[8];
    for (uint32_t r = 0; r < 8; ++r) a[r] = _mm256_setzero_si256();
    for (uint32_t w = 0; w < words; ++w) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.query + 32 * size_t(w)));
      const __m256i q_abs = _mm256_abs_epi8(q);
      for (uint32_t r = 0; r < 8; ++r) {
        const __m256i v = _mm256_xor_si256(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(block + size_t(r) * in.code_bytes + 32 * size_t(w))), flip);
        a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(v, q)), ones));
      }
    }
    const __m256i g0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    const __m256i g1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
    const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(g0, g1, 0x20), _mm256_permute2x128_si256(g0, g1, 0x31));
    const size_t at = size_t(h) * 8;
    __m256 s = _mm256_mul_ps(_mm256_mul_ps(query_scale, _mm256_loadu_ps(in.scale + at)), _mm256_cvtepi32_ps(sums));
    if (in.biases != nullptr) s = _mm256_add_ps(s, _mm256_loadu_ps(in.biases + at));
    _mm256_storeu_ps(scores + at, s);
  }
}
#endif


// The zero code (128) into n bytes by plain stores. A memset call here would reach TSan's
// interceptor, which would report two trainers encoding one row at once: a Hogwild value race
// like the float rows' (this file is not instrumented, see CMakeLists.txt). The empty asm
// keeps the compiler from turning the loop back into a memset call.
void fill_zero_codes(uint8_t* p, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) {
    p[i] = 128;
#if defined(__GNUC__)
    asm volatile("" ::: "memory");
#endif
  }
}


bool usable(float top, float squares) noexcept {
  return top > 0.0f && std::isfinite(top) && std::isfinite(squares) && squares > 0.0f;
}

void encode_portable(const float* v, uint32_t stride, uint32_t code_bytes, uint8_t* codes, float* scale) {
  float top = 0.0f, squares = 0.0f;
  for (uint32_t d = 0; d < stride; ++d) {
    top = std::max(top, std::fabs(v[d]));
    squares += v[d] * v[d];
  }
  if (!usable(top, squares)) {
    fill_zero_codes(codes, code_bytes);
    *scale = 0.0f;
    return;
  }
  const float inverse = 127.0f / top;
  for (uint32_t d = 0; d < stride; ++d)
    codes[d] = static_cast<uint8_t>(std::min(127L, std::max(-127L, std::lrint(v[d] * inverse))) + 128);
  fill_zero_codes(codes + stride, code_bytes - stride);
  *scale = top / 127.0f;
}

#ifdef RTREC_X86_KERNELS
// AVX2 (the update path encodes a row per sampled negative: a scalar loop cost more than the
// step's own work for those rows). 32 codes at a time: cvtps (round to even), two packs, one
// lane fix-up; a stride of 16 takes the portable path.
__attribute__((target("avx2,fma"))) void encode_avx2(const float* v, uint32_t stride, uint32_t code_bytes,
                                                      uint8_t* codes, float* scale) {
  if (stride % 32 != 0) {
    encode_portable(v, stride, code_bytes, codes, scale);
    return;
  }
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 top8 = _mm256_setzero_ps(), squares8 = _mm256_setzero_ps();
  for (uint32_t k = 0; k < stride; k += 8) {
    const __m256 x = _mm256_loadu_ps(v + k);
    top8 = _mm256_max_ps(top8, _mm256_and_ps(x, magnitude));
    squares8 = _mm256_fmadd_ps(x, x, squares8);
  }
  __m128 t = _mm_max_ps(_mm256_castps256_ps128(top8), _mm256_extractf128_ps(top8, 1));
  t = _mm_max_ps(t, _mm_movehl_ps(t, t));
  t = _mm_max_ss(t, _mm_shuffle_ps(t, t, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(squares8), _mm256_extractf128_ps(squares8, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
  const float top = _mm_cvtss_f32(t), squares = _mm_cvtss_f32(q);
  if (!usable(top, squares)) {
    fill_zero_codes(codes, code_bytes);
    *scale = 0.0f;
    return;
  }
  const __m256 inverse = _mm256_set1_ps(127.0f / top);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (uint32_t k = 0; k < stride; k += 32) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + k), inverse));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + k + 8), inverse));
    const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + k + 16), inverse));
    const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + k + 24), inverse));
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    const __m256i bytes = _mm256_xor_si256(_mm256_permutevar8x32_epi32(packed, order), flip);  // + 128
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + k), bytes);
  }
  fill_zero_codes(codes + stride, code_bytes - stride);
  *scale = top / 127.0f;
}
#endif

}  // namespace

// The best kernel the CPU runs. RTREC_COMPACT_KERNEL=avx2 or =portable asks for a lower one
// (tests check every kernel against the exact scan on one machine).
Kernels choose() noexcept {
  const char* forced = std::getenv("RTREC_COMPACT_KERNEL");
  const std::string ask = forced != nullptr ? forced : "";
  if (ask == "portable") return {score_portable, encode_portable, "portable"};
#ifdef RTREC_X86_KERNELS
  __builtin_cpu_init();
  if (ask != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vnni"))
    return {score_vnni_any, encode_avx2, "avx512-vnni"};
  if (__builtin_cpu_supports("avx2")) return {score_avx2, encode_avx2, "avx2"};
#endif
  return {score_portable, encode_portable, "portable"};
}



const Kernels& kernels() noexcept {
  static const Kernels chosen = choose();
  return chosen;
}

}  // namespace compact_kernels
}  // namespace rtrec
