// Slurm, as `sweep submit`, `sweep collect` and `sweep status` use it: the job script (one array
// task per run), the sbatch / squeue / scontrol calls (run as programs, never through a shell)
// and the parsing of what they print, and the `slurm_tasks` table of the main database.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "results/store.h"

namespace mixlab {

struct SubmitOptions {
  std::string partition, time, mem;
  int cpus_per_run = 1;
  int gpus_per_run = 0;
  int max_parallel = 0;  // the array's %K throttle; 0: none
  std::vector<std::string> sbatch_args;
  bool dry_run = false;
};

// Seconds before the time limit at which Slurm sends the task SIGUSR1 (`--signal=B:USR1@...`):
// the run checkpoints, and the task requeues itself. Slurm checks limits about once a minute,
// so the warning needs that much room; a limit under 8 minutes gets a quarter of itself (at
// least 10 s), so that a requeued task still trains before its next warning.
constexpr int kTimeLimitWarningS = 120;
int time_limit_warning_s(const std::string& time);
// A Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds; -1 if it is none.
int64_t slurm_time_seconds(const std::string& time);

// Throws ConfigError naming the option on a value sbatch would refuse or misread.
void check_submit_options(const SubmitOptions& options);

struct JobScript {
  std::string sweep;         // the sweep's name
  std::string sweep_binary;  // absolute path of this `sweep`
  std::string main_db;       // absolute path of the main database
  std::string log_folder;    // where the tasks' output goes (%A_%a.out)
  std::vector<std::pair<std::string, std::string>> runs;  // (config hash, run name) per task
  SubmitOptions options;
};

// The text of the job script: every #SBATCH line, the run of each array task, and the exact
// `sweep run-task` command.
std::string job_script_text(const JobScript& script);

// ---- programs -------------------------------------------------------------------------------
struct ProgramResult {
  int status = -1;  // exit status; 127 when it could not be started
  std::string out, err;
};
ProgramResult run_program(const std::vector<std::string>& argv);
bool program_on_path(const std::string& name);

// The job id in `sbatch --parsable`'s output ("123" or "123;cluster"); -1 if there is none.
int64_t parse_sbatch_job_id(const std::string& out);

struct TaskState {
  int64_t job_id = 0;    // the array job id (%F)
  int64_t task_id = -1;  // the array index (%K); -1 for a job that is not an array
  std::string state;     // PENDING, RUNNING, COMPLETED, CANCELLED, ...
  std::string node;      // where it runs ("" while pending)
  std::string reason;    // why it is pending (BeginTime after a requeue, Priority, ...)
};
// The format `squeue -o` is given, and the parser of its lines ("%F|%K|%T|%N|%r").
extern const char* const kSqueueFormat;
std::vector<TaskState> parse_squeue(const std::string& out);
// Whether a task in this state may still train (queued, running, being requeued).
bool task_is_live(const std::string& state);
// This user's tasks as squeue lists them now (empty when squeue is missing or fails).
std::vector<TaskState> current_tasks();

// ---- the slurm_tasks table --------------------------------------------------------------
struct SubmittedTask {
  int64_t run_id = 0, job_id = 0, task_id = 0;
  std::string script, state, node;
  double submitted_at = 0;
};
void record_submitted(Store& main, const std::vector<SubmittedTask>& tasks);
// The newest submission of each run (by run_id); empty when the database has no such table.
std::map<int64_t, SubmittedTask> latest_submissions(Store& store);
// Records each submission's state as squeue shows it now (sweep collect).
void record_task_states(Store& main, const std::vector<TaskState>& now);

// What `sweep status` prints beside a submitted run: "slurm RUNNING 12_3 on node7", "slurm
// PENDING 12_3 (BeginTime)", or the last state seen once squeue no longer lists the task.
std::string task_note(const SubmittedTask& task, const std::vector<TaskState>& now);
// task_note for every run of `store` ever submitted and not finished, by run_id; squeue is
// asked only when there is such a run.
std::map<int64_t, std::string> slurm_notes(Store& store);

}  // namespace mixlab
