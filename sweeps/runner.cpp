#include "sweeps/runner.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "analysis/summary.h"
#include "analysis/sweep_progress.h"
#include "build_info.h"
#include "experiments/checkpoint.h"
#include "experiments/corpus.h"
#include "experiments/cpu_runtime.h"
#include "experiments/trainer.h"
#include "results/collect.h"
#include "results/fault_injection.h"
#include "results/store.h"
#include "sweeps/data_identity.h"
#include "sweeps/slurm.h"
#include "sweeps/validate.h"

extern char** environ;

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// ---- signals: the first SIGINT/SIGTERM stops after a checkpoint, a second one kills ------
std::atomic<int> g_stop_signal{0};

void on_stop_signal(int sig) {
  fault::g_pause_released.store(true);
  if (g_stop_signal.exchange(sig) != 0) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string host_name() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// ---- who a worker is -----------------------------------------------------------------
// host:pid:nonce:boot_id:pid_namespace. A pid names a process only within its PID namespace
// and boot: two `sweep run` on one host name in different containers (or a host process beside
// a container) see each other's pids as dead, or as someone else. So a worker's liveness is
// decided by its pid only when it runs on this host, in this boot and in this PID namespace;
// anywhere else by its heartbeat alone (claim_next's --stale-after).
std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "noboot" : id;
}

std::string pid_namespace() {
  std::error_code ec;
  const std::string link = fs::read_symlink("/proc/self/ns/pid", ec).string();  // pid:[4026531836]
  std::string digits;
  for (char c : link)
    if (c >= '0' && c <= '9') digits += c;
  return digits.empty() ? "nons" : digits;
}

std::string new_worker_id() {
  std::random_device rd;
  return fmt::format("{}:{}:{:08x}:{}:{}", host_name(), ::getpid(), rd(), boot_id(),
                     pid_namespace());
}

// True when `worker` is known to have exited: it ran here (same host, boot and PID namespace)
// and its pid no longer exists (or is a zombie). False when it lives or cannot be told.
bool worker_is_gone(const std::string& worker) {
  std::vector<std::string> fields;
  for (size_t start = 0;;) {
    const size_t colon = worker.find(':', start);
    fields.push_back(worker.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (fields.size() != 5) return false;  // a version-1 identity: heartbeat only
  static const std::string host = host_name(), boot = boot_id(), ns = pid_namespace();
  if (fields[0] != host || fields[3] != boot || fields[4] != ns) return false;
  const pid_t pid = std::atoi(fields[1].c_str());
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

torch::Device resolve_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda" || device == "auto") {
    if (torch::cuda::is_available()) return torch::Device(torch::kCUDA, 0);
    if (device == "cuda")
      throw ConfigError("--device", "cuda", "no CUDA device is available to this LibTorch");
    return torch::kCPU;
  }
  throw ConfigError("--device", device, "must be cpu, cuda or auto");
}

// Each of the `jobs` workers gets an equal share of the cores unless --threads says otherwise.
void set_threads(const RunnerOptions& options) {
  int threads = options.threads;
  if (threads <= 0)
    threads = std::max(1, int(std::thread::hardware_concurrency()) / std::max(1, options.jobs));
  set_cpu_threads(threads);
}

// `<folder of the database file>/checkpoints/<config hash>-<database id>.pt`. The folder is the
// real one (symlinks resolved), so a database has one checkpoint folder however its path is
// written; the database id keeps two databases in one folder (or a database deleted and made
// again at the same path) from ever reading each other's checkpoints.
// (RunnerOptions::checkpoint_dir, where set, replaces the folder.)
std::string checkpoint_path(const Store& store, const RunnerOptions& options,
                            const std::string& config_hash) {
  std::error_code ec;
  fs::path real = fs::canonical(store.path(), ec);
  if (ec) real = fs::absolute(store.path());
  const fs::path dir = options.checkpoint_dir.empty() ? real.parent_path() / "checkpoints"
                                                      : fs::path(options.checkpoint_dir);
  return (dir / (config_hash + "-" + store.database_id() + ".pt")).string();
}

// Whether the run resumes from its checkpoint: the file must be this run's of this database, at
// the step the database records. Anything else is ignored (the run trains from step 0 and its
// first checkpoint replaces the file), and `why` says why.
bool resumable_checkpoint(const std::string& path, const Store& store, const RunRow& run,
                          std::string& why) {
  why.clear();
  if (!fs::exists(path)) return false;
  const CheckpointState state = inspect_checkpoint(path);
  why = checkpoint_mismatch(state, {run.config_hash, store.database_id(), run.run_id},
                            run.checkpoint_step);
  return why.empty();
}

// A run is reclaimed when its heartbeat is older than --stale-after; the heartbeat is written
// every stale/4 seconds (at least every second, at most every 15). Below kMinStaleAfterS a busy
// database or a slow step would make two live workers take the run from each other (at 0,
// every claim would).
constexpr double kMinStaleAfterS = 5;
void check_stale_after(const RunnerOptions& options) {
  if (!(options.stale_after_s >= kMinStaleAfterS))
    throw ConfigError("--stale-after", fmt::format("{}", options.stale_after_s),
                      fmt::format("must be at least {} seconds (the heartbeat is written every "
                                  "stale-after/4 seconds, at least every second)",
                                  kMinStaleAfterS));
}

// A database path whose folder cannot be made is bad input (exit 2), named in one line.
void open_parent_dir(const std::string& db_path) {
  fs::path dir = fs::path(db_path).parent_path();
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);  // no error when it exists (or another process just made it)
  if (ec)
    throw StoreError(
        fmt::format("{}: cannot create the folder {}: {}", db_path, dir.string(), ec.message()));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = std::llround(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

double metric_value(const Metrics& metrics, const std::string& key) {
  for (const auto& [k, v] : metrics)
    if (k == key) return v;
  return std::nan("");
}

// What `sweep run` prints while it trains: a line when a run starts or ends, and for every
// evaluation step (and at least every kQuietPeriodS seconds between them) a line with the
// sweep's progress, the run's step, loss and throughput, and the time left:
//   [1/4 runs done] mot seed=0  step 40/100  loss 3.2100  eval 3.3012  5400 tok/s  run 12s left,
//   sweep ~1m05s left
// The sweep's time left is its remaining steps (read from the database, so it counts the work
// of other workers) over this process's rate times --jobs.
class ProgressPrinter {
 public:
  static constexpr double kQuietPeriodS = 10;

  ProgressPrinter(Store& store, std::string sweep, const RunnerOptions& options)
      : store_(store), sweep_(std::move(sweep)), options_(options) {}

  void start_run(const RunRow& run, int64_t steps, int64_t eval_every) {
    run_ = run.name;
    steps_ = steps;
    eval_every_ = eval_every;
    last_step_ = -1;
  }

  void say(const std::string& line) {
    if (options_.quiet) return;
    std::cout << fmt::format("[{}] {}", run_, line) << std::endl;
    last_line_ = Clock::now();
  }

  void on_log(int64_t step, const Metrics& metrics) {
    if (last_step_ >= 0 && step > last_step_) {
      trained_steps_ += step - last_step_;
      trained_s_ += metric_value(metrics, "time/step_ms") * double(step - last_step_) / 1000.0;
    }
    last_step_ = step;
    if (options_.quiet || step == 0) return;
    const bool eval_step = step == steps_ || (eval_every_ > 0 && step % eval_every_ == 0);
    if (!eval_step &&
        std::chrono::duration<double>(Clock::now() - last_line_).count() < kQuietPeriodS)
      return;
    int64_t finished = 0, remaining_steps = 0;
    const auto runs = store_.sweep_runs(sweep_);
    for (const auto& r : runs) {
      if (r.status == "finished") {
        ++finished;
        continue;
      }
      if (r.status == "failed" && r.attempt >= options_.max_attempts) continue;
      const Json config = Json::parse(r.config_json);
      const int64_t total = config.value("/train/steps"_json_pointer, int64_t(0));
      remaining_steps += std::max<int64_t>(0, total - r.last_step.value_or(0));
    }
    const double step_s = trained_steps_ > 0 ? trained_s_ / double(trained_steps_) : NAN;
    std::string line =
        fmt::format("[{}/{} runs done] {}  step {}/{}  loss {:.4f}", finished, runs.size(), run_,
                    step, steps_, metric_value(metrics, "train/loss"));
    const double eval = metric_value(metrics, "eval/loss");
    if (std::isfinite(eval)) line += fmt::format("  eval {:.4f}", eval);
    line += fmt::format(
        "  {:.0f} tok/s  run {} left, sweep ~{} left",
        metric_value(metrics, "throughput/tokens_per_s"),
        format_duration(step_s * double(steps_ - step)),
        format_duration(step_s * double(remaining_steps) / double(std::max(1, options_.jobs))));
    if (!options_.quiet) std::cout << line << std::endl;
    last_line_ = Clock::now();
  }

 private:
  using Clock = std::chrono::steady_clock;
  Store& store_;
  std::string sweep_, run_;
  const RunnerOptions& options_;
  int64_t steps_ = 0, eval_every_ = 0, last_step_ = -1, trained_steps_ = 0;
  double trained_s_ = 0;
  Clock::time_point last_line_ = Clock::now();
};

// Runs on this host whose worker process no longer exists are released at once (killed),
// instead of waiting for their heartbeat to go stale.
void release_dead_local_workers(Store& store, const std::string& sweep) {
  for (const RunRow& run : store.sweep_runs(sweep))
    if (run.status == "running" && worker_is_gone(run.worker))
      store.release_run(run.run_id, run.worker,
                        fmt::format("worker {} died (found by a later sweep run)", run.worker));
}

// The runs of the sweep that other workers are training now.
std::vector<RunRow> runs_trained_elsewhere(Store& store, const std::string& sweep,
                                           const std::string& worker) {
  std::vector<RunRow> out;
  for (const RunRow& run : store.sweep_runs(sweep))
    if (run.status == "running" && run.worker != worker) out.push_back(run);
  return out;
}

// Runs no sweep lists any more (a variant removed with --allow-changed) are kept, metrics and
// checkpoint included (never lose a result); `sweep status` lists them so they are not
// invisible. A spec that lists the config again gets them back as they were.
void print_orphaned_runs(Store& store) {
  const auto orphans = store.orphaned_runs();
  if (orphans.empty()) return;
  std::cout << fmt::format(
      "orphaned: {} run(s) no sweep lists (kept with their metrics; a spec listing the same "
      "config gets them back)\n",
      orphans.size());
  for (const auto& run : orphans) {
    const Json config = Json::parse(run.config_json);
    std::cout << fmt::format("  {:<8} run {} ffn.type={} seed={} step {} config {}\n", run.status,
                             run.run_id, config.value("/ffn/type"_json_pointer, std::string("?")),
                             run.seed, run.last_step.value_or(0), run.config_hash);
  }
}

// Writes a run's progress into the store, and keeps its heartbeat fresh from a thread.
class StoreHooks : public TrainHooks {
 public:
  StoreHooks(Store& store, const std::string& db_path, const RunRow& run, std::string worker,
             double stale_after_s, ProgressPrinter& progress)
      : store_(store), run_(run), worker_(std::move(worker)), progress_(progress) {
    const double period = std::max(1.0, std::min(15.0, stale_after_s / 4));
    beat_ = std::thread([this, db_path, period] {
      try {
        Store own(db_path, false);  // one connection per thread
        std::unique_lock<std::mutex> lock(mutex_);
        while (!done_) {
          if (cv_.wait_for(lock, std::chrono::duration<double>(period), [this] { return done_; }))
            break;
          try {
            own.heartbeat(run_.run_id, worker_);
          } catch (const LostOwnership&) {
            lost_ = true;
          } catch (const std::exception&) {
            // a busy (or, for a moment, full) database: the next beat retries
          }
        }
      } catch (const std::exception&) {
      }
    });
  }
  ~StoreHooks() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    beat_.join();
  }

  void on_start(const RunFacts& facts) override {
    RunInfo info;
    info.host = host_name();
    info.device = facts.device;
    info.git_commit = MIXLAB_GIT_COMMIT;
    info.torch_version = facts.torch_version;
    info.params_total = facts.cost.params_total;
    info.params_active = facts.cost.params_active;
    info.flops_per_token = facts.cost.train_flops_per_token();
    info.train_tokens = facts.train_tokens;
    fill_run_info(info, environment);
    store_.set_run_info(run_.run_id, worker_, info);
  }
  RunEnvironment environment;  // the data and numerics recorded with the run
  void on_resume(int64_t step) override { store_.delete_metrics_after(run_.run_id, worker_, step); }
  void on_log(int64_t step, const Metrics& metrics, double wall_s, double passes) override {
    store_.log_step(run_.run_id, worker_, step, metrics, wall_s, passes);
    fault::point("logged");
    progress_.on_log(step, metrics);
  }
  void commit_checkpoint(int64_t step, const std::function<void()>& move_into_place) override {
    store_.commit_checkpoint(run_.run_id, worker_, step, move_into_place);
  }
  bool stop_requested() override {
    fault::point("step");
    return g_stop_signal.load() != 0 || lost_.load();
  }
  bool lost() const { return lost_.load(); }

 private:
  Store& store_;
  RunRow run_;
  std::string worker_;
  ProgressPrinter& progress_;
  std::thread beat_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> lost_{false};
};

// Waits (a second at a time) while runs of the sweep are trained by other workers, so that a
// sweep is reported only once every run it lists has ended: another sweep sharing a run, or a
// --jobs sibling, may still be training it. Says so after kWaitQuietS seconds, then every
// kWaitEveryS. Returns false when nothing is left to wait for.
class ElsewhereWaiter {
 public:
  static constexpr double kWaitQuietS = 10, kWaitEveryS = 60;
  bool wait(Store& store, const std::string& sweep, const std::string& worker, bool quiet) {
    const auto others = runs_trained_elsewhere(store, sweep, worker);
    if (others.empty()) return false;
    const double now = unix_now();
    if (since_ == 0) since_ = now;
    if (!quiet && now - since_ >= kWaitQuietS && now - said_at_ >= kWaitEveryS) {
      std::string names;
      for (const auto& run : others)
        names += fmt::format("{}{} (step {}, worker {})", names.empty() ? "" : ", ", run.name,
                             run.last_step.value_or(0), run.worker);
      std::cout << fmt::format("[{}] waiting for {} run(s) being trained by other workers: {}",
                               sweep, others.size(), names)
                << std::endl;
      said_at_ = now;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return true;
  }

 private:
  double since_ = 0, said_at_ = 0;
};

// Claims and trains runs of the sweep until none is left and none is being trained elsewhere.
// Returns an exit status.
int work_loop(Store& store, const SweepRow& sweep, const RunnerOptions& options,
              const std::string& db_path) {
  const torch::Device device = resolve_device(options.device);
  set_threads(options);
  const std::string worker = new_worker_id();
  const double session_start = options.session_start > 0 ? options.session_start : unix_now();
  ProgressPrinter progress(store, sweep.name, options);
  ElsewhereWaiter waiter;
  int status = 0;
  while (g_stop_signal.load() == 0) {
    release_dead_local_workers(store, sweep.name);
    auto claimed = store.claim_next(sweep.sweep_id, worker, options.stale_after_s,
                                    options.max_attempts, session_start);
    if (!claimed) {
      if (waiter.wait(store, sweep.name, worker, options.quiet)) continue;
      break;
    }
    const RunRow& run = *claimed;
    auto say = [&](const std::string& line) { progress.say(line); };
    progress.start_run(run, 0, 0);  // names the run in lines printed before its config is read
    try {
      RunConfig config = parse_run_config(Json::parse(run.config_json), sweep.name);
      progress.start_run(run, config.train.steps, config.eval.every);
      TrainOptions train_options;
      train_options.device = device;
      train_options.checkpoint_path = checkpoint_path(store, options, run.config_hash);
      train_options.database_id = store.database_id();
      train_options.run_id = run.run_id;
      // This worker owns the run now: what earlier holders left half-written goes.
      remove_checkpoint_temporaries(train_options.checkpoint_path);
      std::string ignored_because;
      const bool resumable =
          resumable_checkpoint(train_options.checkpoint_path, store, run, ignored_because);
      train_options.resume = resumable;
      if (!ignored_because.empty())
        say(fmt::format("ignoring the checkpoint {}: {}", train_options.checkpoint_path,
                        ignored_because));
      say(run.attempt == 1 && !resumable ? "starting"
          : resumable
              ? fmt::format("resuming from its checkpoint (attempt {})", run.attempt)
              : fmt::format("starting again from step 0: no checkpoint (attempt {})", run.attempt));
      StoreHooks hooks(store, db_path, run, worker, options.stale_after_s, progress);
      hooks.environment = environment_of_claimed_run(run, config, resumable, say);
      // Without a checkpoint the run trains from step 0: what an earlier attempt recorded is
      // written again, so none of it may survive (an attempt may have logged steps it never
      // checkpointed, or failed at a later step than this one will reach).
      if (!resumable) store.delete_metrics_after(run.run_id, worker, -1);
      TrainResult result = train_run(config, train_options, hooks);
      if (result.finished) {
        // Never a finished run without its history: the last step must be recorded.
        const auto recorded = store.run(run.run_id);
        if (!recorded || recorded->last_step != config.train.steps)
          throw std::runtime_error(fmt::format(
              "the run reached step {} but the database records its metrics only up to step {}",
              result.step, recorded && recorded->last_step ? *recorded->last_step : -1));
        store.end_run(run.run_id, worker, "finished", "");
        say("finished");
      } else if (hooks.lost()) {
        say("lost to another worker (stale heartbeat); moving on");
      } else {
        store.end_run(
            run.run_id, worker, "killed",
            fmt::format("stopped by signal {} at step {}", g_stop_signal.load(), result.step));
        say(fmt::format("stopped at step {} (checkpoint written); rerun to resume", result.step));
        return 130;
      }
    } catch (const LostOwnership& e) {
      say(std::string("lost: ") + e.what());
    } catch (const EnvironmentError& e) {
      // A full or failing disk: not the run's fault. It is released as killed (a killed run is
      // taken again by the next sweep run whatever its attempts), and this worker stops: the
      // next write would fail the same way. Releasing is itself a write and may fail too; then
      // the next sweep run finds this worker gone and releases the run.
      try {
        store.release_run(run.run_id, worker, std::string("environment: ") + e.what());
      } catch (const std::exception&) {
      }
      throw;
    } catch (const CheckpointError& e) {
      // Rare: register_and_run checked every checkpoint before the first write; this one went
      // bad since. The claim cannot be taken back, so the run is released as killed (it keeps its
      // metrics and the file stays for the user to inspect or delete) and the error ends the
      // sweep with exit status 2.
      store.release_run(run.run_id, worker, e.what());
      throw;
    } catch (const ConfigError& e) {
      store.end_run(run.run_id, worker, "failed", e.what());
      say(std::string("failed: ") + e.what());
      status = 1;
    } catch (const std::exception& e) {
      std::string what = e.what();
      what = what.substr(0, what.find("\nException raised from"));
      store.end_run(run.run_id, worker, "failed", what);
      say("failed: " + what);
      status = 1;
    }
  }
  return g_stop_signal.load() != 0 ? 130 : status;
}

// Spawns `jobs` copies of this binary as workers on the sweep and waits for them.
int spawn_workers(const std::string& sweep, const RunnerOptions& options) {
  // What this process has printed goes out before the workers' lines, not after them.
  std::cout.flush();
  std::vector<pid_t> children;
  for (int i = 0; i < options.jobs; ++i) {
    std::vector<std::string> args = {"sweep",
                                     "worker",
                                     sweep,
                                     "--db",
                                     options.db_path,
                                     "--device",
                                     options.device,
                                     "--threads",
                                     std::to_string(options.threads),
                                     "--jobs",
                                     std::to_string(options.jobs),
                                     "--stale-after",
                                     std::to_string(options.stale_after_s),
                                     "--max-attempts",
                                     std::to_string(options.max_attempts),
                                     "--session-start",
                                     fmt::format("{:.6f}", options.session_start),
                                     "--parent",
                                     std::to_string(::getpid())};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start a worker process");
    children.push_back(pid);
  }
  int worst = 0;
  bool forwarded = false;
  for (pid_t child : children) {
    int wstatus = 0;
    while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
      // A stop signal sent to this process alone (kill, a scheduler) reaches every worker,
      // not only the one being waited for; each checkpoints and ends its run as killed.
      if (int sig = g_stop_signal.load(); sig != 0 && !forwarded) {
        for (pid_t other : children) kill(other, sig);
        forwarded = true;
      }
    }
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    worst = std::max(worst, code);
  }
  return worst;
}

void flatten(const Json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = canonical_dump(j);
  }
}

std::string changed_keys(const Json& before, const Json& after) {
  std::map<std::string, std::string> a, b;
  flatten(before, "", a);
  flatten(after, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a)
    if (!b.count(k) || b[k] != v) keys.insert(k);
  for (const auto& [k, v] : b)
    if (!a.count(k)) keys.insert(k);
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

int finish(Store& store, const std::string& sweep, int status, const RunnerOptions& options) {
  if (!options.quiet || status != 130)
    std::cout << "\n" << format_summary(sweep, summarize_sweep(store, sweep));
  for (const auto& run : store.sweep_runs(sweep))
    if (run.status == "failed" && status == 0) status = 1;
  return status;
}

int register_and_run(const SweepSpec& spec, const RunnerOptions& options, bool allow_changed) {
  open_parent_dir(options.db_path);
  Store store(options.db_path);
  const Json spec_json = spec.spec_with_overrides();
  if (auto existing = store.find_sweep(spec.name);
      existing && existing->spec_hash != spec.spec_hash() && !allow_changed) {
    throw ConfigError(
        spec.file, "name", "\"" + spec.name + "\"",
        fmt::format("{} already holds this sweep from a different spec (changed: {}); pass "
                    "--allow-changed to update it (finished runs of unchanged configs are kept), "
                    "or rename the sweep",
                    options.db_path, changed_keys(Json::parse(existing->spec_json), spec_json)));
  }
  std::vector<PlannedRun> planned;
  for (const auto& p : spec.runs)
    planned.push_back(
        {p.name, p.variant, canonical_dump(p.config), content_hash(p.config), p.seed});
  // A run whose corpus changed since it trained is refused before anything is written, or,
  // when the user asks, trained again from step 0 (below, after the last refusal).
  const auto changed_data = runs_with_changed_data(store, planned, run_configs(spec));
  if (!changed_data.empty() && !options.retrain_changed_data)
    throw ConfigError(spec.file, "data", "", changed_data_message(changed_data));
  // A run that will resume must have a usable checkpoint: check them all before the first
  // write, so an unusable one (truncated, corrupt, another config's) is refused with the
  // database left exactly as it was, and the user can delete or restore the file and rerun.
  // (sweep submit leaves this to each Slurm task, which checks its run's checkpoint itself.)
  for (const auto& p : planned) {
    if (options.record_only) break;
    if (is_changed(changed_data, p.config_hash)) continue;  // trained again from step 0
    const std::string path = checkpoint_path(store, options, p.config_hash);
    if (!fs::exists(path)) continue;
    if (auto run = store.run_by_hash(p.config_hash); run && run->status == "finished") continue;
    inspect_checkpoint(path);
  }
  if (!changed_data.empty()) {
    // A run left `running` by a worker that died (killed mid-run) is released first, so it
    // can be reset; one whose worker is alive is refused by the reset.
    release_dead_local_workers(store, spec.name);
    reset_runs_for_new_data(store, changed_data, [&](const std::string& hash) {
      return checkpoint_path(store, options, hash);
    });
    if (!options.quiet)
      std::cout << fmt::format(
          "{} run(s) trained on a corpus that has changed: trained again from step 0 "
          "(--retrain-changed-data)\n",
          changed_data.size());
  }
  store.register_sweep(spec.name, canonical_dump(spec_json), spec.spec_hash(), planned);
  if (options.record_only) return 0;
  auto sweep = store.find_sweep(spec.name);

  install_stop_handlers();
  int done = 0;
  for (const auto& run : store.sweep_runs(spec.name)) done += run.status == "finished";
  if (!options.quiet)
    std::cout << fmt::format("sweep {}: {} runs, {} already finished; database {}\n", spec.name,
                             spec.runs.size(), done, options.db_path);
  int status = options.jobs > 1 ? spawn_workers(spec.name, options)
                                : work_loop(store, *sweep, options, options.db_path);
  return finish(store, spec.name, status, options);
}

}  // namespace

int run_sweep(const SweepCommand& command, const RunnerOptions& given_options) {
  RunnerOptions options = given_options;
  if (options.session_start <= 0) options.session_start = unix_now();
  check_stale_after(options);
  SweepSpec spec = load_spec(command.spec_file, command.overrides);
  std::vector<RunConfig> configs = validate_spec(spec);
  if (options.jobs < 1) throw ConfigError("--jobs", std::to_string(options.jobs), "must be >= 1");
  resolve_device(options.device);
  if (command.dry_run) {
    std::cout << fmt::format("sweep {}: {} runs (dry run: nothing written)\n", spec.name,
                             spec.runs.size());
    for (size_t i = 0; i < spec.runs.size(); ++i) {
      torch::NoGradGuard no_grad;
      Gpt model(configs[i].model, configs[i].ffn);
      ModelCost cost = model->cost();
      std::cout << fmt::format("  {:<40} params {:>10} active {:>10} train FLOP/token {:.3g}  {}\n",
                               spec.runs[i].name, cost.params_total, cost.params_active,
                               cost.train_flops_per_token(), configs[i].hash);
    }
    return 0;
  }
  return register_and_run(spec, options, command.allow_changed);
}

int train_config(const std::string& config_file, const std::string& sweep_name, bool use_db,
                 const RunnerOptions& given_options) {
  RunnerOptions options = given_options;
  if (options.session_start <= 0) options.session_start = unix_now();
  check_stale_after(options);
  Json raw = read_json_file(config_file);
  resolve_data_path(raw, config_file);  // a relative data.path is relative to the file
  RunConfig config = parse_run_config(raw, config_file);
  try {
    check_run_feasible(config);
  } catch (const ConfigError& e) {
    throw e.in_file(config_file);
  }
  if (!use_db) {
    const torch::Device device = resolve_device(options.device);
    set_threads(options);
    TrainHooks no_hooks;
    TrainOptions train_options;
    train_options.device = device;
    train_options.progress = [](const std::string& line) { std::cout << line << std::endl; };
    TrainResult result = train_run(config, train_options, no_hooks);
    for (const auto& [k, v] : result.last_eval) std::cout << fmt::format("{} {:.4f}\n", k, v);
    return 0;
  }
  SweepSpec spec;
  spec.file = config_file;
  spec.name = sweep_name.empty() ? fs::path(config_file).stem().string() : sweep_name;
  spec.spec = Json{{"name", spec.name}, {"base", config.json}};
  spec.runs.push_back({spec.name, spec.name, config.json, config.seed});
  return register_and_run(spec, options, /*allow_changed=*/false);
}

int run_worker(const std::string& sweep_name, const RunnerOptions& options) {
  install_stop_handlers();
  // A worker dies with the `sweep run` that started it: when the parent goes (even by SIGKILL),
  // the kernel sends SIGTERM, and the worker stops its run after a checkpoint as for Ctrl-C.
  // The parent may have gone before prctl: then it stops now.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (options.parent_pid > 0 && ::getppid() != options.parent_pid) {
    std::cerr << "worker: its sweep run (pid " << options.parent_pid << ") is gone; stopping\n";
    return 130;
  }
  Store store(options.db_path, false);
  auto sweep = store.find_sweep(sweep_name);
  if (!sweep) throw ConfigError(options.db_path, "sweep", sweep_name, "no such sweep");
  return work_loop(store, *sweep, options, options.db_path);
}

int print_status(const std::string& sweep_name, const RunnerOptions& options) {
  // Read-only, with the per-run databases of Slurm tasks collected into a copy in memory.
  const auto opened = open_for_reading(options.db_path);
  Store& store = *opened;
  const auto slurm = slurm_notes(store);  // run_id -> its Slurm task's state
  std::vector<SweepRow> sweeps;
  if (sweep_name.empty()) {
    sweeps = store.sweeps();
    if (sweeps.empty()) std::cout << options.db_path << ": the database holds no sweeps\n";
  } else if (auto s = store.find_sweep(sweep_name)) {
    sweeps.push_back(*s);
  } else {
    throw ConfigError(options.db_path, "sweep", sweep_name, "no such sweep in the database");
  }
  const double now = unix_now();
  for (const auto& sweep : sweeps) {
    // The same numbers as the page of `sweep serve` (analysis/sweep_progress.h).
    const SweepProgress progress = sweep_progress(store, sweep.name, now);
    std::string line = fmt::format("{}: {} runs", sweep.name, progress.runs.size());
    for (const auto& [status, n] : progress.per_status) line += fmt::format(", {} {}", n, status);
    line += fmt::format("; {:.1f}% of steps", 100 * progress.fraction);
    if (progress.seconds_left) line += fmt::format(", about {:.0f} s left", *progress.seconds_left);
    std::cout << line << "\n";
    for (const auto& run : progress.runs) {
      const auto task = slurm.find(run.run_id);
      if (run.status == "running" || run.status == "failed" || run.status == "killed" ||
          task != slurm.end())
        std::cout << fmt::format("  {:<8} {} step {} {}{}\n", run.status, run.name,
                                 run.last_step.value_or(0), run.error,
                                 task == slurm.end() ? "" : "  [" + task->second + "]");
    }
  }
  if (sweep_name.empty()) print_orphaned_runs(store);
  return 0;
}

}  // namespace mixlab
