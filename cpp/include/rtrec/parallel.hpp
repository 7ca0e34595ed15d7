// OpenMP glue: thread counts and carrying exceptions out of parallel regions.
// Built without OpenMP, everything runs on the calling thread and the pragmas are ignored.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

#ifdef RTREC_HAVE_OPENMP
#include <omp.h>
#endif

namespace rtrec {

inline bool openmp_enabled() noexcept {
#ifdef RTREC_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

// 0 means "the OpenMP default", which honours OMP_NUM_THREADS (else all cores).
inline int resolve_threads(int requested) noexcept {
#ifdef RTREC_HAVE_OPENMP
  return requested > 0 ? requested : omp_get_max_threads();
#else
  (void)requested;
  return 1;
#endif
}

inline int thread_index() noexcept {
#ifdef RTREC_HAVE_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() noexcept {
#ifdef RTREC_HAVE_OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// An exception must never unwind out of an OpenMP region (that terminates the process).
// Each worker catches into this; the first one is rethrown after the region has joined.
class ExceptionSlot {
 public:
  template <class F>
  void run(F&& body) noexcept {
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  // Lets the remaining iterations of a failed loop return early.
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
  std::atomic<bool> failed_{false};
};

}  // namespace rtrec
