#include "experiments/cpu_runtime.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

namespace mixlab {

void keep_freed_memory_in_process() {
  // Values as large as glibc accepts for a 64-bit process; setting them also turns off the
  // dynamic mmap threshold, which would otherwise cap at 32 MiB.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

std::string CpuThreads::describe() const {
  if (blas == 0) return fmt::format("{} LibTorch threads", intra_op);
  return fmt::format("{} OpenBLAS + {} LibTorch threads", blas, intra_op);
}

CpuThreads set_cpu_threads(int budget) {
  if (budget <= 0) budget = std::max(1, int(std::thread::hardware_concurrency()));
  // Looked up at run time: the BLAS under LibTorch is whatever libblas.so.3 points at (Debian's
  // alternatives), or MKL inside a pip LibTorch, where the symbol is absent.
  using SetThreads = void (*)(int);
  auto openblas_set_num_threads =
      reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  CpuThreads t;
  if (openblas_set_num_threads != nullptr) {
    openblas_set_num_threads(budget);
    t.blas = budget;
    t.intra_op = 1;
  } else {
    t.intra_op = budget;
  }
  torch::set_num_threads(t.intra_op);
  return t;
}

BlasInfo blas_in_use() {
  BlasInfo info;
  using GetConfig = char* (*)();
  using GetThreads = int (*)();
  void* get_config = dlsym(RTLD_DEFAULT, "openblas_get_config");
  void* get_threads = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  if (get_config == nullptr) return info;
  info.name = reinterpret_cast<GetConfig>(get_config)();
  Dl_info where;
  if (dladdr(get_config, &where) != 0 && where.dli_fname != nullptr) info.library = where.dli_fname;
  if (get_threads != nullptr) info.threads = reinterpret_cast<GetThreads>(get_threads)();
  return info;
}

}  // namespace mixlab
