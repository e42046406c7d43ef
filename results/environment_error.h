// EnvironmentError: the machine, not the input, is at fault. A full or failing disk while the
// database or a checkpoint is written (SQLITE_FULL, SQLITE_IOERR, ENOSPC): the run is released,
// not failed, nothing is counted against it, and `sweep` exits with kEnvironmentExitStatus.
// Freeing space and rerunning finishes it. (A header of its own: the checkpoint writer, which
// knows nothing of the database, throws it too.)
#pragma once

#include <stdexcept>

namespace mixlab {

class EnvironmentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr int kEnvironmentExitStatus = 75;  // EX_TEMPFAIL: try again later

}  // namespace mixlab
