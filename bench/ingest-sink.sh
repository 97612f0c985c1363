#!/usr/bin/env bash
# Aggregator benchmark (numbers, not a pass/fail test): what the InfluxDB sink
# costs ingest. Each run starts a fresh release aggregator (embedded broker)
# in each of three modes, the order rotating between runs:
#   off   no [influxdb];
#   on    the sink writing to a VictoriaMetrics of the script's own (Debian's
#         victoria-metrics, InfluxDB v2 write API) on the same machine;
#   null  the sink writing to a write endpoint that reads the body and answers
#         204 (`ingest_load --null-server`): the aggregator's own cost, without
#         the database's CPU on the same cores.
# In each, the example `ingest_load` publishes MESSAGES envelopes of SAMPLES
# samples (ASSETS assets, one agent, QoS 1) as fast as it can and measures
# the time until /metrics shows every sample ingested; with the sink on it
# then also waits until every point is written.
#
# Usage: bench/ingest-sink.sh          (RUNS=5 MESSAGES=20000 SAMPLES=50 ASSETS=10)
# Needs: cargo, victoria-metrics (Debian: victoria-metrics).
# Env:   RUNS, MESSAGES, SAMPLES, ASSETS as above
#        CARGO_TARGET_DIR as for cargo (default ./target)
#        SKIP_BUILD=1 use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-20000}
SAMPLES=${SAMPLES:-50}
ASSETS=${ASSETS:-10}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
HZ=$(getconf CLK_TCK)

BENCH_NAME=ingest-sink.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
VM_BIN=$(command -v victoria-metrics || echo /usr/bin/victoria-metrics)
[ -x "$VM_BIN" ] || die "victoria-metrics not found (apt-get install victoria-metrics)"
command -v curl >/dev/null 2>&1 || die "curl not found"

# "median min max" of the numbers on stdin.
wait_port() { for _ in $(seq 1 200); do port_free "$1" || return 0; sleep 0.05; done; die "nothing listens on $1"; }

if [ "${SKIP_BUILD:-}" != 1 ]; then
  say "== build (release, target dir $TARGET)"
  cargo build -q --release -p throughline-aggregator --bin aggregator --example ingest_load
fi
AGG="$TARGET/release/aggregator"
LOAD="$TARGET/release/examples/ingest_load"
[ -x "$AGG" ] && [ -x "$LOAD" ] || die "binaries missing in $TARGET/release"

VM_PORT=$(free_port)
mkdir -p "$work/vm"
"$VM_BIN" -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$work/vm" -loggerLevel=ERROR >/dev/null 2>"$work/vm.log" &
started_pids+=($!)
wait_port "$VM_PORT"
NULL_PORT=$(free_port)
"$LOAD" --null-server "127.0.0.1:$NULL_PORT" &
started_pids+=($!)
wait_port "$NULL_PORT"

cat >"$work/on.toml" <<EOF
[influxdb]
url = "http://127.0.0.1:$VM_PORT"
org = "bench"
bucket = "bench"
token = "not-checked-by-victoria-metrics"
# Room for the whole burst: every point is written, none dropped, so the
# run measures the sink's full work (the default 200000 would drop the
# oldest of a burst this size, as designed).
buffer_points = $((MESSAGES * SAMPLES + ASSETS))
EOF
: >"$work/off.toml"
sed "s|127.0.0.1:$VM_PORT|127.0.0.1:$NULL_PORT|" "$work/on.toml" >"$work/null.toml"

# One run of one mode: the load's result line goes to $work/line.
run_one() {
  local mode=$1 mqtt http out pid
  mqtt=$(free_port)
  out="$work/agg.$mode.out"
  "$AGG" --config "$work/$mode.toml" --http-listen 127.0.0.1:0 --mqtt-listen "127.0.0.1:$mqtt" \
    --data-dir "$work/data.$mode.$RANDOM" >"$out" 2>>"$work/agg.log" &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 1 200); do grep -q '^listening' "$out" 2>/dev/null && break; sleep 0.05; done
  http=$(sed -n 's/^listening http=\([^ ]*\).*/\1/p' "$out")
  [ -n "$http" ] || die "aggregator ($mode) did not start: $(tail -3 "$work/agg.log")"
  # Subscribed when /healthz says so.
  for _ in $(seq 1 200); do
    curl -fsS "$http/healthz" 2>/dev/null | grep -q '"mqtt_connected":true' && break
    sleep 0.05
  done
  local sink=()
  [ "$mode" != off ] && sink=(--sink)
  "$LOAD" --mqtt "127.0.0.1:$mqtt" --http "$http" --messages "$MESSAGES" --samples "$SAMPLES" \
    --assets "$ASSETS" "${sink[@]}" >"$work/line"
  # The aggregator's CPU (utime + stime, ticks) for the whole run, broker included.
  sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}' >"$work/ticks"
  kill -TERM "$pid"
  wait "$pid" || die "aggregator ($mode) did not stop cleanly"
}

say "== $RUNS runs x (sink off, on, null): $MESSAGES envelopes x $SAMPLES samples over $ASSETS assets"
for run in $(seq 1 "$RUNS"); do
  case $((run % 3)) in
    1) order="off on null" ;;
    2) order="on null off" ;;
    0) order="null off on" ;;
  esac
  for mode in $order; do
    run_one "$mode"
    line=$(cat "$work/line")
    say "  run $run sink $mode: $line"
    echo "$line" | sed -n 's/.*samples_per_sec=\([0-9.]*\).*/\1/p' >>"$work/rate.$mode"
    echo "$line" | sed -n 's/.*sink_secs=\([0-9.]*\).*/\1/p' >>"$work/sink.$mode"
    echo "$line" | sed -n 's/.*sink_dropped=\([0-9.]*\).*/\1/p' >>"$work/dropped.$mode"
    awk -v t="$(cat "$work/ticks")" -v hz="$HZ" -v n="$((MESSAGES * SAMPLES))" 'BEGIN { print t / hz / n * 1e6 }' >>"$work/cpu.$mode"
  done
done

total=$((MESSAGES * SAMPLES))
say ""
say "== ingest throughput, samples/s: median (min-max) of $RUNS runs"
read -r off_med _ _ < <(stats <"$work/rate.off")
for mode in off on null; do
  read -r med min max < <(stats <"$work/rate.$mode")
  awk -v m="$mode" -v med="$med" -v min="$min" -v max="$max" -v off="$off_med" \
    'BEGIN { printf "  sink %-4s %9.0f (%.0f-%.0f)  %s\n", m, med, min, max,
             (m == "off") ? "" : sprintf("ratio to off %.3f (cost %.1f %%)", med/off, (1-med/off)*100) }'
done
for mode in on null; do
  read -r med min max < <(stats <"$work/sink.$mode")
  awk -v m="$mode" -v s="$med" -v a="$min" -v b="$max" -v n="$((total + ASSETS))" \
    'BEGIN { printf "  sink %-4s every one of %d points written %.2f s (%.2f-%.2f) after the first publish: %.0f points/s\n", m, n, s, a, b, n/s }'
done
say "== aggregator CPU per sample (process utime+stime over the whole run, broker and, when on, the sink's"
say "   writing until the last point was acknowledged; the database's own CPU not included), µs: median (min-max)"
read -r cpu_off _ _ < <(stats <"$work/cpu.off")
for mode in off on null; do
  read -r med min max < <(stats <"$work/cpu.$mode")
  awk -v m="$mode" -v med="$med" -v min="$min" -v max="$max" -v off="$cpu_off" \
    'BEGIN { printf "  sink %-4s %6.3f (%.3f-%.3f)  %s\n", m, med, min, max,
             (m == "off") ? "" : sprintf("ratio to off %.3f", med/off) }'
done
say "  points dropped with the sink on or null, all runs: $(cat "$work/dropped.on" "$work/dropped.null" | awk '{s+=$1} END {print s+0}')"
