#!/usr/bin/env bash
# Writes results/reports/SWEEP.md and its figures from a database: the tables of `sweep report`
# and the standard figures, with the commands that made them and the machine they ran on.
# Usage: scripts/make_report.sh SWEEP DB "COMMAND THAT MADE THE DB" [extra plot metrics...]
set -euo pipefail
sweep=$1 db=$2 made_by=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=results/reports/$sweep
mkdir -p "$out"
bin=build/sweep
plots=("eval/loss" "eval/loss --x wall" "train/loss --x tokens" "$@")
{
  echo "# Report: $sweep"
  echo
  echo "$(sqlite3 "$db" "SELECT json_extract(spec_json, '\$.description') FROM sweeps WHERE name = '$sweep'")"
  echo
  echo "**Database** made by:"
  echo
  echo '```sh'
  echo "$made_by"
  echo '```'
  echo
  echo "**Machine**: $(uname -sm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
       "$(nproc) cores, LibTorch $(sqlite3 "$db" 'SELECT DISTINCT torch_version FROM runs' | head -1)" \
       "(device $(sqlite3 "$db" 'SELECT DISTINCT device FROM runs' | head -1)), commit" \
       "$(git rev-parse --short=12 HEAD); report made $(date -u '+%Y-%m-%d %H:%M') UTC."
  echo
  echo "## Tables"
  echo
  echo '```sh'
  echo "$bin report $sweep --db $db"
  echo '```'
  echo
  "$bin" report "$sweep" --db "$db"
  echo
  echo "## Figures"
  echo
  echo '```sh'
  for p in "${plots[@]}"; do
    name=$(echo "$p" | sed 's/--x /_/; s/[^A-Za-z0-9_]/_/g; s/__*/_/g; s/_$//')
    echo "$bin plot $sweep --metric $p --out $out/$name.png --db $db"
  done
  echo '```'
  echo
  for p in "${plots[@]}"; do
    name=$(echo "$p" | sed 's/--x /_/; s/[^A-Za-z0-9_]/_/g; s/__*/_/g; s/_$//')
    # shellcheck disable=SC2086
    "$bin" plot "$sweep" --metric $p --out "$out/$name.png" --db "$db" >/dev/null
    echo "![$p]($sweep/$name.png)"
    echo
  done
} > "results/reports/$sweep.md"
echo "wrote results/reports/$sweep.md"
