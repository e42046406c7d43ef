#!/usr/bin/env bash
# Builds the libFuzzer target of the sweep-spec parser (fuzz/, clang only, no LibTorch) and runs
# it for a bounded time on the seed specs of tests/fuzz_corpus/. Exit status: 0 nothing found,
# 77 no clang (CTest reports the test as skipped), anything else a failure (a crash, a sanitizer
# report, a non-ConfigError exception: the reproducer is left as BUILD_DIR/crash-*).
#   scripts/fuzz_spec.sh [BUILD_DIR] [SECONDS]     (defaults: build/fuzz, 20)
# The fuzzer's random seed is fixed (MIXLAB_FUZZ_SEED, default 1; 0 takes one from the clock)
# and each invocation starts from the committed seeds alone, so a CI run that fails fails
# again the same way; MIXLAB_FUZZ_KEEP=1 keeps what it found in BUILD_DIR/corpus for the next
# invocation instead (for long runs by hand).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/fuzz}
seconds=${2:-20}

clangxx=""
for candidate in clang++-14 clang++; do
  if command -v "$candidate" >/dev/null 2>&1; then clangxx=$(command -v "$candidate"); break; fi
done
if [[ -z "$clangxx" ]]; then
  echo "fuzz_spec: no clang++ found: skipped" >&2
  exit 77
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root/fuzz" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER="$clangxx" >/dev/null
cmake --build "$build" >/dev/null

# New inputs go to the working corpus in the build folder; the committed seeds are only read.
seed=${MIXLAB_FUZZ_SEED:-1}
if [[ "${MIXLAB_FUZZ_KEEP:-0}" != 1 ]]; then rm -rf "$build/corpus"; fi
mkdir -p "$build/corpus"
rm -f "$build"/crash-* "$build"/leak-* "$build"/timeout-* "$build"/oom-*
echo "fuzz_spec: -seed=$seed, $seconds s" >&2
"$build/fuzz_spec" -seed="$seed" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4096 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$build/" "$build/corpus" "$root/tests/fuzz_corpus"
