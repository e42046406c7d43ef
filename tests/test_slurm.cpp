// sweep submit / collect on a real Slurm (scripts/slurm-local.sh starts a single-node cluster
// as root): a sweep as a job array, one task requeued mid-run, one cancelled and submitted
// again, one warned of its time limit (it requeues itself), everything collected exactly once
// and equal to a local `sweep run`. Plus the parts
// that need no cluster: the job script, the parsing of sbatch and squeue, and bad input.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <regex>
#include <thread>

#include "results/collect.h"
#include "results/store.h"
#include "sweep_fixture.h"
#include "sweeps/slurm.h"

using namespace mixlab;
using namespace mixlab::testing::sweep_fixture;
using testing::read_text;
using testing::sql_int;
using testing::sql_rows;

namespace {

// Three runs of 2000 steps (about 4 s each on the idle machine), checkpointed every 100: long
// enough to be caught mid-run.
std::string slurm_spec(const std::string& corpus) {
  return R"({
    "name": "slurm",
    "base": {
      "model": {"d_model": 16, "n_layers": 2, "n_heads": 2, "seq_len": 16},
      "ffn": {"type": "mot", "n_experts": 4, "group_size": 4, "expert_size": "flop_matched", "d_ff": 32},
      "data": {"corpus": "text", "path": ")" +
         corpus + R"("},
      "train": {"steps": 2000, "batch_size": 8, "log_every": 20, "checkpoint_every": 100},
      "eval": {"every": 500, "batches": 2}
    },
    "variants": [{"name": "dense", "ffn": {"type": "dense", "d_ff": 32}}, {"name": "mot"},
                 {"name": "mot T=0.5", "ffn.temperature": 0.5}],
    "seeds": [0]
  })";
}

// Polls `done` every 0.2 s for up to `seconds`; true when it held.
bool wait_until(const std::function<bool()>& done, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    try {
      if (done()) return true;
    } catch (const testing::SqlError&) {
      // a per-run file being written: ask again
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

// The single-node cluster, started for the test and stopped after it unless it was up before.
struct LocalSlurm {
  bool was_up = false;
  std::string script = std::string(MIXLAB_SOURCE_DIR) + "/scripts/slurm-local.sh";
  LocalSlurm() {
    was_up = contains(run_command("scontrol ping").output, "is UP");
    auto up = run_command("bash " + script + " up");
    INFO(up.output);
    REQUIRE(up.status == 0);
  }
  ~LocalSlurm() {
    if (!was_up) run_command("bash " + script + " down");
  }
};

int64_t job_id_in(const std::string& output) {
  std::smatch m;
  REQUIRE(std::regex_search(output, m, std::regex("submitted job (\\d+)")));
  return std::stoll(m[1].str());
}

}  // namespace

TEST_CASE("Slurm: sbatch and squeue output are parsed") {
  CHECK(parse_sbatch_job_id("123\n") == 123);
  CHECK(parse_sbatch_job_id("456;cluster7\n") == 456);
  CHECK(parse_sbatch_job_id("sbatch: warning: something\n789\n") == 789);
  CHECK(parse_sbatch_job_id("Submitted batch job") == -1);

  const auto tasks = parse_squeue(
      "12|0|RUNNING|node7|None\n12|3|PENDING||BeginTime\n40|N/A|COMPLETED|node1|None\n\n");
  REQUIRE(tasks.size() == 3);
  CHECK(tasks[0].job_id == 12);
  CHECK(tasks[0].task_id == 0);
  CHECK(tasks[0].state == "RUNNING");
  CHECK(tasks[0].node == "node7");
  CHECK(tasks[0].reason == "");
  CHECK(tasks[1].task_id == 3);
  CHECK(tasks[1].node == "");
  CHECK(tasks[1].reason == "BeginTime");
  CHECK(tasks[2].task_id == -1);  // not an array job

  CHECK(task_is_live("PENDING"));
  CHECK(task_is_live("RUNNING"));
  CHECK(task_is_live("REQUEUED"));
  CHECK_FALSE(task_is_live("COMPLETED"));
  CHECK_FALSE(task_is_live("CANCELLED"));
  CHECK_FALSE(task_is_live("FAILED"));

  SubmittedTask submitted;
  submitted.job_id = 12;
  submitted.task_id = 3;
  submitted.state = "PENDING";
  CHECK(task_note(submitted, tasks) == "slurm PENDING 12_3 (BeginTime)");
  submitted.task_id = 0;
  CHECK(task_note(submitted, tasks) == "slurm RUNNING 12_0 on node7");
  submitted.task_id = 5;
  CHECK(task_note(submitted, tasks) == "slurm 12_5 no longer queued (last seen PENDING)");
}

TEST_CASE("Slurm: time limits in seconds, and the warning before them") {
  CHECK(slurm_time_seconds("30") == 30 * 60);
  CHECK(slurm_time_seconds("30:15") == 30 * 60 + 15);
  CHECK(slurm_time_seconds("2:03:04") == 2 * 3600 + 3 * 60 + 4);
  CHECK(slurm_time_seconds("1-2") == 86400 + 2 * 3600);
  CHECK(slurm_time_seconds("1-2:03") == 86400 + 2 * 3600 + 3 * 60);
  CHECK(slurm_time_seconds("1-02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4);
  CHECK(slurm_time_seconds("1h") == -1);
  CHECK(slurm_time_seconds("") == -1);
  CHECK(time_limit_warning_s("") == 120);
  CHECK(time_limit_warning_s("02:00:00") == 120);
  CHECK(time_limit_warning_s("4") == 60);  // a quarter of 4 minutes
  CHECK(time_limit_warning_s("0:20") == 10);
}

TEST_CASE("Slurm: the job script maps each array index to its run and asks for what was given") {
  testing::TempDir dir;
  JobScript s;
  s.sweep = "gpu sweep";
  s.sweep_binary = "/bin/echo";  // the script's command, printed instead of run
  s.main_db = "/shared/my results/r.db";
  s.log_folder = "/shared/logs";
  s.runs = {{"aaaa", "dense seed=0"}, {"bbbb", "mot seed=0"}, {"cccc", "mot seed=1"}};
  s.options.gpus_per_run = 1;
  s.options.cpus_per_run = 4;
  s.options.max_parallel = 2;
  s.options.time = "01:00:00";
  s.options.partition = "gpu";
  s.options.mem = "16G";
  s.options.sbatch_args = {"--account=abc"};
  const std::string text = job_script_text(s);
  for (const char* line :
       {"#SBATCH --array=0-2%2\n", "#SBATCH --cpus-per-task=4\n", "#SBATCH --gres=gpu:1\n",
        "#SBATCH --time=01:00:00\n", "#SBATCH --partition=gpu\n", "#SBATCH --mem=16G\n",
        "#SBATCH --requeue\n", "#SBATCH --signal=B:USR1@120\n", "#SBATCH --account=abc\n",
        "#SBATCH --output=/shared/logs/%A_%a.out\n", "#SBATCH --job-name='mixlab-gpu sweep'\n"})
    CHECK_MESSAGE(contains(text, line), line);
  const std::string path = dir / "job.sh";
  testing::write_text(path, text);
  CHECK(run_command("bash -n " + path).status == 0);
  // Run as array task 1: the command of the second run, with the database path kept whole.
  auto task1 = run_command("SLURM_ARRAY_TASK_ID=1 bash " + path);
  CHECK(task1.status == 0);
  CHECK(task1.output ==
        "run-task --db /shared/my results/r.db --hash bbbb --device cuda --threads 4\n");

  s.options = SubmitOptions{};
  const std::string cpu = job_script_text(s);
  CHECK(contains(cpu, "#SBATCH --array=0-2\n"));
  CHECK_FALSE(contains(cpu, "--gres"));
  CHECK_FALSE(contains(cpu, "--time"));
  CHECK(contains(cpu, "--device cpu --threads 1\n"));
}

TEST_CASE("sweep submit: bad input and a missing sbatch write nothing, --dry-run only the script") {
  testing::SpecFixture f("spec.json", slurm_spec);
  const std::string folder = std::filesystem::path(f.db).parent_path().string();
  auto no_sbatch =
      run_command("env PATH=/nonexistent " + kSweep + " submit " + f.spec + " --db " + f.db);
  INFO(no_sbatch.output);
  CHECK(no_sbatch.status == 2);
  CHECK(count_lines(no_sbatch.output) == 1);
  CHECK(contains(no_sbatch.output, "sbatch"));
  CHECK_FALSE(std::filesystem::exists(folder));

  for (const std::string& bad :
       {std::string("--time 1h"), std::string("--mem lots"), std::string("--cpus-per-run 0"),
        std::string("--max-parallel -1"), std::string("--sbatch-arg=account")}) {
    auto r = run_command(kSweep + " submit " + f.spec + " --db " + f.db + " --dry-run " + bad);
    INFO(bad);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(contains(r.output, bad.substr(0, bad.find_first_of(" ="))));
    CHECK_FALSE(std::filesystem::exists(folder));
  }
  std::string spec = read_text(f.spec);
  testing::write_text(f.dir / "bad.json", spec.replace(spec.find("\"steps\""), 7, "\"stepz\""));
  auto bad_spec = run_command(kSweep + " submit " + (f.dir / "bad.json") + " --db " + f.db);
  CHECK(bad_spec.status == 2);
  CHECK(contains(bad_spec.output, "train.stepz"));
  CHECK_FALSE(std::filesystem::exists(folder));

  auto dry = run_command(kSweep + " submit " + f.spec + " --db " + f.db + " --dry-run");
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK(contains(dry.output, "3 to submit"));
  CHECK_FALSE(std::filesystem::exists(f.db));
  const std::string script = read_text(folder + "/slurm/slurm-1.sh");
  CHECK(contains(script, "#SBATCH --array=0-2\n"));
  CHECK(contains(script, "# dense seed=0\n"));
  CHECK(contains(script, " run-task --db " + std::filesystem::absolute(f.db).string()));
}

TEST_CASE("sweep submit on a real Slurm: requeued and cancelled tasks, collected exactly once") {
  if (geteuid() != 0) {
    MESSAGE("skipped: starting the single-node Slurm cluster (scripts/slurm-local.sh) needs root");
    return;
  }
  LocalSlurm cluster;
  testing::SpecFixture f("spec.json", slurm_spec);
  const std::string reference_db = f.dir / "reference/r.db";
  auto reference =
      run_command(kSweep + " run " + f.spec + " --db " + reference_db + " --threads 1");
  INFO(reference.output);
  REQUIRE(reference.status == 0);

  // A partition the cluster does not have is bad input, found before anything is written.
  auto bad_partition =
      run_command(kSweep + " submit " + f.spec + " --db " + f.db + " --partition nope");
  INFO(bad_partition.output);
  CHECK(bad_partition.status == 2);
  CHECK(count_lines(bad_partition.output) == 1);
  CHECK(contains(bad_partition.output, "invalid partition"));
  CHECK_FALSE(std::filesystem::exists(f.db));

  auto first = run_command(kSweep + " submit " + f.spec + " --db " + f.db);
  INFO(first.output);
  REQUIRE(first.status == 0);
  CHECK(contains(first.output, "3 to submit"));
  const int64_t job = job_id_in(first.output);
  std::vector<std::string> files;  // per-run database of array task 0, 1, 2
  for (const auto& row : sql_rows(f.db,
                                  "SELECT r.config_hash FROM sweep_runs JOIN runs r "
                                  "USING (run_id) ORDER BY position"))
    files.push_back(per_run_file(f.db, row[0]));
  REQUIRE(files.size() == 3);
  auto run_status = [&](int task) {
    return sql_rows(files[task], "SELECT status FROM runs")[0][0];
  };
  auto last_step = [&](int task) {
    return sql_int(files[task], "SELECT COALESCE(last_step, -1) FROM runs");
  };

  // Tasks 0 and 1 run (two CPUs, one each); both well into their runs, not finished:
  REQUIRE(wait_until(
      [&] { return last_step(0) >= 100 && last_step(1) >= 100 && run_status(0) == "running"; },
      60));
  // task 0 is requeued (it checkpoints, stops, and starts again) and task 1 cancelled at once;
  const std::string task0 = fmt::format("{}_0", job), task1 = fmt::format("{}_1", job);
  CHECK(run_command("scontrol requeue " + task0).status == 0);
  CHECK(run_command("scancel " + task1).status == 0);
  // a collect while tasks run takes the partial histories.
  auto partial = run_command(kSweep + " collect --db " + f.db);
  INFO(partial.output);
  CHECK(partial.status == 0);
  CHECK(sql_int(f.db, "SELECT COUNT(*) FROM runs WHERE last_step >= 100") >= 2);

  // Task 2 gets the time-limit warning (SIGUSR1 to the batch shell, as --signal=B:USR1@...
  // sends it): it checkpoints and requeues itself.
  REQUIRE(wait_until([&] { return last_step(2) >= 100; }, 60));
  const std::string task2 = fmt::format("{}_2", job);
  CHECK(run_command("scancel --batch --signal=USR1 " + task2).status == 0);

  REQUIRE(wait_until(
      [&] {
        return run_status(0) == "finished" && run_status(1) == "killed" &&
               run_status(2) == "finished";
      },
      150));
  const std::string log2 = read_text(f.dir / fmt::format("results/slurm/logs/{}.out", task2));
  INFO(log2);
  CHECK(contains(log2, "time limit near: checkpoint written; requeueing task " + task2));
  CHECK(contains(log2, "resuming from its checkpoint (attempt 2)"));
  CHECK(sql_int(files[2], "SELECT attempt FROM runs") == 2);
  const std::string log0 = read_text(f.dir / fmt::format("results/slurm/logs/{}.out", task0));
  INFO(log0);
  CHECK(contains(log0, "resuming from its checkpoint (attempt 2)"));
  CHECK(sql_int(files[0], "SELECT attempt FROM runs") == 2);
  CHECK(contains(sql_rows(files[1], "SELECT error FROM runs")[0][0], "stopped by signal 15"));

  // status reads the per-run files without collecting them: the cancelled run and its task.
  const std::string main_before = file_bytes(f.db);
  auto status = run_command(kSweep + " status --db " + f.db);
  INFO(status.output);
  CHECK(status.status == 0);
  CHECK(contains(status.output, "2 finished, 1 killed"));
  CHECK(contains(status.output, "killed   mot seed=0 step "));
  CHECK(contains(status.output, "[slurm "));
  CHECK(file_bytes(f.db) == main_before);

  // Submitting again submits only the cancelled run.
  auto second = run_command(kSweep + " submit " + f.spec + " --db " + f.db);
  INFO(second.output);
  REQUIRE(second.status == 0);
  CHECK(contains(second.output, "3 runs, 2 finished, 0 queued or running; 1 to submit"));
  job_id_in(second.output);
  REQUIRE(wait_until([&] { return run_status(1) == "finished"; }, 90));
  // A third submission while nothing is left submits nothing.
  auto third = run_command(kSweep + " submit " + f.spec + " --db " + f.db);
  CHECK(contains(third.output, "0 to submit"));

  // The read commands see every run finished before any collect, and write nothing ...
  const std::string uncollected = file_bytes(f.db);
  auto status_all = run_command(kSweep + " status --db " + f.db);
  CHECK(contains(status_all.output, "3 runs, 3 finished"));
  auto report = run_command(kSweep + " report slurm --table summary --format csv --db " + f.db);
  INFO(report.output);
  CHECK(report.status == 0);
  for (const char* variant : {"\ndense,1/1,", "\nmot,1/1,", "\nmot T=0.5,1/1,"})
    CHECK_MESSAGE(contains(report.output, variant), variant);
  CHECK(file_bytes(f.db) == uncollected);
  // ... and collect takes each in exactly once.
  auto collect = run_command(kSweep + " collect --db " + f.db);
  INFO(collect.output);
  CHECK(collect.status == 0);
  auto again = run_command(kSweep + " collect --db " + f.db);
  CHECK(contains(again.output, "collected 0 runs (0 finished); 0 unchanged, 3 already finished"));

  Store got(f.db, OpenMode::read_only), ref(reference_db, OpenMode::read_only);
  std::vector<int64_t> log_steps;
  for (int64_t s = 20; s <= 2000; s += 20) log_steps.push_back(s);
  for (const auto& run : got.sweep_runs("slurm")) {
    INFO(run.name);
    CHECK(run.status == "finished");
    CHECK(run.last_step == 2000);
    CHECK(steps_of(got, run.run_id, "train/loss") == log_steps);
    CHECK(steps_of(got, run.run_id, "eval/loss") == std::vector<int64_t>{0, 500, 1000, 1500, 2000});
  }
  CHECK(sql_int(f.db, "SELECT COUNT(*) FROM runs") == 3);
  CHECK(sql_int(f.db, "SELECT COUNT(*) FROM slurm_tasks") == 4);
  // Bit-identical to the local run: requeued, cancelled-and-resubmitted and plain runs alike.
  check_same_results(got, ref, "slurm");
}
