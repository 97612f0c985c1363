#!/usr/bin/env bash
# The aggregator benchmark suite (numbers, not a pass/fail test; issue 7,
# items 1-4 and the Node-RED comparison). Everything runs on this machine
# against one Mosquitto the script starts (own config on a free loopback
# port, no persistence, large queues), in ROUNDS rounds; in each round every
# consumer takes the same load one after another (the order rotates between
# rounds), so each ratio compares figures of the same round:
#
#   single   SINGLE_MESSAGES envelopes of 1 sample (120 assets of 4 agents,
#            QoS 1, one connection per agent, published as fast as the broker
#            takes them): messages/s until the consumer has processed all,
#            for the ceiling (a subscriber that only counts), the aggregator
#            (all stages on: validation, dedup, state, balance and alerts
#            every EVALUATE_MS against forecasts of its 12 groups, SQLite
#            history flushed every second) and Node-RED;
#   batch    BATCH_MESSAGES envelopes of BATCH_SAMPLES samples: samples/s;
#   latency  TRIALS trials: a sample over a probe feeder's rated load until
#            its alert event arrives on throughline/v1/{site}/alerts, beside
#            the broker-only round trip over the same connections;
#   memory   MEM_ASSETS registered assets (groups of 100, forecasts): RSS idle
#            after start (connected, no telemetry), after one envelope (which
#            starts the balance and alert evaluation), then loaded after every
#            asset has sent MEM_ENVELOPES envelopes of 10 samples (1 s apart).
#
# Usage: bench/suite.sh
# Needs: cargo, mosquitto, node and npm (Node-RED is installed with npm into
#        NODE_RED_DIR on first use, from bench/node-red/package.json), curl.
# Env:   ROUNDS=3 SINGLE_MESSAGES=150000 BATCH_MESSAGES=20000 BATCH_SAMPLES=50
#        TRIALS=200 EVALUATE_MS=100 MEM_ASSETS=10000 MEM_ENVELOPES=6
#        SCENARIOS="single batch latency memory" (any subset, in this order)
#        NODE_RED=0 leaves Node-RED out; NODE_RED_NODELAY=1 turns Nagle off in
#        Node-RED's sockets (bench/node-red/nodelay.js); NODE_RED_DIR (default
#        ~/.cache/throughline-bench/node-red); SKIP_BUILD=1 reuses the
#        release binaries in CARGO_TARGET_DIR (default ./target).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SINGLE_MESSAGES=${SINGLE_MESSAGES:-150000}
BATCH_MESSAGES=${BATCH_MESSAGES:-20000}
BATCH_SAMPLES=${BATCH_SAMPLES:-50}
TRIALS=${TRIALS:-200}
EVALUATE_MS=${EVALUATE_MS:-100}
MEM_ASSETS=${MEM_ASSETS:-10000}
MEM_ENVELOPES=${MEM_ENVELOPES:-6}
SCENARIOS=${SCENARIOS:-single batch latency memory}
NODE_RED=${NODE_RED:-1}
NODE_RED_DIR=${NODE_RED_DIR:-$HOME/.cache/throughline-bench/node-red}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
HZ=$(getconf CLK_TCK)

BENCH_NAME=suite.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v mosquitto >/dev/null 2>&1 || die "mosquitto not found (apt-get install mosquitto)"
command -v curl >/dev/null 2>&1 || die "curl not found"

if [ "${SKIP_BUILD:-}" != 1 ]; then
  say "== build (release, target dir $TARGET)"
  cargo build -q --release -p throughline-aggregator -p throughline-bench --bin aggregator --bin throughline-bench
fi
AGG="$TARGET/release/aggregator"
TOOL="$TARGET/release/throughline-bench"
[ -x "$AGG" ] && [ -x "$TOOL" ] || die "binaries missing in $TARGET/release"

consumers="ceiling aggregator"
nr_version() { sed -n 's/^ *"version": "\([^"]*\)".*/\1/p' "$NODE_RED_DIR/node_modules/node-red/package.json" 2>/dev/null | head -1; }
if [ "$NODE_RED" = 1 ]; then
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm needed (or NODE_RED=0)"
  want=$(sed -n 's/.*"node-red": "\([^"]*\)".*/\1/p' bench/node-red/package.json)
  have=$(nr_version)
  if [ "$have" != "$want" ]; then
    say "== installing node-red $want into $NODE_RED_DIR"
    mkdir -p "$NODE_RED_DIR"
    cp bench/node-red/package.json "$NODE_RED_DIR/"
    (cd "$NODE_RED_DIR" && npm install --no-audit --no-fund --omit=dev --loglevel=error >/dev/null)
  fi
  consumers="ceiling aggregator node-red"
fi

# --- the broker ------------------------------------------------------------
MQTT_PORT=$(free_port)
cat >"$work/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
# Room for a whole burst while a slow consumer drains it.
max_queued_messages 10000000
max_queued_bytes 0
max_inflight_messages 100
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
started_pids+=($!)
MQTT_PID=$!
wait_port() { for _ in $(seq 1 200); do port_free "$1" || return 0; sleep 0.05; done; die "nothing listens on $1"; }
wait_port "$MQTT_PORT"

# --- configs ---------------------------------------------------------------
PLANT=(--lines 100 --feeders 20 --group-size 10 --agents 4)
MEM_LINES=$((MEM_ASSETS * 4 / 5))
MEM_PLANT=(--lines "$MEM_LINES" --feeders $((MEM_ASSETS - MEM_LINES)) --group-size 100 --agents 10)
"$TOOL" config "${PLANT[@]}" --probes "$TRIALS" --broker "mqtt://127.0.0.1:$MQTT_PORT" \
  --evaluate-ms "$EVALUATE_MS" --flush-secs 1 --out "$work/plant"
"$TOOL" config "${MEM_PLANT[@]}" --broker "mqtt://127.0.0.1:$MQTT_PORT" --out "$work/mem"

# --- consumers -------------------------------------------------------------
starts=0
# start_<consumer> CONFIG_DIR: sets pid, url (counter page), name (counter),
# unit (messages or samples).
start_ceiling() {
  "$TOOL" count --broker "127.0.0.1:$MQTT_PORT" >"$work/count.out" 2>>"$work/count.log" &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 1 600); do grep -q '^listening' "$work/count.out" 2>/dev/null && break; sleep 0.05; done
  url="$(sed -n 's/^listening http=\(.*\)/\1/p' "$work/count.out")/metrics"
  [ "$url" != /metrics ] || died "the counting subscriber did not start: $(tail -3 "$work/count.log")"
  name=bench_messages_total unit=messages
}
start_aggregator() {
  starts=$((starts + 1))
  local cfg=$1 data="$work/data.$starts" out="$work/agg.$starts.out" log="$work/agg.$starts.log" http
  "$AGG" import-forecast --config "$cfg/aggregator.toml" --data-dir "$data" "$cfg/forecast.csv" >/dev/null \
    || die "forecast import failed"
  "$AGG" run --config "$cfg/aggregator.toml" --http-listen 127.0.0.1:0 --data-dir "$data" >"$out" 2>"$log" &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 1 1200); do grep -q '^listening' "$out" 2>/dev/null && break; sleep 0.05; done
  http=$(sed -n 's/^listening http=\([^ ]*\).*/\1/p' "$out")
  [ -n "$http" ] || died "the aggregator did not start (pid $pid $(kill -0 "$pid" 2>/dev/null && echo running || echo gone)): $(tail -5 "$log")"
  url="$http/metrics" name=throughline_samples_ingested_total unit=samples
}
start_node-red() {
  starts=$((starts + 1))
  local dir="$work/nr.$starts" port
  port=$(free_port)
  mkdir -p "$dir"
  cp bench/node-red/flows.json bench/node-red/settings.js "$dir/"
  local preload=()
  [ "${NODE_RED_NODELAY:-}" = 1 ] && preload=(-r "$PWD/bench/node-red/nodelay.js")
  BENCH_NR_PORT=$port BENCH_MQTT_PORT=$MQTT_PORT \
    node "${preload[@]}" "$NODE_RED_DIR/node_modules/node-red/red.js" --userDir "$dir" --settings "$dir/settings.js" \
    >"$dir/out.log" 2>&1 &
  pid=$!
  started_pids+=("$pid")
  url="http://127.0.0.1:$port/bench/count" name=bench_samples_total unit=samples
}
# die with what the broker and the system said.
died() {
  say "$BENCH_NAME: $1" >&2
  say "  consumer pid $pid: $(ps -o stat=,etime=,time= -p "$pid" 2>/dev/null || echo gone)" >&2
  say "  broker: $(ps -o stat=,etime=,time= -p "$MQTT_PID" 2>/dev/null || echo gone); log: $(tail -5 "$work/mosquitto.log")" >&2
  say "  load: $(cat /proc/loadavg)" >&2
  exit 1
}
stop_consumer() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
cpu_secs() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$HZ" '{print ($12 + $13) / hz}'; }
# rec SCENARIO CONSUMER METRIC VALUE
rec() { echo "$4" >>"$work/r.$1.$2.$3"; }
field() { grep -oE "(^| )$2=[^ ]*" <<<"$1" | head -1 | sed 's/.*=//'; }

load() { # load SHAPE_ARGS... ; uses $url $name $unit
  "$TOOL" load --broker "127.0.0.1:$MQTT_PORT" --count-url "$url" --count-name "$name" --expect "$unit" "$@"
}

run_throughput() { # SCENARIO CONSUMER MESSAGES SAMPLES
  local sc=$1 c=$2 line cpu0
  "start_$c" "$work/plant"
  load "${PLANT[@]}" --messages 0 >/dev/null # ready: subscribed and counting
  cpu0=$(cpu_secs "$pid")
  line=$(load "${PLANT[@]}" --messages "$3" --samples "$4")
  rec "$sc" "$c" msgs "$(field "$line" msgs_per_sec)"
  rec "$sc" "$c" samples "$(field "$line" samples_per_sec)"
  rec "$sc" "$c" pub "$(field "$line" publish_msgs_per_sec)"
  rec "$sc" "$c" hwm "$(kib "$pid" VmHWM)"
  awk -v a="$(cpu_secs "$pid")" -v b="$cpu0" -v n="$(($3 * $4))" 'BEGIN {print (a - b) / n * 1e6}' >>"$work/r.$sc.$c.cpu"
  say "  $sc $c: $line hwm_kib=$(kib "$pid" VmHWM)"
  stop_consumer "$pid"
}

run_latency() { # CONSUMER
  local c=$1 line
  "start_$c" "$work/plant"
  load "${PLANT[@]}" --messages 0 >/dev/null
  line=$("$TOOL" probe --broker "127.0.0.1:$MQTT_PORT" --trials "$TRIALS" --jitter-ms "$EVALUATE_MS" --count-url "$url" --count-name "$name")
  for m in rtt_p50_ms rtt_p99_ms alert_p50_ms alert_p99_ms over_p50_ms over_p99_ms timeouts; do
    rec latency "$c" "$m" "$(field "$line" "$m")"
  done
  say "  latency $c: $line"
  stop_consumer "$pid"
}

rss_max() { # the highest VmRSS of $pid over 2 s (10 readings): RSS settled
  local m=0 r
  for _ in $(seq 1 10); do sleep 0.2; r=$(kib "$pid" VmRSS); [ "$r" -gt "$m" ] && m=$r; done
  echo "$m"
}
run_memory() { # CONSUMER
  local c=$1 line idle first loaded
  "start_$c" "$work/mem"
  # Idle: serving, connected, no telemetry yet.
  for _ in $(seq 1 1200); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.05; done
  idle=$(rss_max)
  # One warm-up envelope (the first sample sets the event time: the
  # aggregator's balance and alert evaluation starts).
  load "${MEM_PLANT[@]}" --messages 0 >/dev/null
  first=$(rss_max)
  line=$(load "${MEM_PLANT[@]}" --messages $((MEM_ASSETS * MEM_ENVELOPES)) --samples 10)
  loaded=$(rss_max)
  rec memory "$c" idle "$idle"
  rec memory "$c" first "$first"
  rec memory "$c" loaded "$loaded"
  rec memory "$c" hwm "$(kib "$pid" VmHWM)"
  say "  memory $c: idle_kib=$idle first_envelope_kib=$first loaded_kib=$loaded hwm_kib=$(kib "$pid" VmHWM) ($line)"
  stop_consumer "$pid"
}

# --- rounds ----------------------------------------------------------------
rotate() { # rotate N WORDS...: the words rotated left by N
  local n=$1; shift
  local a=("$@") i
  for i in "${!a[@]}"; do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }
say "== $ROUNDS rounds on $(nproc) cores; broker 127.0.0.1:$MQTT_PORT; consumers: $consumers"
# shellcheck disable=SC2086
for round in $(seq 1 "$ROUNDS"); do
  order=$(rotate $((round - 1)) $consumers)
  say "-- round $round: $order"
  if has single; then for c in $order; do run_throughput single "$c" "$SINGLE_MESSAGES" 1; done; fi
  if has batch; then for c in $order; do run_throughput batch "$c" "$BATCH_MESSAGES" "$BATCH_SAMPLES"; done; fi
  if has latency; then for c in $order; do [ "$c" = ceiling ] || run_latency "$c"; done; fi
  if has memory; then for c in $order; do [ "$c" = ceiling ] || run_memory "$c"; done; fi
done
kill -0 "$MQTT_PID" 2>/dev/null || die "the broker died: $(tail -3 "$work/mosquitto.log")"

# --- report ----------------------------------------------------------------
# med SCENARIO CONSUMER METRIC -> "median min max"
med() { if [ -f "$work/r.$1.$2.$3" ]; then stats <"$work/r.$1.$2.$3"; else echo "- - -"; fi; }
row() { # row LABEL SCENARIO CONSUMER METRIC SCALE FORMAT [BASE_CONSUMER]
  local m lo hi b=""
  read -r m lo hi < <(med "$2" "$3" "$4")
  [ "$m" = - ] && return 0
  if [ -n "${7:-}" ] && [ -f "$work/r.$2.$7.$4" ]; then
    b=$(paste -d' ' "$work/r.$2.$3.$4" "$work/r.$2.$7.$4" | awk '{print $1 / $2}' | stats |
      awk -v base="$7" '{printf "  / %s: %.3f (%.3f-%.3f)", base, $1, $2, $3}')
  fi
  awk -v l="$1" -v m="$m" -v lo="$lo" -v hi="$hi" -v s="$5" -v f="$6" -v b="$b" \
    'BEGIN {printf "  %-34s " f " (" f "-" f ")%s\n", l, m*s, lo*s, hi*s, b}'
}
ratio() { # ratio LABEL SCENARIO A B METRIC: A/B per round, median (min-max)
  [ -f "$work/r.$2.$3.$5" ] && [ -f "$work/r.$2.$4.$5" ] || return 0
  paste -d' ' "$work/r.$2.$3.$5" "$work/r.$2.$4.$5" | awk '{print $1 / $2}' | stats |
    awk -v l="$1" '{printf "  %-34s %.3f (%.3f-%.3f)\n", l, $1, $2, $3}'
}
say ""
say "== results: median (min-max) of $ROUNDS rounds; ratios are per round, then median (min-max)"
for c in $consumers; do
  if has single; then
    row "single, msgs/s, $c" single "$c" msgs 1 "%.0f" "$([ "$c" = ceiling ] || echo ceiling)"
    row "  publisher msgs/s (to PUBACK)" single "$c" pub 1 "%.0f"
    row "  CPU us/msg" single "$c" cpu 1 "%.2f"
    row "  peak RSS MiB" single "$c" hwm 0.0009765625 "%.1f"
  fi
done
for c in $consumers; do
  if has batch; then
    row "batch x$BATCH_SAMPLES, samples/s, $c" batch "$c" samples 1 "%.0f" "$([ "$c" = node-red ] && echo aggregator)"
    row "  msgs/s" batch "$c" msgs 1 "%.0f" "$([ "$c" = ceiling ] || echo ceiling)"
    row "  CPU us/sample" batch "$c" cpu 1 "%.3f"
    row "  peak RSS MiB" batch "$c" hwm 0.0009765625 "%.1f"
  fi
done
if has batch && [ "$NODE_RED" = 1 ]; then
  ratio "batch samples/s, aggregator / node-red" batch aggregator node-red samples
fi
for c in aggregator node-red; do
  if has latency && [[ " $consumers " == *" $c "* ]]; then
    for m in rtt_p50_ms rtt_p99_ms alert_p50_ms alert_p99_ms over_p50_ms over_p99_ms; do
      row "latency $c $m" latency "$c" "$m" 1 "%.2f"
    done
    say "  latency $c timeouts, all rounds: $(cat "$work/r.latency.$c.timeouts" | awk '{s+=$1} END {print s+0}')"
  fi
done
for c in aggregator node-red; do
  if has memory && [[ " $consumers " == *" $c "* ]]; then
    row "memory $c idle MiB ($MEM_ASSETS assets)" memory "$c" idle 0.0009765625 "%.1f"
    row "memory $c after 1 envelope MiB" memory "$c" first 0.0009765625 "%.1f"
    row "memory $c loaded MiB" memory "$c" loaded 0.0009765625 "%.1f"
    row "memory $c peak MiB" memory "$c" hwm 0.0009765625 "%.1f"
  fi
done
if has memory && [ "$NODE_RED" = 1 ]; then
  ratio "memory idle, aggregator / node-red" memory aggregator node-red idle
  ratio "memory 1 envelope, aggregator / node-red" memory aggregator node-red first
  ratio "memory loaded, aggregator / node-red" memory aggregator node-red loaded
fi
say "versions: $(mosquitto -h 2>&1 | head -1); node $(node --version 2>/dev/null || echo -);" \
  "node-red $(nr_version);" \
  "$(rustc --version)"
