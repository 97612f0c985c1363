# shellcheck shell=bash
# Shared helpers of the bench/ scripts; source it after `cd` to the repo.
# Defines: $work (a temporary directory), started_pids (add every background
# pid the script starts), a cleanup on exit that stops those still running
# and removes $work, say, die, stats, port_free, free_port.
# Expects BENCH_NAME (used in messages and the temp dir name).

work=$(mktemp -d -t "$BENCH_NAME-bench.XXXXXX")
started_pids=()
# Stop what this script started and is still running (its own children only:
# a pid that exited may have been reused by another process).
cleanup() {
  local p
  for p in "${started_pids[@]}"; do
    if [ "$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)" = "$$" ]; then
      kill "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }
# Numbers on stdin -> "median min max".
stats() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "- - -"; exit}
  m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR]}'; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}
