// Checkpoints: everything a run needs to continue exactly where it stopped.
//
// Model parameters and buffers, the AdamW state, the step, the training wall-clock and the sums
// of the logging interval in progress. No random-number state: nothing draws random numbers
// after initialisation (no dropout; the batch of step s is a pure function of (seed, s), see
// WindowSampler), so restoring these is enough for a resumed run to equal an uninterrupted one
// bit for bit (tests/test_training.cpp, tests/test_robustness.cpp). A layer that starts drawing
// random numbers while training must add torch's generator state here.
//
// Written atomically (a temporary file, fsync, rename, fsync of the folder): a kill at any
// moment leaves either the previous checkpoint or the new one, never a torn file. The temporary
// name carries the writer's pid and a random nonce, so two writers never share one; the rename
// is a separate call so that the sweep runner can make it only while its worker still owns the
// run (Store::commit_checkpoint). A checkpoint records whose it is (CheckpointIdentity): the
// database, the run and the config; it is resumed only by that run of that database.
// A checkpoint that cannot be written (a full disk) is an EnvironmentError.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace mixlab {

// A checkpoint that exists but cannot be used (corrupt, another config's): bad input.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whose checkpoint it is. A checkpoint written without a database has database_id "" and
// run_id 0.
struct CheckpointIdentity {
  std::string config_hash, database_id;
  int64_t run_id = 0;
};

struct CheckpointState {
  int64_t step = 0;   // optimizer updates done
  double wall_s = 0;  // training seconds spent so far
  std::string config_hash, database_id;
  int64_t run_id = 0;
  // The logging interval in progress (a stop between logging steps): its sums and length, so
  // the resumed run logs exactly what an uninterrupted one would.
  double loss_sum = 0, aux_sum = 0, norm_sum = 0, interval_s = 0;
  int64_t interval_steps = 0;
};

// Writes the checkpoint to a temporary file beside `path` (fsync'ed) and returns its name; the
// caller moves it into place with move_checkpoint_into_place, or removes it. Throws
// EnvironmentError (removing the temporary file) when it cannot be written.
std::string write_checkpoint_file(const std::string& path, const CheckpointState& state,
                                  torch::nn::Module& model, torch::optim::Optimizer& optimizer);
// rename(temporary, path) and fsync of the folder.
void move_checkpoint_into_place(const std::string& temporary, const std::string& path);
// Both, for a writer that owns its file alone.
void save_checkpoint(const std::string& path, const CheckpointState& state,
                     torch::nn::Module& model, torch::optim::Optimizer& optimizer);
// Deletes the temporary files left beside `path` by writers that died or lost the run.
void remove_checkpoint_temporaries(const std::string& path);

// Restores model and optimizer in place; throws CheckpointError naming the file when it is
// unreadable or is not `expected`'s (another config, database or run).
CheckpointState load_checkpoint(const std::string& path, const CheckpointIdentity& expected,
                                torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                const torch::Device& device);

// Reads a checkpoint without restoring it: its step and identity. Throws CheckpointError naming
// the file when it is unreadable (truncated, corrupt). The sweep runner checks the checkpoints
// of unfinished runs this way before it writes anything.
CheckpointState inspect_checkpoint(const std::string& path);

// Why a checkpoint may not be resumed by `expected` at the step its database records
// (`recorded_step`: runs.checkpoint_step; nullopt where no checkpoint is recorded), or "" when
// it may: another config, another database, another run, or a step the database does not name.
std::string checkpoint_mismatch(const CheckpointState& state, const CheckpointIdentity& expected,
                                std::optional<int64_t> recorded_step);

// Writes `path` durably: fsync of the file's folder after a rename into it.
void fsync_parent_dir(const std::string& path);

}  // namespace mixlab
