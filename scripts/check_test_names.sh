#!/usr/bin/env bash
# CTest's list of tests is a CMake list: a doctest name holding a ';' becomes two CTest tests
# that each select no test case and pass without running anything. Fails on any such name.
set -euo pipefail
names=$("$1" --list-test-cases --no-version)
bad=$(printf '%s\n' "$names" | grep -F ';' || true)
if [ -n "$bad" ]; then
  echo "test names with ';' (CTest would split them and run nothing):"
  printf '%s\n' "$bad"
  exit 1
fi
echo "$(printf '%s\n' "$names" | grep -c .) lines listed, no test name holds a ';'"
