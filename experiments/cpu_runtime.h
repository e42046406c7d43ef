// How a process that trains or benchmarks sets up the allocator and the CPU thread pools.
//
// Both settings were measured on the 2-core CI-class machine (README, "Performance"):
// - glibc returns every freed block above 128 KiB-32 MiB to the kernel, so a training step
//   that allocates the same large activations each time page-faults them back in every step;
//   in this VM that cost 200 ms for one 67 MB MoT activation (5 ms once memory is kept).
// - LibTorch's OpenMP pool and OpenBLAS's own pthread pool both spin while waiting; with both
//   sized to the cores they steal each other's cores and a 2-thread step runs 2-4x slower
//   than a 1-thread one. One pool gets the threads, the other gets one.
#pragma once

#include <string>

namespace mixlab {

// Keeps freed memory inside the process (mallopt: no mmap for large blocks, no trimming).
// Call once, first thing in main().
void keep_freed_memory_in_process();

struct CpuThreads {
  int intra_op = 1;  // LibTorch's OpenMP pool (elementwise ops, reductions, our attention)
  int blas = 0;      // OpenBLAS's pool (matmuls); 0: not controllable (no OpenBLAS loaded)
  std::string describe() const;
};

// Gives a process `budget` CPU threads (budget <= 0: every core). With OpenBLAS loaded the
// budget goes to OpenBLAS and LibTorch keeps one thread: at every shape measured the matmuls
// are where parallelism pays (at batch 256 x 256, d 512 the MoT layer runs 1.6x faster than
// with the split the other way round). Without OpenBLAS the budget goes to LibTorch.
CpuThreads set_cpu_threads(int budget);

// The BLAS under LibTorch's matmuls, asked of the loaded library: OpenBLAS's own description
// (openblas_get_config: version, build options, the core type it chose), the file it was
// loaded from and its current thread count. `name` is empty when no OpenBLAS is loaded (MKL
// inside a pip LibTorch).
struct BlasInfo {
  std::string name;
  std::string library;
  int threads = 0;
};
BlasInfo blas_in_use();

}  // namespace mixlab
