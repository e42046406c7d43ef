// The doctest runner. CTest runs two test processes at a time on the 2-core CI machine, so
// each one trains with one CPU thread and keeps its freed memory (experiments/cpu_runtime.h).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "experiments/cpu_runtime.h"

int main(int argc, char** argv) {
  mixlab::keep_freed_memory_in_process();
  mixlab::set_cpu_threads(1);
  return doctest::Context(argc, argv).run();
}
