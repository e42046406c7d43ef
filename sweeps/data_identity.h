// What a run's numbers depend on besides its config: the data it trained on (a fingerprint of
// the corpus content and where it was read) and the numerics (threads, BLAS). Recorded with
// the run (runs.data_fingerprint, data_location, threads, blas), so a run whose corpus changed
// is never silently reused or resumed, and a resume with other thread settings says so.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "experiments/corpus.h"
#include "results/store.h"
#include "sweeps/spec.h"

namespace mixlab {

// What a run of `config` trains and evaluates on: corpus_identity(config.data), its
// fingerprint followed by "; eval windows: disjoint" where the validation batches are the
// regrouped, disjoint layout (ValidationLayout::strided in corpus.h). Such a config evaluated
// on overlapping windows before that layout existed, under the same config hash: the marker
// makes its old runs read as trained on other data, refused or retrained like any changed
// corpus, never reused. Every other config's identity is exactly its corpus's.
CorpusIdentity run_data_identity(const RunConfig& config);

// The data and numerics of this process for a run of `config`.
struct RunEnvironment {
  CorpusIdentity data;
  int threads = 0;   // the thread budget: OpenBLAS's threads, or LibTorch's without OpenBLAS
  std::string blas;  // e.g. "OpenBLAS 0.3.21 ... (2 threads); LibTorch 1 intra-op thread"
};
RunEnvironment current_environment(const RunConfig& config);

// Copies the environment into what set_run_info records.
void fill_run_info(RunInfo& info, const RunEnvironment& environment);

// A run recorded in the database whose corpus is no longer what it trained on.
struct ChangedData {
  RunRow run;
  std::string planned_name;  // its name in the spec being run
  CorpusIdentity now;
};

// The planned runs (with their configs, in the same order) that the database holds with a
// recorded fingerprint different from their data identity now. Reads only.
std::vector<ChangedData> runs_with_changed_data(Store& store,
                                                const std::vector<PlannedRun>& planned,
                                                const std::vector<RunConfig>& configs);

// The config of every run of `spec`, in order (for runs_with_changed_data).
std::vector<RunConfig> run_configs(const SweepSpec& spec);
bool is_changed(const std::vector<ChangedData>& changed, const std::string& config_hash);

// The one-line refusal for `changed` (not empty): names the run, the corpus, both
// fingerprints and the flag that trains such runs again.
std::string changed_data_message(const std::vector<ChangedData>& changed);

// Makes every changed run train again from step 0 on its new data: its metrics deleted, its
// checkpoint file (`checkpoint_of(config_hash)`) removed, the run pending with no attempts.
// One transaction; throws ConfigError when one of them is being trained right now.
void reset_runs_for_new_data(Store& store, const std::vector<ChangedData>& changed,
                             const std::function<std::string(const std::string&)>& checkpoint_of);

// What a worker records for the run it claimed (`resuming`: from a checkpoint). Throws
// ConfigError when the corpus changed since the run recorded it (the run fails, naming the
// change; `sweep run` refuses it before it is claimed, so this is a race with the files). On a
// resume with other thread settings it says so through `say` and notes it in `blas`.
RunEnvironment environment_of_claimed_run(const RunRow& run, const RunConfig& config, bool resuming,
                                          const std::function<void(const std::string&)>& say);

// The note `sweep run` prints and records (in runs.blas) when a run resumes with other thread
// settings than it started with; "" when they are the same or nothing was recorded.
std::string numerics_change_note(const RunRow& run, const RunEnvironment& now);

}  // namespace mixlab
