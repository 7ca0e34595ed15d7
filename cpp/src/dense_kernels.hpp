// Small dense matrix products for the two_tower tower, on row-major matrices whose rows are
// padded to multiples of 16 floats. Each kernel keeps a register tile of several
// independent accumulators, so the loops run at the speed of the FMA units instead of
// waiting on one accumulator's latency (a plain dot product of a row does). Sums are in a
// fixed order: results are deterministic for a given build and CPU. Internal header;
// include into RTREC_HOT functions only (forced inline into each clone).
#pragma once

#include <cstdint>
#include <cstring>

#include "simd.hpp"

namespace rtrec {
namespace dense {
using namespace simd;

RTREC_INLINE float hsum8(const Vec8& v) noexcept {
  float x[8];
  std::memcpy(x, &v, sizeof x);
  return ((x[0] + x[4]) + (x[2] + x[6])) + ((x[1] + x[5]) + (x[3] + x[7]));
}

// C[e][j] = bias[j] + sum_t A[e][t] * B[j][t] for e < E, j < J, t < K (K a multiple of 16):
// "A times B transposed", each output a dot product of two rows.
template <int EB, int JB>
RTREC_INLINE void nt_tile(const float* A, uint32_t lda, const float* B, uint32_t ldb, uint32_t K, const float* bias,
                          float* C, uint32_t ldc) noexcept {
  Vec8 acc[EB][JB];
  for (int e = 0; e < EB; ++e)
    for (int j = 0; j < JB; ++j) acc[e][j] = Vec8{};
  for (uint32_t k = 0; k < K; k += 8) {
    Vec8 a[EB];
    for (int e = 0; e < EB; ++e) a[e] = load8(A + size_t(e) * lda + k);
    for (int j = 0; j < JB; ++j) {
      const Vec8 b = load8(B + size_t(j) * ldb + k);
      for (int e = 0; e < EB; ++e) acc[e][j] += a[e] * b;
    }
  }
  for (int e = 0; e < EB; ++e)
    for (int j = 0; j < JB; ++j) C[size_t(e) * ldc + j] = (bias != nullptr ? bias[j] : 0.0f) + hsum8(acc[e][j]);
}

RTREC_INLINE void gemm_nt(const float* A, uint32_t lda, const float* B, uint32_t ldb, uint32_t E, uint32_t J, uint32_t K,
                          const float* bias, float* C, uint32_t ldc) noexcept {
  uint32_t e = 0;
  for (; e + 2 <= E; e += 2) {
    uint32_t j = 0;
    for (; j + 4 <= J; j += 4)
      nt_tile<2, 4>(A + size_t(e) * lda, lda, B + size_t(j) * ldb, ldb, K, bias ? bias + j : nullptr, C + size_t(e) * ldc + j, ldc);
    for (; j < J; ++j)
      nt_tile<2, 1>(A + size_t(e) * lda, lda, B + size_t(j) * ldb, ldb, K, bias ? bias + j : nullptr, C + size_t(e) * ldc + j, ldc);
  }
  for (; e < E; ++e) {
    uint32_t j = 0;
    for (; j + 8 <= J; j += 8)
      nt_tile<1, 8>(A + size_t(e) * lda, lda, B + size_t(j) * ldb, ldb, K, bias ? bias + j : nullptr, C + size_t(e) * ldc + j, ldc);
    for (; j < J; ++j)
      nt_tile<1, 1>(A + size_t(e) * lda, lda, B + size_t(j) * ldb, ldb, K, bias ? bias + j : nullptr, C + size_t(e) * ldc + j, ldc);
  }
}

// C[e][c] += sum_j A[e][j] * B[j][c] for e < E, j < J, c < N (N a multiple of 16): rows of B
// scaled and added. A column j whose A entries are all zero (a ReLU unit that is off for
// every event of the tile) costs one comparison.
template <int EB>
RTREC_INLINE void nn_tile(const float* A, uint32_t lda, const float* B, uint32_t ldb, uint32_t J, uint32_t col, float* C,
                          uint32_t ldc) noexcept {
  Vec8 lo[EB], hi[EB];
  for (int e = 0; e < EB; ++e) {
    lo[e] = load8(C + size_t(e) * ldc + col);
    hi[e] = load8(C + size_t(e) * ldc + col + 8);
  }
  for (uint32_t j = 0; j < J; ++j) {
    float a[EB];
    bool any = false;
    for (int e = 0; e < EB; ++e) {
      a[e] = A[size_t(e) * lda + j];
      any |= a[e] != 0.0f;
    }
    if (!any) continue;
    const Vec8 b0 = load8(B + size_t(j) * ldb + col), b1 = load8(B + size_t(j) * ldb + col + 8);
    for (int e = 0; e < EB; ++e) {
      lo[e] += a[e] * b0;
      hi[e] += a[e] * b1;
    }
  }
  for (int e = 0; e < EB; ++e) {
    std::memcpy(C + size_t(e) * ldc + col, &lo[e], sizeof(Vec8));
    std::memcpy(C + size_t(e) * ldc + col + 8, &hi[e], sizeof(Vec8));
  }
}

// One event: each nonzero A entry adds a row of B, whole (a row at a time keeps the loop
// long and the check of A single).
RTREC_INLINE void axpy_rows(const float* A, const float* B, uint32_t ldb, uint32_t J, uint32_t N, float* __restrict C) noexcept {
  for (uint32_t j = 0; j < J; ++j) {
    const float a = A[j];
    if (a == 0.0f) continue;
    const float* __restrict b = B + size_t(j) * ldb;
    for (uint32_t c = 0; c < N; ++c) C[c] += a * b[c];
  }
}

RTREC_INLINE void gemm_nn(const float* A, uint32_t lda, const float* B, uint32_t ldb, uint32_t E, uint32_t J, uint32_t N,
                          float* C, uint32_t ldc) noexcept {
  if (E == 1) return axpy_rows(A, B, ldb, J, N, C);
  uint32_t e = 0;
  for (; e + 4 <= E; e += 4)
    for (uint32_t col = 0; col < N; col += 16) nn_tile<4>(A + size_t(e) * lda, lda, B, ldb, J, col, C + size_t(e) * ldc, ldc);
  for (; e < E; ++e)
    for (uint32_t col = 0; col < N; col += 16) nn_tile<1>(A + size_t(e) * lda, lda, B, ldb, J, col, C + size_t(e) * ldc, ldc);
}

// G[r][c] = sum_e A[e][j0 + r] * B[e][c] for r < RB and columns [col, col + 16): one 16-wide
// column block of RB rows of "A transposed times B" (a sum of the events' outer products).
template <int RB>
RTREC_INLINE void tn_tile(const float* A, uint32_t lda, uint32_t j0, const float* B, uint32_t ldb, uint32_t E,
                          uint32_t col, Vec8 (&lo)[RB], Vec8 (&hi)[RB]) noexcept {
  for (int r = 0; r < RB; ++r) lo[r] = hi[r] = Vec8{};
  for (uint32_t e = 0; e < E; ++e) {
    const float* a = A + size_t(e) * lda + j0;
    const Vec8 b0 = load8(B + size_t(e) * ldb + col), b1 = load8(B + size_t(e) * ldb + col + 8);
    for (int r = 0; r < RB; ++r) {
      lo[r] += a[r] * b0;
      hi[r] += a[r] * b1;
    }
  }
}

}  // namespace dense
}  // namespace rtrec
