// SIMD helpers shared by the kernel translation units (kernels.cpp, tower.cpp): 16-float
// blocks in GCC/Clang vector types, forced inlining into per-ISA clones. Internal header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

// Portable builds target baseline x86-64 (SSE2). On x86-64 Linux with GCC we also compile an
// AVX2/FMA-era clone of each hot kernel and let the loader pick it at start-up (ifunc), so a
// default wheel is fast on current CPUs and still runs on old ones. Skipped when the whole
// build already targets the host CPU (RTREC_NATIVE_ARCH).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(RTREC_NATIVE_ARCH_BUILD)
#define RTREC_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RTREC_HOT
#endif
// Helpers are forced inline so that each clone compiles them for its own instruction set.
#if defined(__GNUC__)
#define RTREC_INLINE inline __attribute__((always_inline))
#else
#define RTREC_INLINE inline
#endif

namespace rtrec {
namespace simd {

constexpr float kAdagradEpsilon = 1e-8f;

RTREC_INLINE float clip(float g, float c) noexcept { return std::min(std::max(g, -c), c); }

// Vectors are padded to a multiple of 16 floats, so dot products run on whole 16-float
// blocks held in a GCC/Clang vector type: the compiler lowers it to 4 SSE, 2 AVX or 1
// AVX-512 operations per block in each clone, with no scalar tail and no need for
// -ffast-math reassociation. The horizontal sum is a fixed tree, so results are
// deterministic for a given build and CPU.
// Two 8-float accumulators (16 lanes); 64-byte vector types would be passed through memory
// on targets without AVX-512.
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec4 __attribute__((vector_size(16)));
constexpr size_t kLanes = 16;

struct Lanes {
  Vec8 lo = {}, hi = {};
};

RTREC_INLINE Vec8 load8(const float* p) noexcept {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

RTREC_INLINE float sum_lanes(const Lanes& l) noexcept {
  const Vec8 h = l.lo + l.hi;
  Vec4 a, b;
  std::memcpy(&a, &h, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&h) + sizeof a, sizeof b);
  const Vec4 q = a + b;
  return (q[0] + q[2]) + (q[1] + q[3]);
}

RTREC_INLINE float dot_padded(const float* a, const float* b, uint32_t stride) noexcept {
  Lanes acc;
  for (size_t k = 0; k < stride; k += kLanes) {
    acc.lo += load8(a + k) * load8(b + k);
    acc.hi += load8(a + k + 8) * load8(b + k + 8);
  }
  return sum_lanes(acc);
}

// Sums the 8 lanes of one vector in a fixed tree.
RTREC_INLINE float sum8(const Vec8& h) noexcept {
  Vec4 a, b;
  std::memcpy(&a, &h, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&h) + sizeof a, sizeof b);
  const Vec4 q = a + b;
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// <a, b - c> with the same lane structure.
RTREC_INLINE float dot_difference(const float* a, const float* b, const float* c, uint32_t stride) noexcept {
  Lanes acc;
  for (size_t k = 0; k < stride; k += kLanes) {
    acc.lo += load8(a + k) * (load8(b + k) - load8(c + k));
    acc.hi += load8(a + k + 8) * (load8(b + k + 8) - load8(c + k + 8));
  }
  return sum_lanes(acc);
}

// Sums 16 lane values in a fixed tree (deterministic for a given build and CPU).
RTREC_INLINE float sum16(const float* lanes) noexcept {
  Lanes l;
  l.lo = load8(lanes);
  l.hi = load8(lanes + 8);
  return sum_lanes(l);
}

// One parameter's optimizer step from its gradient g: returns the amount to subtract and,
// under AdaGrad, updates `acc` (the new accumulator value, not yet written to the row).
template <bool kAdagrad>
RTREC_INLINE float step_of(float g, float lr, float& acc) noexcept {
  if (kAdagrad) {
    acc += g * g;
    return lr * g / (std::sqrt(acc) + kAdagradEpsilon);
  }
  return lr * g;
}

// (x - x) is 0 for finite x and NaN for inf/NaN, and unlike std::isfinite it vectorises:
// summing it over everything a step would write flags any non-finite value.
RTREC_INLINE float nonfinite_flag(float x) noexcept { return x - x; }

}  // namespace simd
}  // namespace rtrec
