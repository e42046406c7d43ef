// The subcommands of `sweep`, one file per area, so each area adds its own commands:
//   cli_run.cpp       run, status, train (and the internal worker)
//   cli_analysis.cpp  report, plot, export
//   cli_bench.cpp     bench
//   cli_serve.cpp     serve
//   cli_specs.cpp     specs
//   cli_version.cpp   --version (a flag of `sweep` itself, not a subcommand)
//   cli_submit.cpp    submit, collect (Slurm; and the internal run-task)
// Each add_* function declares its subcommands on `app` and returns, per subcommand, the
// action to run when it was chosen. Actions return the exit status; main() maps exceptions
// to exit statuses (ConfigError, StoreError, CheckpointError: 2; anything else: 1).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace mixlab {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> action;
};

std::vector<Command> add_run_commands(CLI::App& app);
std::vector<Command> add_analysis_commands(CLI::App& app);
std::vector<Command> add_bench_commands(CLI::App& app);
std::vector<Command> add_serve_commands(CLI::App& app);
std::vector<Command> add_specs_commands(CLI::App& app);
void add_version_flag(CLI::App& app);
std::vector<Command> add_submit_commands(CLI::App& app);

}  // namespace mixlab
