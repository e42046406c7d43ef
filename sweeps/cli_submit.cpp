// submit, collect and the internal run-task: a sweep as a Slurm job array (README, "Sweeps on
// a Slurm cluster"). One array task per unfinished run; each trains its run into its own
// per-run database beside the main one (results/collect.h) and `sweep collect` takes them in.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "experiments/config_reader.h"
#include "results/collect.h"
#include "results/store.h"
#include "sweeps/commands.h"
#include "sweeps/runner.h"
#include "sweeps/slurm.h"
#include "sweeps/spec.h"
#include "sweeps/spec_lookup.h"
#include "sweeps/validate.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {

struct SubmitArgs {
  std::string spec_file, db_path = "results/results.db";
  std::vector<std::string> overrides;
  bool allow_changed = false;
  SubmitOptions slurm;
};

std::string absolute(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).string() : p.string();
}

std::string this_binary() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot tell where this sweep binary is (/proc/self/exe)");
  return exe.string();
}

// `<db folder>/slurm/<sweep>-<n>.sh`, the first n not taken: every submission keeps its script.
std::string new_script_path(const std::string& db, const std::string& sweep) {
  const fs::path folder = fs::path(absolute(db)).parent_path() / "slurm";
  std::string safe;
  for (char c : sweep) safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
  for (int n = 1;; ++n) {
    fs::path p = folder / fmt::format("{}-{}.sh", safe, n);
    if (!fs::exists(p)) return p.string();
  }
}

void write_text(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) throw std::runtime_error(fmt::format("{}: cannot write the job script", path));
  fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
}

std::string first_line(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text.substr(0, text.find('\n'));
}

// What sbatch would refuse (a partition, account or option the cluster does not have) is bad
// input: `sbatch --test-only` on the job script, from a temporary file, before anything is
// written.
void check_with_sbatch(const std::string& script_text) {
  std::string path = (fs::temp_directory_path() / "mixlab-submit-XXXXXX").string();
  const int fd = ::mkstemp(path.data());
  if (fd < 0) return;  // no temporary file: sbatch itself will say it later
  ::close(fd);
  write_text(path, script_text);
  const ProgramResult r = run_program({"sbatch", "--test-only", path});
  fs::remove(path);
  if (r.status != 0)
    throw ConfigError("sbatch --test-only", "", first_line(r.err.empty() ? r.out : r.err));
}

// `sweep submit`.
int submit(const SubmitArgs& a) {
  check_submit_options(a.slurm);
  if (!a.slurm.dry_run && !program_on_path("sbatch"))
    throw ConfigError("sbatch", "",
                      "not found on PATH: sweep submit needs a Slurm login node "
                      "(--dry-run writes the job script without it)");
  const std::string db = absolute(a.db_path);
  SweepSpec spec = load_spec(a.spec_file, a.overrides);
  JobScript script;
  script.sweep = spec.name;
  script.sweep_binary = this_binary();
  script.main_db = db;
  script.log_folder = (fs::path(db).parent_path() / "slurm" / "logs").string();
  script.options = a.slurm;
  // Bad configs are named before anything asks Slurm.
  validate_spec(spec);
  if (!a.slurm.dry_run) {
    for (const auto& p : spec.runs) script.runs.emplace_back(content_hash(p.config), p.name);
    check_with_sbatch(job_script_text(script));
    script.runs.clear();
  }
  struct Planned {
    int64_t run_id = 0;
    std::string hash, name, status;
    int64_t attempt = 0;
  };
  std::vector<Planned> runs;
  std::map<int64_t, SubmittedTask> submitted;
  std::vector<TaskState> queue;
  std::unique_ptr<Store> main;
  const int max_attempts = RunnerOptions{}.max_attempts;
  if (a.slurm.dry_run) {
    // Reads the database (if any) but writes nothing to it.
    std::map<std::string, std::pair<std::string, int64_t>> known;
    if (fs::exists(db)) {
      auto store = open_for_reading(db);
      for (const auto& p : spec.runs)
        if (auto r = store->run_by_hash(content_hash(p.config)))
          known[r->config_hash] = {r->status, r->attempt};
    }
    for (const auto& p : spec.runs) {
      const std::string hash = content_hash(p.config);
      auto k = known.find(hash);
      runs.push_back({0, hash, p.name, k == known.end() ? "pending" : k->second.first,
                      k == known.end() ? 0 : k->second.second});
    }
  } else {
    // Validates and records the sweep exactly as `sweep run` does (exit 2, nothing written, on
    // bad input), then brings in what earlier tasks trained.
    RunnerOptions record;
    record.db_path = db;
    record.device = "cpu";  // the login node need not have the tasks' GPU
    record.record_only = true;
    record.quiet = true;
    SweepCommand command{a.spec_file, a.overrides, false, a.allow_changed};
    if (int status = run_sweep(command, record); status != 0) return status;
    main = std::make_unique<Store>(db, OpenMode::existing);
    collect_runs(main->handle(), main->path(), db);
    for (const auto& r : main->sweep_runs(spec.name))
      runs.push_back({r.run_id, r.config_hash, r.name, r.status, r.attempt});
    submitted = latest_submissions(*main);
    queue = current_tasks();
  }
  // What still needs a task: not finished, not failed for good, not queued or running now.
  std::vector<Planned> todo;
  int finished = 0, queued = 0, failed = 0;
  for (const auto& r : runs) {
    if (r.status == "finished") {
      ++finished;
      continue;
    }
    if (r.status == "failed" && r.attempt >= max_attempts) {
      ++failed;
      continue;
    }
    if (auto s = submitted.find(r.run_id); s != submitted.end()) {
      bool live = false;
      for (const auto& t : queue)
        live |=
            t.job_id == s->second.job_id && t.task_id == s->second.task_id && task_is_live(t.state);
      if (live) {
        ++queued;
        continue;
      }
    }
    todo.push_back(r);
  }
  std::cout << fmt::format("sweep {}: {} runs, {} finished, {} queued or running{}; {} to submit\n",
                           spec.name, runs.size(), finished, queued,
                           failed ? fmt::format(", {} failed {} times", failed, max_attempts) : "",
                           todo.size());
  if (todo.empty()) return 0;

  for (const auto& r : todo) script.runs.emplace_back(r.hash, r.name);
  const std::string path = new_script_path(db, spec.name);
  if (!a.slurm.dry_run)
    for (const auto& r : todo) make_per_run_file(*main, spec.name, r.hash);
  write_text(path, job_script_text(script));
  if (a.slurm.dry_run) {
    std::cout << fmt::format("dry run: wrote {}; submitted nothing, recorded nothing\n", path);
    return 0;
  }
  std::error_code ec;
  fs::create_directories(script.log_folder, ec);
  const ProgramResult r = run_program({"sbatch", "--parsable", path});
  const int64_t job = r.status == 0 ? parse_sbatch_job_id(r.out) : -1;
  if (job < 0) {
    std::cerr << fmt::format("error: sbatch {} failed (exit {}): {}\n", path, r.status,
                             first_line(r.err.empty() ? r.out : r.err));
    return 1;
  }
  std::vector<SubmittedTask> tasks;
  const double now = unix_now();
  for (size_t i = 0; i < todo.size(); ++i)
    tasks.push_back({todo[i].run_id, job, int64_t(i), path, "PENDING", "", now});
  record_submitted(*main, tasks);
  std::cout << fmt::format(
      "submitted job {} ({} array task{}{}); script {}\n"
      "watch: sweep status {} --db {}\ncollect: sweep collect --db {}\n",
      job, todo.size(), todo.size() == 1 ? "" : "s",
      a.slurm.max_parallel > 0 ? fmt::format(", at most {} at once", a.slurm.max_parallel) : "",
      path, spec.name, a.db_path, a.db_path);
  return 0;
}

// `sweep collect`: every per-run file into the main database.
int collect(const std::string& db_path) {
  Store main(db_path, OpenMode::existing);
  const CollectReport report = collect_runs(main.handle(), main.path(), db_path);
  record_task_states(main, current_tasks());
  std::cout << fmt::format(
      "collected {} run{} ({} finished); {} unchanged, {} already finished here\n", report.copied,
      report.copied == 1 ? "" : "s", report.finished, report.unchanged, report.final);
  for (const auto& why : report.unreadable)
    std::cerr << "not collected now (run sweep collect again): " << why << "\n";
  return report.unreadable.empty() ? 0 : 1;
}

// ---- sweep run-task: what one array task runs -----------------------------------------------
std::atomic<bool> g_time_limit{false};

// Slurm's warning before the time limit: stop the run as a SIGTERM would (checkpoint, killed),
// then requeue the task (below) so it resumes.
void on_time_limit(int) {
  g_time_limit.store(true);
  ::kill(::getpid(), SIGTERM);
}

int run_task(const std::string& db, const std::string& hash, RunnerOptions options) {
  const std::string file = per_run_file(db, hash);
  if (!fs::exists(file))
    throw ConfigError(file, "--hash", hash,
                      "no per-run database: submit the run with sweep submit");
  std::string sweep;
  {
    Store shard(file, OpenMode::existing);
    auto run = shard.run_by_hash(hash);
    const auto sweeps = shard.sweeps();
    if (!run || sweeps.empty())
      throw ConfigError(file, "--hash", hash, "the per-run database does not hold this run");
    sweep = sweeps.front().name;
    if (run->status == "finished") {
      std::cout << fmt::format("{}: already finished\n", run->name);
      return 0;
    }
    // Slurm runs one instance of an array task at a time: a run still marked running here was
    // held by this task's earlier instance (requeued, preempted, or killed past its grace time).
    if (run->status == "running")
      shard.release_run(run->run_id, run->worker,
                        fmt::format("its Slurm task restarted (worker {} is gone)", run->worker));
  }
  struct sigaction sa {};
  sa.sa_handler = on_time_limit;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  options.db_path = file;
  options.checkpoint_dir = checkpoint_folder(db);
  options.jobs = 1;
  const int status = run_worker(sweep, options);
  if (g_time_limit.load()) {
    const char* job = std::getenv("SLURM_ARRAY_JOB_ID");
    const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
    const std::string id = job && task ? fmt::format("{}_{}", job, task)
                                       : std::string(std::getenv("SLURM_JOB_ID") ?: "");
    if (!id.empty()) {
      std::cout << "time limit near: checkpoint written; requeueing task " << id << std::endl;
      run_program({"scontrol", "requeue", id});
    }
  }
  return status;
}

}  // namespace

std::vector<Command> add_submit_commands(CLI::App& app) {
  std::vector<Command> out;
  auto a = std::make_shared<SubmitArgs>();
  auto* submit_cmd = app.add_subcommand(
      "submit",
      "submit a sweep to Slurm as a job array, one task per run not finished or queued "
      "(README: Sweeps on a Slurm cluster)");
  submit_cmd
      ->add_option("SPEC", a->spec_file,
                   "sweep spec (JSON): a file, or a bundled spec's name (sweep specs)")
      ->required();
  submit_cmd->add_option("--db", a->db_path, "main results database (on a shared folder)")
      ->capture_default_str();
  submit_cmd->add_option("--set", a->overrides, "override a config key for every run (repeatable)");
  submit_cmd->add_flag("--allow-changed", a->allow_changed,
                       "accept a spec that differs from the one recorded under the same name");
  submit_cmd->add_option("--partition", a->slurm.partition, "Slurm partition");
  submit_cmd->add_option("--time", a->slurm.time, "time limit per run (HH:MM:SS, D-HH:MM, ...)");
  submit_cmd->add_option("--cpus-per-run", a->slurm.cpus_per_run, "CPUs per task (its threads)")
      ->capture_default_str();
  submit_cmd
      ->add_option("--gpus-per-run", a->slurm.gpus_per_run,
                   "GPUs per task: --gres=gpu:N, and the run trains with --device cuda")
      ->capture_default_str();
  submit_cmd->add_option("--mem", a->slurm.mem, "memory per task (sbatch --mem, e.g. 8G)");
  submit_cmd
      ->add_option("--max-parallel", a->slurm.max_parallel,
                   "at most this many tasks at once (--array=...%K); 0: no limit")
      ->capture_default_str();
  submit_cmd
      ->add_option("--sbatch-arg", a->slurm.sbatch_args,
                   "one more #SBATCH option, e.g. --sbatch-arg=--account=abc (repeatable)")
      ->allow_extra_args(false);
  submit_cmd->add_flag("--dry-run", a->slurm.dry_run,
                       "write the job script; submit nothing, record nothing");
  out.push_back({submit_cmd, [a] {
                   a->spec_file = resolve_spec_argument(a->spec_file);
                   return submit(*a);
                 }});

  auto db = std::make_shared<std::string>("results/results.db");
  auto* collect_cmd = app.add_subcommand(
      "collect", "take the per-run databases of Slurm tasks into the main database (idempotent)");
  collect_cmd->add_option("--db", *db, "main results database")->capture_default_str();
  out.push_back({collect_cmd, [db] { return collect(*db); }});

  struct TaskArgs {
    std::string db, hash;
    RunnerOptions options;
  };
  auto t = std::make_shared<TaskArgs>();
  auto* task = app.add_subcommand("run-task", "(internal) what one Slurm array task runs");
  task->group("");
  task->add_option("--db", t->db)->required();
  task->add_option("--hash", t->hash)->required();
  task->add_option("--device", t->options.device);
  task->add_option("--threads", t->options.threads);
  out.push_back({task, [t] { return run_task(t->db, t->hash, t->options); }});
  return out;
}

}  // namespace mixlab
