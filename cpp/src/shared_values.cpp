#include "shared_values.hpp"

namespace rtrec {

void copy_values(float* to, const float* from, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) to[i] = from[i];
}

void add_values(float* to, const float* increment, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) to[i] += increment[i];
}

}  // namespace rtrec
