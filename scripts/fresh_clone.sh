#!/usr/bin/env bash
# A new user's first run, as CI cannot show it (CI reuses the packages a machine already has): clone the
# committed HEAD into a temporary folder, then `make run` and `make test` there with a fresh venv and no
# pip cache (PIP_NO_CACHE_DIR=1), each timed. Usage, from the project's root: make fresh-clone
# (or KEEP=1 make fresh-clone to keep the clone and its run for a look at the report).
set -euo pipefail
src=$(git rev-parse --show-toplevel)
dir=$(mktemp -d -t lab-fresh.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT
git clone -q "$src" "$dir/repo"
cd "$dir/repo"
echo "fresh clone of $(git rev-parse --short HEAD) in $dir/repo"
export PIP_NO_CACHE_DIR=1
timed() {  # timed NAME CMD...: run, log to $dir/NAME.log, print the wall time; stop at the first failure
  local name=$1 start rc; shift
  start=$(date +%s)
  "$@" > "$dir/$name.log" 2>&1 && rc=0 || rc=$?
  echo "$name: exit $rc after $(( $(date +%s) - start )) s (log: $dir/$name.log)"
  tail -n 5 "$dir/$name.log"
  return $rc
}
timed make-run make run
timed make-test make test
.venv/bin/python -m pip list 2>/dev/null | grep -iE '^(torch|transformers|trl|peft|accelerate|datasets|tokenizers) '
