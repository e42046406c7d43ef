-- mixlab results database, schema version 2 (PRAGMA user_version = 2).
-- This file is the documentation; results/store.cpp embeds the same statements.
-- Upgrades: a command that writes (sweep run, train) upgrades an older database when it opens
-- it (CREATE ... IF NOT EXISTS, then ALTER TABLE runs ADD COLUMN for the columns added since
-- version 1, listed under runs below). Read commands (report, status, plot, export) open the
-- file read-only and read an older database from an upgraded copy in memory.
--   1 -> 2: the meta table; runs.data_fingerprint, data_location, threads, blas; the view
--           variant_final redefined (two-pass std; store.cpp kRedefinedViews drops the old one).

-- Facts about the database itself, one row per key:
--   database_id  random hex made when the database was created; every checkpoint records it
--                (with its run_id and config_hash) and is used only by the database named
--                there, at the step runs.checkpoint_step names.
CREATE TABLE IF NOT EXISTS meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);

-- One row per sweep spec ever run into this database.
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id    INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,       -- the spec's "name"
  spec_json   TEXT NOT NULL,              -- the spec as given, after --set overrides
  spec_hash   TEXT NOT NULL,              -- content hash of the canonical spec
  created_at  REAL NOT NULL               -- unix seconds
);

-- One row per distinct resolved config (seed included): a run is trained once per
-- database, however many sweeps list it.
CREATE TABLE IF NOT EXISTS runs (
  run_id          INTEGER PRIMARY KEY,
  config_json     TEXT NOT NULL,          -- canonical JSON of the resolved config
  config_hash     TEXT NOT NULL UNIQUE,   -- its content hash: the run's identity
  seed            INTEGER NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','running','finished','failed','killed')),
  attempt         INTEGER NOT NULL DEFAULT 0,  -- how many times a worker has started it
  worker          TEXT,                   -- host:pid:nonce:boot_id:pid_namespace of its holder
  heartbeat       REAL,                   -- unix seconds, refreshed while running
  started_at      REAL,                   -- first start
  ended_at        REAL,
  host            TEXT,
  device          TEXT,                   -- cpu | cuda:0 ...
  git_commit      TEXT,
  torch_version   TEXT,
  params_total    INTEGER,                -- every parameter
  params_active   INTEGER,                -- parameters a token's forward pass touches
  flops_per_token REAL,                   -- forward+backward training FLOPs per token
  train_tokens    INTEGER,                -- size of the training split in tokens
  passes          REAL,                   -- tokens seen / train_tokens at the last step
  last_step       INTEGER,                -- last step whose metrics are committed
  checkpoint_step INTEGER,                -- step of the newest checkpoint on disk
  error           TEXT                    -- why it failed or was killed
);
-- Columns added to runs since version 1 (store.cpp kAddedRunColumns adds them with ALTER TABLE,
-- to new databases too, so this CREATE TABLE stays version 1's):
--   data_fingerprint  TEXT     hash of the content of the corpus the run trained on
--   data_location     TEXT     the corpus's resolved location (absolute path)
--   threads           INTEGER  CPU threads of the worker that trained it
--   blas              TEXT     the BLAS the matmuls ran on (OpenBLAS, MKL, ...)

-- Which runs a sweep holds, under which variant (the seed-free group of mean +- std).
CREATE TABLE IF NOT EXISTS sweep_runs (
  sweep_id  INTEGER NOT NULL REFERENCES sweeps(sweep_id),
  run_id    INTEGER NOT NULL REFERENCES runs(run_id),
  variant   TEXT NOT NULL,                -- variant name plus grid point, no seed
  name      TEXT NOT NULL,                -- variant plus seed: unique in the sweep
  position  INTEGER NOT NULL,             -- order of expansion
  PRIMARY KEY (sweep_id, run_id)
);

-- Scalar time series. One row per (run, key, step): a resumed run rewrites, never duplicates.
CREATE TABLE IF NOT EXISTS metrics (
  run_id  INTEGER NOT NULL REFERENCES runs(run_id),
  key     TEXT NOT NULL,
  step    INTEGER NOT NULL,
  value   REAL,                           -- NULL where the value was NaN
  wall_s  REAL NOT NULL,                  -- training wall-clock seconds at this step
  PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;

-- The last value of every metric of every run.
CREATE VIEW IF NOT EXISTS run_final AS
  SELECT m.run_id, m.key, m.step, m.value, m.wall_s
  FROM metrics m
  JOIN (SELECT run_id, key, MAX(step) AS step FROM metrics GROUP BY run_id, key) last
    USING (run_id, key, step);

-- One row per run of each sweep, with its headline numbers.
CREATE VIEW IF NOT EXISTS run_overview AS
  SELECT s.name AS sweep, sr.variant, sr.name AS run_name, r.seed, r.run_id, r.status,
         r.last_step, r.passes, r.params_total, r.params_active, r.flops_per_token,
         (SELECT value FROM run_final f WHERE f.run_id = r.run_id AND f.key = 'eval/loss') AS eval_loss,
         (SELECT value FROM run_final f WHERE f.run_id = r.run_id AND f.key = 'train/loss') AS train_loss,
         (SELECT value FROM run_final f WHERE f.run_id = r.run_id AND f.key = 'time/wall_s') AS wall_s,
         r.error
  FROM sweep_runs sr JOIN sweeps s USING (sweep_id) JOIN runs r USING (run_id);

-- Final value of each metric per variant: mean and sample std over the finished seeds.
-- The std is two-pass (squared deviations from the mean, which a first pass computes): the
-- one-pass sum-of-squares formula cancels catastrophically when the spread is small next to
-- the values (a relative error of 3e-4 on a loss of 2.3 with a std of 1e-4).
CREATE VIEW IF NOT EXISTS variant_final AS
  WITH finals AS (
    SELECT s.name AS sweep, sr.variant, f.key, f.value
    FROM run_final f JOIN sweep_runs sr USING (run_id) JOIN sweeps s USING (sweep_id)
    JOIN runs r USING (run_id)
    WHERE r.status = 'finished'),
  means AS (
    SELECT sweep, variant, key, COUNT(value) AS n, AVG(value) AS mean
    FROM finals GROUP BY sweep, variant, key)
  SELECT m.sweep, m.variant, m.key, m.n, m.mean,
         CASE WHEN m.n > 1 THEN
           sqrt(SUM((f.value - m.mean) * (f.value - m.mean)) / (m.n - 1))
         ELSE 0.0 END AS std
  FROM means m JOIN finals f USING (sweep, variant, key)
  GROUP BY m.sweep, m.variant, m.key;

-- Every metric point labelled with its sweep, variant and seed: what a plot reads.
CREATE VIEW IF NOT EXISTS curves AS
  SELECT s.name AS sweep, sr.variant, r.seed, m.run_id, m.key, m.step, m.value, m.wall_s
  FROM metrics m JOIN runs r USING (run_id) JOIN sweep_runs sr USING (run_id)
  JOIN sweeps s USING (sweep_id);

-- Per sweep, variant, metric and step: the statistics over seeds that a seed-band plot draws
-- (sweep plot computes the same from the metrics; this is for sqlite3 -csv ... | gnuplot).
CREATE VIEW IF NOT EXISTS variant_curves AS
  SELECT sweep, variant, key, step, COUNT(value) AS n, AVG(value) AS mean,
         MIN(value) AS min, MAX(value) AS max, AVG(wall_s) AS wall_s
  FROM curves
  GROUP BY sweep, variant, key, step;

-- Runs submitted to Slurm by `sweep submit`: one row per array task, so a run submitted again
-- has one row per submission (the newest is the one that counts). The task trains into its
-- per-run database `<db stem>.runs/<config hash>.db`; `sweep collect` takes it in.
CREATE TABLE IF NOT EXISTS slurm_tasks (
  run_id         INTEGER NOT NULL REFERENCES runs(run_id),
  job_id         INTEGER NOT NULL,        -- the array job's id (SLURM_ARRAY_JOB_ID)
  array_task_id  INTEGER NOT NULL,        -- the run's index in it (SLURM_ARRAY_TASK_ID)
  script         TEXT NOT NULL,           -- the job script submitted (absolute path)
  submitted_at   REAL NOT NULL,           -- unix seconds
  state          TEXT,                    -- last Slurm state seen (PENDING, RUNNING, ...)
  node           TEXT,                    -- where it last ran
  seen_at        REAL,                    -- when that state was seen (unix seconds)
  PRIMARY KEY (job_id, array_task_id)
);
