// A tiny test harness for the C++ tests (no framework to download): TEST_CASE registers a
// unit test, STRESS_CASE a multi-threaded stress test. CHECK records a failure and goes on
// (safe from any thread); REQUIRE records it and returns from the test function.
//
// Each test executable runs `unit` cases, `stress` cases, or the cases named on the
// command line, prints one line per case and a closing "N passed, N failed" line, and
// exits non-zero if any check failed (ctest registers `<file>` and `<file>.stress`).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace rtrec_test {

struct Case {
  const char* name;
  bool stress;
  void (*run)();
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

struct Register {
  Register(const char* name, bool stress, void (*run)()) { cases().push_back(Case{name, stress, run}); }
};

inline std::atomic<int>& failures() {
  static std::atomic<int> count{0};
  return count;
}

inline void fail(const char* file, int line, const std::string& what) {
  static std::mutex mutex;
  const int n = failures().fetch_add(1) + 1;
  std::lock_guard<std::mutex> lock(mutex);
  if (n <= 20) std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what.c_str());
  if (n == 20) std::fprintf(stderr, "(further failures not printed)\n");
}

// A path for a scratch file of this process: in $TMPDIR if set, else in /dev/shm when it is
// there (a RAM disk: the snapshot tests write thousands of small files), else here.
inline std::string scratch_path(const std::string& name) {
  std::string dir = ".";
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') dir = tmp;
  else if (::access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
  return dir + "/rtrec-test-" + std::to_string(::getpid()) + "-" + name;
}

template <class A, class B>
std::string describe(const char* a_text, const char* b_text, const A& a, const B& b) {
  std::ostringstream out;
  out << a_text << " == " << b_text << " (" << a << " vs " << b << ")";
  return out.str();
}

}  // namespace rtrec_test

#define RTREC_TEST_CONCAT2(a, b) a##b
#define RTREC_TEST_CONCAT(a, b) RTREC_TEST_CONCAT2(a, b)
#define TEST_CASE(name)                                                                     \
  static void name();                                                                       \
  static ::rtrec_test::Register RTREC_TEST_CONCAT(register_, name)(#name, false, &name); \
  static void name()
#define STRESS_CASE(name)                                                                   \
  static void name();                                                                       \
  static ::rtrec_test::Register RTREC_TEST_CONCAT(register_, name)(#name, true, &name);  \
  static void name()

#define CHECK(cond)                                                 \
  do {                                                              \
    if (!(cond)) ::rtrec_test::fail(__FILE__, __LINE__, #cond);     \
  } while (0)
#define CHECK_EQ(a, b)                                                                                   \
  do {                                                                                                   \
    const auto& rtrec_a_ = (a);                                                                          \
    const auto& rtrec_b_ = (b);                                                                          \
    if (!(rtrec_a_ == rtrec_b_)) ::rtrec_test::fail(__FILE__, __LINE__, ::rtrec_test::describe(#a, #b, rtrec_a_, rtrec_b_)); \
  } while (0)
#define REQUIRE(cond)                                               \
  do {                                                              \
    if (!(cond)) {                                                  \
      ::rtrec_test::fail(__FILE__, __LINE__, #cond);                \
      return;                                                       \
    }                                                               \
  } while (0)
// `expr` must throw `type` (a subclass counts); anything else is a failure.
#define CHECK_THROWS(expr, type)                                                                    \
  do {                                                                                              \
    bool rtrec_thrown_ = false;                                                                     \
    try {                                                                                           \
      (void)(expr);                                                                                 \
    } catch (const type&) {                                                                         \
      rtrec_thrown_ = true;                                                                         \
    } catch (...) {                                                                                 \
      ::rtrec_test::fail(__FILE__, __LINE__, #expr " threw something other than " #type);           \
      rtrec_thrown_ = true;                                                                         \
    }                                                                                               \
    if (!rtrec_thrown_) ::rtrec_test::fail(__FILE__, __LINE__, #expr " did not throw " #type);      \
  } while (0)
