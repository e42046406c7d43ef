#!/bin/bash
# Run on the GPU machine from the project's root: prints the CMake arguments that build
# against the CUDA LibTorch inside the machine's PyTorch and the SQLite carried in .gpu-deps/.
# Usage there:  cmake -S . -B /tmp/bc -G Ninja $(bash scripts/gpu-cmake-args.sh) && cmake --build /tmp/bc
tp=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
echo "-DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$tp" \
     "-DSQLite3_INCLUDE_DIR=$PWD/.gpu-deps/root/usr/include" \
     "-DSQLite3_LIBRARY=$PWD/.gpu-deps/root/usr/lib/x86_64-linux-gnu/libsqlite3.a"
