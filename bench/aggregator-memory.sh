#!/usr/bin/env bash
# Aggregator memory benchmark (numbers, not a pass/fail test): resident set
# of a release aggregator with ASSETS registered assets (10 per capacity
# group), connected to a Mosquitto of the script's own:
#   idle    after start-up, connected, no telemetry yet (SETTLE seconds);
#   loaded  after every asset has reported: `ingest_load` publishes
#           ASSETS x MESSAGES_PER_ASSET envelopes of SAMPLES samples (100 ms
#           apart per asset) and waits until /metrics counts every sample;
#           RSS read SETTLE seconds later, peak (VmHWM) too.
# Also the embedded broker (rumqttd inside the aggregator) idle, for comparison.
#
# Usage: bench/aggregator-memory.sh     (RUNS=3 ASSETS=10000 MESSAGES_PER_ASSET=6 SAMPLES=10 SETTLE=5)
# Needs: cargo, mosquitto, curl.
# Env:   CARGO_TARGET_DIR as for cargo (default ./target); SKIP_BUILD=1 uses the binaries already built.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
ASSETS=${ASSETS:-10000}
MESSAGES_PER_ASSET=${MESSAGES_PER_ASSET:-6}
SAMPLES=${SAMPLES:-10}
SETTLE=${SETTLE:-5}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

BENCH_NAME=aggregator-memory.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v mosquitto >/dev/null 2>&1 || die "mosquitto not found (apt-get install mosquitto)"
command -v curl >/dev/null 2>&1 || die "curl not found"

if [ "${SKIP_BUILD:-}" != 1 ]; then
  cargo build -q --release -p throughline-aggregator --bin aggregator --example ingest_load
fi
AGG=$TARGET/release/aggregator
LOAD=$TARGET/release/examples/ingest_load
for f in "$AGG" "$LOAD"; do [ -x "$f" ] || die "$f is missing (run without SKIP_BUILD)"; done

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_http() { for _ in $(seq 1 400); do curl -fs "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done; die "no answer from $1"; }
wait_connected() {
  for _ in $(seq 1 400); do
    curl -fs "$1/metrics" | grep -q '^throughline_mqtt_connected 1' && return 0
    sleep 0.05
  done
  die "aggregator did not connect to the broker"
}

# Config with ASSETS registered assets named as ingest_load publishes them.
config() {
  local dir=$1 http=$2 broker=$3
  {
    printf 'data_dir = "%s/data"\n[http]\nlisten = "127.0.0.1:%s"\n' "$dir" "$http"
    if [ -n "$broker" ]; then printf '[mqtt]\nbroker = "mqtt://127.0.0.1:%s"\n' "$broker"; else
      printf '[mqtt]\nlisten = "127.0.0.1:%s"\n' "$(free_port)"; fi
    awk -v n="$ASSETS" 'BEGIN { for (i = 0; i < n; i++) printf "[[assets]]\nsite = \"bench-site\"\nid = \"asset-%03d\"\nkind = \"line\"\ngroup = \"g%04d\"\nrated_capacity = 3600\n", i, int(i / 10) }'
  } >"$dir/aggregator.toml"
}

say "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f MiB", $2/1024}' /proc/meminfo), $(uname -sr)"
say "== $ASSETS registered assets, load: $MESSAGES_PER_ASSET envelopes x $SAMPLES samples per asset"
idle=() loaded=() peak=() embedded=()
for run in $(seq 1 "$RUNS"); do
  d=$work/run$run; mkdir -p "$d"
  mq=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\n' "$mq" >"$d/mosquitto.conf"
  mosquitto -c "$d/mosquitto.conf" >"$d/mosquitto.log" 2>&1 & started_pids+=($!); mpid=$!
  http=$(free_port)
  config "$d" "$http" "$mq"
  RUST_LOG=warn "$AGG" --config "$d/aggregator.toml" >"$d/agg.log" 2>&1 & started_pids+=($!); apid=$!
  wait_http "http://127.0.0.1:$http"; wait_connected "http://127.0.0.1:$http"
  sleep "$SETTLE"
  idle+=("$(rss_kib "$apid")")
  "$LOAD" --mqtt "127.0.0.1:$mq" --http "http://127.0.0.1:$http" \
    --messages $((ASSETS * MESSAGES_PER_ASSET)) --samples "$SAMPLES" --assets "$ASSETS" >"$d/load.out"
  sleep "$SETTLE"
  loaded+=("$(rss_kib "$apid")"); peak+=("$(hwm_kib "$apid")")
  say "run $run: idle ${idle[-1]} KiB, loaded ${loaded[-1]} KiB (peak ${peak[-1]} KiB); $(cat "$d/load.out")"
  kill "$apid"; wait "$apid" 2>/dev/null || true
  kill "$mpid"; wait "$mpid" 2>/dev/null || true
  # The embedded broker, idle.
  http=$(free_port)
  config "$d" "$http" ""
  rm -rf "$d/data"
  RUST_LOG=warn "$AGG" --config "$d/aggregator.toml" >"$d/agg-embedded.log" 2>&1 & started_pids+=($!); apid=$!
  wait_http "http://127.0.0.1:$http"; wait_connected "http://127.0.0.1:$http"
  sleep "$SETTLE"
  embedded+=("$(rss_kib "$apid")")
  kill "$apid"; wait "$apid" 2>/dev/null || true
done
mib() { stats | awk '{ printf "%.1f MiB (%.1f-%.1f)\n", $1/1024, $2/1024, $3/1024 }'; }
say
say "RSS, median (min-max) of $RUNS runs:"
say "  idle, external broker:    $(printf '%s\n' "${idle[@]}" | mib)"
say "  loaded, external broker:  $(printf '%s\n' "${loaded[@]}" | mib)"
say "  peak (VmHWM) under load:  $(printf '%s\n' "${peak[@]}" | mib)"
say "  idle, embedded broker:    $(printf '%s\n' "${embedded[@]}" | mib)"
