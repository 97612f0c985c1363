#!/usr/bin/env bash
# Forecast import through the command line (numbers, not a pass/fail test;
# issue 23): a year of 10-minute buckets for 10 groups, 525,600 CSV rows
# (about 36 MB), imported with `aggregator import-forecast` RUNS times into
# a fresh store (first import) and RUNS times into a store that already
# holds the same year (every bucket replaced: a second version of each).
# Reports wall time and peak RSS (GNU time), median min max.
#
# Usage: bench/forecast-import.sh
# Needs: cargo, /usr/bin/time.
# Env:   RUNS=3 NGROUPS=10 DAYS=365 SKIP_BUILD=1 (reuse the release binary in
#        CARGO_TARGET_DIR, default ./target).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=forecast-import
. bench/lib.sh

RUNS=${RUNS:-3}
NGROUPS=${NGROUPS:-10}
DAYS=${DAYS:-365}
target=${CARGO_TARGET_DIR:-target}
[ -x /usr/bin/time ] || die "needs GNU time (/usr/bin/time; apt install time)"
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p throughline-aggregator --bin aggregator >&2
fi
bin="$target/release/aggregator"
[ -x "$bin" ] || die "no $bin (build it or unset SKIP_BUILD)"

config="$work/aggregator.toml"
{
  for g in $(seq 1 "$NGROUPS"); do printf '[[groups]]\nid = "family-%s"\nkind = "line"\n\n' "$g"; done
} >"$config"
csv="$work/year.csv"
awk -v groups="$NGROUPS" -v days="$DAYS" 'BEGIN {
  print "group,start,end,demand,unit,uplift_pct"
  t0 = 1767225600  # 2026-01-01T00:00:00Z
  n = days * 144
  for (g = 1; g <= groups; g++)
    for (i = 0; i < n; i++) {
      s = t0 + i * 600
      printf "family-%d,%s,%s,%d,pieces,%d\n", g, strftime("%Y-%m-%dT%H:%M:%SZ", s, 1), strftime("%Y-%m-%dT%H:%M:%SZ", s + 600, 1), 100 + i % 50, i % 3
    }
}' >"$csv"
rows=$(($(wc -l <"$csv") - 1))
say "forecast-import: $rows rows, $(du -m "$csv" | cut -f1) MB, $RUNS runs each"

run() { # data_dir -> "seconds kB"
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" --config "$config" --data-dir "$1" import-forecast "$csv" >/dev/null 2>"$work/err" \
    || { cat "$work/err" >&2; die "import failed"; }
  cat "$work/time"
}
: >"$work/first"; : >"$work/again"
for r in $(seq 1 "$RUNS"); do
  d="$work/data-$r"
  run "$d" >>"$work/first"
  run "$d" >>"$work/again"
  rm -rf "$d"
done
for what in first again; do
  secs=$(cut -d' ' -f1 "$work/$what" | stats)
  rss=$(cut -d' ' -f2 "$work/$what" | awk '{printf "%.1f\n", $1/1024}' | stats)
  label=$([ "$what" = first ] && echo "into an empty store" || echo "replacing every bucket")
  say "  $label: wall s (median min max) $secs; peak RSS MB $rss"
done
