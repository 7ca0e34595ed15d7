// Copying and adding the values of shared rows (model_shared.cpp). Value kernels, like those
// of kernels.cpp: they read and write row values while training and serving threads do too
// (Hogwild by design), so TSan builds compile shared_values.cpp without instrumentation
// (CMakeLists.txt); the structure around them (which row, whether it is live) is found in
// instrumented code.
#pragma once

#include <cstddef>

namespace rtrec {

void copy_values(float* to, const float* from, size_t n) noexcept;
void add_values(float* to, const float* increment, size_t n) noexcept;

}  // namespace rtrec
