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
// moment leaves either the previous checkpoint or the new one, never a torn file.
#pragma once

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace mixlab {

// A checkpoint that exists but cannot be used (corrupt, another config's): bad input.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CheckpointState {
  int64_t step = 0;   // optimizer updates done
  double wall_s = 0;  // training seconds spent so far
  std::string config_hash;
  // The logging interval in progress (a stop between logging steps): its sums and length, so
  // the resumed run logs exactly what an uninterrupted one would.
  double loss_sum = 0, aux_sum = 0, norm_sum = 0, interval_s = 0;
  int64_t interval_steps = 0;
};

void save_checkpoint(const std::string& path, const CheckpointState& state,
                     torch::nn::Module& model, torch::optim::Optimizer& optimizer);

// Restores model and optimizer in place; throws CheckpointError naming the file when it is
// unreadable or belongs to another config.
CheckpointState load_checkpoint(const std::string& path, const std::string& expected_hash,
                                torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                const torch::Device& device);

// Reads a checkpoint without restoring it: its step and config hash. Throws CheckpointError
// naming the file when it is unreadable (truncated, corrupt) or belongs to another config. The
// sweep runner checks the checkpoints of unfinished runs this way before it writes anything.
CheckpointState inspect_checkpoint(const std::string& path, const std::string& expected_hash);

// Writes `path` durably: fsync of the file's folder after a rename into it.
void fsync_parent_dir(const std::string& path);

}  // namespace mixlab
