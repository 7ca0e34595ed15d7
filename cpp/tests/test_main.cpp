// main() of every test executable: see check.hpp.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include "check.hpp"

int main(int argc, char** argv) {
  using namespace rtrec_test;
  int passed = 0, failed = 0;
  for (const Case& c : cases()) {
    bool selected = argc < 2;  // no argument: the unit cases
    if (argc < 2 && c.stress) selected = false;
    for (int a = 1; a < argc; ++a) {
      if (std::strcmp(argv[a], "unit") == 0 && !c.stress) selected = true;
      if (std::strcmp(argv[a], "stress") == 0 && c.stress) selected = true;
      if (std::strcmp(argv[a], c.name) == 0) selected = true;
    }
    if (!selected) continue;
    const int before = failures().load();
    const auto start = std::chrono::steady_clock::now();
    try {
      c.run();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string(c.name) + " threw: " + e.what());
    } catch (...) {
      fail(__FILE__, __LINE__, std::string(c.name) + " threw an unknown exception");
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const bool ok = failures().load() == before;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok    " : "FAILED", c.name, ms);
    std::fflush(stdout);
    ++(ok ? passed : failed);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  if (passed + failed == 0) {
    std::fprintf(stderr, "no test case matched the arguments\n");
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
