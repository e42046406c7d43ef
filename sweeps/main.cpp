// sweep: the mixlab command line. Exit status 0 success, 1 a failure while running,
// 2 bad input (a one-line message naming the file, the key and the value), 75 a full or
// failing disk (the run is released; free space and rerun), 130 stopped.
#include <iostream>

#include "experiments/checkpoint.h"
#include "experiments/config_reader.h"
#include "experiments/cpu_runtime.h"
#include "results/store.h"
#include "sweeps/commands.h"

using namespace mixlab;

int main(int argc, char** argv) {
  keep_freed_memory_in_process();
  CLI::App app{
      "mixlab: train and compare Mixture of Tokens, Mixture of Experts and dense Transformers.\n"
      "Results go to an SQLite database (default results/results.db); see README.md."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");
  add_version_flag(app);

  std::vector<Command> commands;
  for (auto add : {&add_run_commands, &add_analysis_commands, &add_bench_commands,
                   &add_specs_commands, &add_submit_commands, &add_serve_commands})
    for (auto& c : add(app)) commands.push_back(std::move(c));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto fail = [](const std::string& what, int status) {
    std::cerr << "error: " << what.substr(0, what.find('\n')) << std::endl;
    return status;
  };
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.action();
  } catch (const ConfigError& e) {
    return fail(e.what(), 2);
  } catch (const StoreError& e) {
    return fail(e.what(), 2);
  } catch (const EnvironmentError& e) {
    return fail(e.what(), kEnvironmentExitStatus);  // a full or failing disk: 75
  } catch (const CheckpointError& e) {
    return fail(e.what(), 2);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return 2;
}
