#include "sweeps/slurm.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <regex>
#include <sstream>

#include "experiments/config_reader.h"

extern char** environ;

namespace mixlab {

namespace {

// A word for a bash script, in single quotes where it needs any.
std::string shell_word(const std::string& word) {
  if (!word.empty() && std::regex_match(word, std::regex("[A-Za-z0-9_./:=@%+,-]+"))) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool table_exists(sqlite3* db, const char* table) {
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", -1, &s,
                     nullptr);
  sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
  const bool found = sqlite3_step(s) == SQLITE_ROW;
  sqlite3_finalize(s);
  return found;
}

void check_sql(sqlite3* db, const Store& store, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw StoreError(fmt::format("{}: {}", store.path(), sqlite3_errmsg(db)));
}

}  // namespace

int64_t slurm_time_seconds(const std::string& time) {
  std::smatch m;
  if (!std::regex_match(time, m, std::regex(R"((?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?)")))
    return -1;
  auto n = [&](int i) { return m[i].matched ? std::stoll(m[i].str()) : int64_t(0); };
  if (!m[1].matched) {  // minutes, minutes:seconds, hours:minutes:seconds
    if (m[4].matched) return n(2) * 3600 + n(3) * 60 + n(4);
    return n(2) * 60 + n(3);
  }
  return n(1) * 86400 + n(2) * 3600 + n(3) * 60 + n(4);  // days-hours[:minutes[:seconds]]
}

int time_limit_warning_s(const std::string& time) {
  const int64_t limit = slurm_time_seconds(time);
  if (limit <= 0) return kTimeLimitWarningS;
  return int(std::clamp<int64_t>(limit / 4, 10, kTimeLimitWarningS));
}

void check_submit_options(const SubmitOptions& o) {
  if (o.cpus_per_run < 1)
    throw ConfigError("--cpus-per-run", std::to_string(o.cpus_per_run), "must be at least 1");
  if (o.gpus_per_run < 0)
    throw ConfigError("--gpus-per-run", std::to_string(o.gpus_per_run), "must be 0 or more");
  if (o.max_parallel < 0)
    throw ConfigError("--max-parallel", std::to_string(o.max_parallel),
                      "must be 0 (no limit) or more");
  if (!o.time.empty() && slurm_time_seconds(o.time) <= 0)
    throw ConfigError("--time", "\"" + o.time + "\"",
                      "must be a Slurm time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
                      "D-HH:MM:SS");
  if (!o.mem.empty() && !std::regex_match(o.mem, std::regex(R"(\d+[KMGT]?)")))
    throw ConfigError("--mem", "\"" + o.mem + "\"",
                      "must be a size per run such as 4000 (MB), 16G or 512M");
  if (!o.partition.empty() && !std::regex_match(o.partition, std::regex(R"([^\s,]+(,[^\s,]+)*)")))
    throw ConfigError("--partition", "\"" + o.partition + "\"",
                      "must be a partition name (or a comma-separated list)");
  for (const auto& arg : o.sbatch_args)
    if (arg.size() < 2 || arg[0] != '-' || arg.find_first_of("\n\r") != std::string::npos)
      throw ConfigError("--sbatch-arg", "\"" + arg + "\"",
                        "must be one sbatch option, such as --account=abc or --qos=long");
}

std::string job_script_text(const JobScript& s) {
  const SubmitOptions& o = s.options;
  const size_t n = s.runs.size();
  std::ostringstream out;
  out << "#!/bin/bash\n";
  out << fmt::format(
      "# mixlab sweep {}: {} run{}, one array task each (written by sweep submit).\n", s.sweep, n,
      n == 1 ? "" : "s");
  out << "# Each task trains its run into its own database, "
      << s.main_db.substr(0, s.main_db.rfind('.')) << ".runs/<config hash>.db,\n"
      << "# and checkpoints beside the main database; `sweep collect` brings the runs into it.\n";
  out << fmt::format("#SBATCH --job-name={}\n", shell_word("mixlab-" + s.sweep));
  out << fmt::format("#SBATCH --array=0-{}{}\n", n == 0 ? 0 : n - 1,
                     o.max_parallel > 0 ? fmt::format("%{}", o.max_parallel) : "");
  out << fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_run);
  if (o.gpus_per_run > 0) out << fmt::format("#SBATCH --gres=gpu:{}\n", o.gpus_per_run);
  if (!o.mem.empty()) out << fmt::format("#SBATCH --mem={}\n", o.mem);
  if (!o.time.empty()) out << fmt::format("#SBATCH --time={}\n", o.time);
  if (!o.partition.empty()) out << fmt::format("#SBATCH --partition={}\n", o.partition);
  out << "# Preemption and time limits: requeueable; SIGUSR1 before the limit makes the run\n"
         "# checkpoint and the task requeue itself (a requeued task resumes from the "
         "checkpoint).\n";
  out << "#SBATCH --requeue\n";
  out << fmt::format("#SBATCH --signal=B:USR1@{}\n", time_limit_warning_s(o.time));
  out << "#SBATCH --open-mode=append\n";
  out << fmt::format("#SBATCH --output={}/%A_%a.out\n", s.log_folder);
  for (const auto& arg : o.sbatch_args) out << "#SBATCH " << arg << "\n";
  out << "set -eu\n";
  out << "# array index -> the config hash of its run\n";
  out << "runs=(\n";
  for (const auto& [hash, name] : s.runs) out << "  " << hash << "  # " << name << "\n";
  out << ")\n";
  // exec: the batch shell becomes `sweep`, so the B: signal and scancel's SIGTERM reach it.
  out << "exec " << shell_word(s.sweep_binary) << " run-task --db " << shell_word(s.main_db)
      << " --hash \"${runs[$SLURM_ARRAY_TASK_ID]}\" --device "
      << (o.gpus_per_run > 0 ? "cuda" : "cpu") << " --threads " << o.cpus_per_run << "\n";
  return out.str();
}

ProgramResult run_program(const std::vector<std::string>& argv) {
  ProgramResult result;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return result;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (rc == 0) {
    // Both pipes at once: a program that fills one while the other is read cannot block.
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t got = read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          sinks[i]->append(buf, size_t(got));
        } else if (got == 0 || errno != EINTR) {
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  } else {
    result.status = 127;
    result.err = std::strerror(rc);
  }
  close(out[0]);
  close(err[0]);
  return result;
}

bool program_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

int64_t parse_sbatch_job_id(const std::string& out) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"((^|\n)(\d+)(;\S*)?\s*$)")))
    return std::stoll(m[2].str());
  return -1;
}

const char* const kSqueueFormat = "%F|%K|%T|%N|%r";

std::vector<TaskState> parse_squeue(const std::string& out) {
  std::vector<TaskState> tasks;
  std::stringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    for (std::string field; std::getline(fields, field, '|');) f.push_back(field);
    if (f.size() < 3 || f[0].empty() || f[0].find_first_not_of("0123456789") != std::string::npos)
      continue;
    TaskState t;
    t.job_id = std::stoll(f[0]);
    t.task_id = !f[1].empty() && f[1].find_first_not_of("0123456789") == std::string::npos
                    ? std::stoll(f[1])
                    : -1;
    t.state = f[2];
    if (f.size() > 3 && f[3] != "(null)") t.node = f[3];
    if (f.size() > 4 && f[4] != "None" && f[4] != "(null)") t.reason = f[4];
    tasks.push_back(t);
  }
  return tasks;
}

bool task_is_live(const std::string& state) {
  static const char* const kEnded[] = {"COMPLETED", "CANCELLED",     "FAILED",      "TIMEOUT",
                                       "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",   "DEADLINE",
                                       "PREEMPTED", "REVOKED",       "SPECIAL_EXIT"};
  for (const char* ended : kEnded)
    if (state == ended) return false;
  return !state.empty();
}

std::vector<TaskState> current_tasks() {
  if (!program_on_path("squeue")) return {};
  // -r: one line per array task, pending ones too (not "12_[3-7%2]"); -t all: with the tasks
  // that ended lately (Slurm forgets them MinJobAge after, 300 s by default).
  const ProgramResult r =
      run_program({"squeue", "--me", "-h", "-r", "-t", "all", "-o", kSqueueFormat});
  return r.status == 0 ? parse_squeue(r.out) : std::vector<TaskState>{};
}

void record_submitted(Store& main, const std::vector<SubmittedTask>& tasks) {
  sqlite3* db = main.handle();
  check_sql(db, main, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
  sqlite3_stmt* s = nullptr;
  check_sql(db, main,
            sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO slurm_tasks (run_id, job_id, array_task_id, "
                               "script, submitted_at, state, node, seen_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?)",
                               -1, &s, nullptr));
  int rc = SQLITE_DONE;
  for (const auto& t : tasks) {
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, t.run_id);
    sqlite3_bind_int64(s, 2, t.job_id);
    sqlite3_bind_int64(s, 3, t.task_id);
    sqlite3_bind_text(s, 4, t.script.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 5, t.submitted_at);
    sqlite3_bind_text(s, 6, t.state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 7, t.node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 8, t.submitted_at);
    if ((rc = sqlite3_step(s)) != SQLITE_DONE) break;
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    const std::string why = sqlite3_errmsg(db);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw StoreError(fmt::format("{}: {}", main.path(), why));
  }
  check_sql(db, main, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr));
}

std::map<int64_t, SubmittedTask> latest_submissions(Store& store) {
  std::map<int64_t, SubmittedTask> out;
  sqlite3* db = store.handle();
  if (!table_exists(db, "slurm_tasks")) return out;
  sqlite3_stmt* s = nullptr;
  check_sql(db, store,
            sqlite3_prepare_v2(db,
                               "SELECT run_id, job_id, array_task_id, script, submitted_at, "
                               "COALESCE(state, ''), COALESCE(node, '') FROM slurm_tasks "
                               "ORDER BY submitted_at, job_id",
                               -1, &s, nullptr));
  while (sqlite3_step(s) == SQLITE_ROW) {
    SubmittedTask t;
    t.run_id = sqlite3_column_int64(s, 0);
    t.job_id = sqlite3_column_int64(s, 1);
    t.task_id = sqlite3_column_int64(s, 2);
    t.script = reinterpret_cast<const char*>(sqlite3_column_text(s, 3));
    t.submitted_at = sqlite3_column_double(s, 4);
    t.state = reinterpret_cast<const char*>(sqlite3_column_text(s, 5));
    t.node = reinterpret_cast<const char*>(sqlite3_column_text(s, 6));
    out[t.run_id] = t;  // later submissions replace earlier ones
  }
  sqlite3_finalize(s);
  return out;
}

void record_task_states(Store& main, const std::vector<TaskState>& now) {
  sqlite3* db = main.handle();
  if (!table_exists(db, "slurm_tasks") || now.empty()) return;
  check_sql(db, main, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db,
                     "UPDATE slurm_tasks SET state = ?, node = COALESCE(NULLIF(?, ''), node), "
                     "seen_at = ? WHERE job_id = ? AND array_task_id = ?",
                     -1, &s, nullptr);
  const double seen = unix_now();
  for (const auto& t : now) {
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, t.state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, t.node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 3, seen);
    sqlite3_bind_int64(s, 4, t.job_id);
    sqlite3_bind_int64(s, 5, t.task_id);
    sqlite3_step(s);
  }
  sqlite3_finalize(s);
  check_sql(db, main, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr));
}

std::string task_note(const SubmittedTask& task, const std::vector<TaskState>& now) {
  const std::string id = fmt::format("{}_{}", task.job_id, task.task_id);
  for (const auto& t : now) {
    if (t.job_id != task.job_id || t.task_id != task.task_id) continue;
    std::string note = fmt::format("slurm {} {}", t.state, id);
    if (!t.node.empty()) note += " on " + t.node;
    if (!t.reason.empty()) note += " (" + t.reason + ")";
    return note;
  }
  return fmt::format("slurm {} no longer queued{}", id,
                     task.state.empty() ? "" : " (last seen " + task.state + ")");
}

std::map<int64_t, std::string> slurm_notes(Store& store) {
  std::map<int64_t, std::string> notes;
  auto submitted = latest_submissions(store);
  for (auto it = submitted.begin(); it != submitted.end();) {
    auto run = store.run(it->first);
    it = run && run->status != "finished" ? std::next(it) : submitted.erase(it);
  }
  if (submitted.empty()) return notes;
  const auto now = current_tasks();
  for (const auto& [run_id, task] : submitted) notes[run_id] = task_note(task, now);
  return notes;
}

}  // namespace mixlab
