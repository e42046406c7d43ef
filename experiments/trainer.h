// One training run: model, data, optimizer, schedule, evaluation and checkpoints.
//
// The trainer knows nothing of the results database: it reports through TrainHooks (the sweep
// runner writes them to SQLite; `sweep train` can run with none). Scalars stay on the device
// between logging steps, so the only host syncs are at logging steps.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/model.h"
#include "experiments/run_config.h"

namespace mixlab {

using Metrics = std::vector<std::pair<std::string, double>>;

struct RunFacts {
  std::string device;
  std::string torch_version;
  std::string corpus;
  ModelCost cost;
  int64_t train_tokens = 0;
};

class TrainHooks {
 public:
  virtual ~TrainHooks() = default;
  virtual void on_start(const RunFacts& /*facts*/) {}
  // Resumed from a checkpoint at `step`: what was recorded after it will be recorded again.
  virtual void on_resume(int64_t /*step*/) {}
  // One logging step (step 0: the evaluation before training).
  virtual void on_log(int64_t /*step*/, const Metrics& /*metrics*/, double /*wall_s*/,
                      double /*passes*/) {}
  // A new checkpoint at `step` is written to a temporary file: `move_into_place` renames it
  // over the run's checkpoint. The sweep runner calls it only while its worker still owns the
  // run, in the transaction that records the step (a worker that lost the run throws
  // LostOwnership instead, and the file of the run's new owner stays as it is).
  virtual void commit_checkpoint(int64_t /*step*/, const std::function<void()>& move_into_place) {
    move_into_place();
  }
  // Polled every step: true stops the run after a checkpoint (SIGINT, SIGTERM).
  virtual bool stop_requested() { return false; }
};

struct TrainOptions {
  torch::Device device = torch::kCPU;
  std::string checkpoint_path;  // empty: no checkpoints, no resume
  // Written into every checkpoint; a checkpoint resumed must carry the same (CheckpointError).
  std::string database_id;
  int64_t run_id = 0;
  // Resume from checkpoint_path when it exists. The sweep runner says false when the file is
  // not the run's (another database's, a step its database does not record): the run trains
  // from step 0 and its first checkpoint replaces the file.
  bool resume = true;
  std::function<void(const std::string&)> progress;  // one line per logging step, if set
};

struct TrainResult {
  bool finished = false;  // false: stopped on request (a checkpoint was written)
  int64_t step = 0;
  Metrics last_eval;
};

// A run that went wrong while training (non-finite loss): the run fails, the sweep goes on.
class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

TrainResult train_run(const RunConfig& config, const TrainOptions& options, TrainHooks& hooks);

// Evaluation on the fixed validation batches, per mode: {"eval/loss", ...,
// "eval_discrete/loss", ...}. Modes no layer of the model knows are skipped. `autocast`: under
// bf16 autocast on the batches' device, as a bf16 run trains (autocast_on in run_config.h).
Metrics evaluate(Gpt& model, const std::vector<std::pair<torch::Tensor, torch::Tensor>>& batches,
                 const std::vector<std::string>& modes, bool autocast = false);

}  // namespace mixlab
