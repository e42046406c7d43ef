// sweep --version: what a timing or a bug report needs to say which build ran where.
#include <fmt/format.h>
#include <torch/torch.h>

#include <fstream>
#include <thread>

#include "build_info.h"
#include "experiments/cpu_runtime.h"
#include "sweeps/commands.h"

namespace mixlab {

namespace {
std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string version_text() {
  const std::string commit = std::string(MIXLAB_GIT_COMMIT).empty() ? "unknown" : MIXLAB_GIT_COMMIT;
  const BlasInfo blas = blas_in_use();
  const std::string blas_line =
      blas.name.empty()
          ? "BLAS: not OpenBLAS (no openblas_get_config in the process; LibTorch's own, e.g. MKL)"
          : fmt::format("BLAS: {} ({}), threads: {}", blas.name, blas.library, blas.threads);
  return fmt::format(
      "mixlab {} (commit {}, {} build)\n"
      "LibTorch {}, CUDA available: {}\n"
      "{}\n"
      "LibTorch threads: {}; CPU: {}, {} cores\n"
      "(the thread counts are this process's defaults: `sweep run` gives each worker "
      "cores / jobs, or --threads)",
      MIXLAB_VERSION, commit, MIXLAB_BUILD_TYPE, TORCH_VERSION,
      torch::cuda::is_available() ? "yes" : "no", blas_line, torch::get_num_threads(), cpu_model(),
      std::thread::hardware_concurrency());
}
}  // namespace

void add_version_flag(CLI::App& app) {
  app.set_version_flag("--version", &version_text,
                       "print the version, the commit, LibTorch, CUDA, the BLAS and threads");
}

}  // namespace mixlab
