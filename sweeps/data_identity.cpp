#include "sweeps/data_identity.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <torch/torch.h>

#include <filesystem>

#include "experiments/cpu_runtime.h"

namespace mixlab {

namespace {
// What runs.blas says after a resume with other settings: "<now>; steps before N ran with
// ...", naming what the earlier steps ran with.
constexpr const char* kEarlierSteps = "; steps before ";

void exec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string what = message ? message : "unknown error";
    sqlite3_free(message);
    throw StoreError(fmt::format("{}: {}", sql.substr(0, sql.find(' ')), what));
  }
}
}  // namespace

CorpusIdentity run_data_identity(const RunConfig& config) {
  CorpusIdentity identity = corpus_identity(config.data);
  if (config.data.corpus == "synthetic") return identity;  // generated: no validation split
  const auto corpus = load_corpus(config.data);            // cached per process
  if (validation_layout(corpus->validation.numel(), config.train.batch_size, config.model.seq_len,
                        config.eval.batches) == ValidationLayout::strided)
    identity.fingerprint += "; eval windows: disjoint";
  return identity;
}

RunEnvironment current_environment(const RunConfig& config) {
  RunEnvironment env;
  env.data = run_data_identity(config);
  const BlasInfo blas = blas_in_use();
  const int intra_op = torch::get_num_threads();
  // The thread budget goes to OpenBLAS when it is loaded, else to LibTorch (cpu_runtime.h).
  env.threads = blas.name.empty() ? intra_op : blas.threads;
  env.blas = blas.name.empty() ? fmt::format("LibTorch's own BLAS ({} intra-op threads)", intra_op)
                               : fmt::format("{} ({} thread{}); LibTorch {} intra-op thread{}",
                                             blas.name, blas.threads, blas.threads == 1 ? "" : "s",
                                             intra_op, intra_op == 1 ? "" : "s");
  return env;
}

void fill_run_info(RunInfo& info, const RunEnvironment& environment) {
  info.data_fingerprint = environment.data.fingerprint;
  info.data_location = environment.data.location;
  info.threads = environment.threads;
  info.blas = environment.blas;
}

std::vector<ChangedData> runs_with_changed_data(Store& store,
                                                const std::vector<PlannedRun>& planned,
                                                const std::vector<RunConfig>& configs) {
  std::vector<ChangedData> out;
  for (size_t i = 0; i < planned.size() && i < configs.size(); ++i) {
    auto run = store.run_by_hash(planned[i].config_hash);
    if (!run || run->data_fingerprint.empty()) continue;  // never started, or recorded by v1
    CorpusIdentity now = run_data_identity(configs[i]);
    if (now.fingerprint != run->data_fingerprint)
      out.push_back({*run, planned[i].name, std::move(now)});
  }
  return out;
}

std::vector<RunConfig> run_configs(const SweepSpec& spec) {
  std::vector<RunConfig> out;
  for (const auto& run : spec.runs) out.push_back(parse_run_config(run.config, spec.file));
  return out;
}

bool is_changed(const std::vector<ChangedData>& changed, const std::string& config_hash) {
  for (const auto& c : changed)
    if (c.run.config_hash == config_hash) return true;
  return false;
}

std::string changed_data_message(const std::vector<ChangedData>& changed) {
  const ChangedData& first = changed.front();
  return fmt::format(
      "run \"{}\" ({}, step {}) trained on {} [{}], which now holds {} [{}]{}: pass "
      "--retrain-changed-data to train such runs again from step 0 on the new data, or restore "
      "the corpus",
      first.planned_name, first.run.status, first.run.last_step.value_or(0),
      first.run.data_location, first.run.data_fingerprint, first.now.location,
      first.now.fingerprint,
      changed.size() > 1 ? fmt::format(" (and {} more runs)", changed.size() - 1) : "");
}

void reset_runs_for_new_data(Store& store, const std::vector<ChangedData>& changed,
                             const std::function<std::string(const std::string&)>& checkpoint_of) {
  sqlite3* db = store.handle();
  exec(db, "BEGIN IMMEDIATE");
  try {
    for (const auto& c : changed) {
      sqlite3_stmt* check = nullptr;
      sqlite3_prepare_v2(db, "SELECT status, COALESCE(worker, '') FROM runs WHERE run_id = ?", -1,
                         &check, nullptr);
      sqlite3_bind_int64(check, 1, c.run.run_id);
      const bool running =
          sqlite3_step(check) == SQLITE_ROW &&
          std::string(reinterpret_cast<const char*>(sqlite3_column_text(check, 0))) == "running";
      sqlite3_finalize(check);
      if (running)
        throw ConfigError("--retrain-changed-data", "",
                          fmt::format("run \"{}\" is being trained right now (worker {}); stop it "
                                      "or wait for it, then rerun",
                                      c.planned_name, c.run.worker));
      const std::string id = std::to_string(c.run.run_id);
      exec(db, "DELETE FROM metrics WHERE run_id = " + id);
      exec(db,
           "UPDATE runs SET status = 'pending', attempt = 0, worker = NULL, heartbeat = NULL, "
           "started_at = NULL, ended_at = NULL, last_step = NULL, checkpoint_step = NULL, "
           "passes = NULL, data_fingerprint = NULL, data_location = NULL, threads = NULL, "
           "blas = NULL, error = NULL WHERE run_id = " +
               id);
    }
    // The files go before the commit: a crash in between leaves runs that still name their
    // old fingerprint without a checkpoint, which the next run refuses again (nothing lost
    // but what the user asked to retrain).
    for (const auto& c : changed) {
      std::error_code ec;
      std::filesystem::remove(checkpoint_of(c.run.config_hash), ec);
    }
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

RunEnvironment environment_of_claimed_run(const RunRow& run, const RunConfig& config, bool resuming,
                                          const std::function<void(const std::string&)>& say) {
  RunEnvironment env = current_environment(config);
  if (!run.data_fingerprint.empty() && run.data_fingerprint != env.data.fingerprint)
    throw ConfigError(
        "data", "",
        changed_data_message({{run, run.name.empty() ? run.config_hash : run.name, env.data}}));
  if (!resuming) return env;
  const std::string note = numerics_change_note(run, env);
  if (note.empty() && !run.blas.empty()) {
    env.blas = run.blas;  // unchanged: keeps what an earlier resume noted
  } else if (!note.empty()) {
    const int64_t step = run.checkpoint_step.value_or(0);
    say(
        fmt::format("{}: its losses may differ from an uninterrupted run's in the last digits "
                    "(runs.blas records both)",
                    *run.threads != env.threads
                        ? fmt::format("resuming with {} threads where steps before {} ran with {}",
                                      env.threads, step, *run.threads)
                        : fmt::format("resuming on {} where steps before {} ran on {}", env.blas,
                                      step, run.blas.substr(0, run.blas.find(kEarlierSteps)))));
    env.blas += "; " + note;
  }
  return env;
}

std::string numerics_change_note(const RunRow& run, const RunEnvironment& now) {
  if (!run.threads) return "";
  const std::string before = run.blas.substr(0, run.blas.find(kEarlierSteps));
  if (*run.threads == now.threads && before == now.blas) return "";
  std::string note = fmt::format("steps before {} ran with {} threads, {}",
                                 run.checkpoint_step.value_or(0), *run.threads, before);
  return note.size() > 400 ? note.substr(0, 397) + "..." : note;
}

}  // namespace mixlab
