// Fault injection for the robustness tests: named points in the code at which a test can make
// the real `sweep` binary die (SIGKILL) or pause, to check that a sweep survives a crash at that
// exact moment (tests/test_robustness.cpp). Compiled in always, inert unless the environment
// asks for it; an unset point costs one branch.
//
//   MIXLAB_TEST_KILL_AT=checkpoint:2   SIGKILL the process the 2nd time it reaches "checkpoint"
//   MIXLAB_TEST_PAUSE_AT=logged:3      the 3rd time it reaches "logged", sleep (up to 60 s) until
//                                      a stop signal or SIGUSR1 arrives, so a test can signal it
//                                      mid-run (SIGUSR1: carry on as if never paused)
//
// The points (counted per process, from 1):
//   step        polled before every optimizer step (the N-th poll precedes step N of the run)
//   checkpoint  a checkpoint's temporary file is written, not yet renamed into place
//   log_step    inside the database transaction of a logging step, before its COMMIT
//   logged      a logging step is committed to the database
//   end_run     inside the transaction that ends a run, before its COMMIT
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace mixlab::fault {

struct Trigger {
  std::string point;
  long count = 0;
};

inline std::optional<Trigger> parse_trigger(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  std::string s = text;
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return Trigger{s, 1};
  return Trigger{s.substr(0, colon), std::atol(s.c_str() + colon + 1)};
}

// Set from the stop-signal handler (lock-free, so async-signal-safe): ends a pause.
inline std::atomic<bool> g_pause_released{false};

inline void release_pause(int) {
  g_pause_released.store(true);
}

inline void point(const char* name) {
  static const std::optional<Trigger> kill = parse_trigger(std::getenv("MIXLAB_TEST_KILL_AT"));
  static const std::optional<Trigger> pause = parse_trigger(std::getenv("MIXLAB_TEST_PAUSE_AT"));
  if (!kill && !pause) return;
  static const bool usr1_installed = pause && ::signal(SIGUSR1, release_pause) != SIG_ERR;
  (void)usr1_installed;
  static std::mutex mutex;
  static std::map<std::string, long> reached;
  long n = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    n = ++reached[name];
  }
  if (kill && kill->point == name && kill->count == n) {
    std::fprintf(stderr, "fault injection: SIGKILL at %s:%ld\n", name, n);
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
  }
  if (pause && pause->point == name && pause->count == n) {
    std::fprintf(stderr, "fault injection: paused at %s:%ld\n", name, n);
    std::fflush(stderr);
    for (int i = 0; i < 6000 && !g_pause_released.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace mixlab::fault
