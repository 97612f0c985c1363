#!/usr/bin/env bash
# Edge agent benchmark (numbers, not a pass/fail test):
#
#  1. binary size of the shipped build (`--profile edge`, static musl) and of
#     the same profile linked against glibc;
#  2. resident memory and CPU of the agent serving 10 simulated assets at 1 Hz
#     with its spool on, side by side in the same runs with a floor (`sleep`)
#     and collectd (cpu, memory, load and csv plugins, 1 s interval), the
#     daemon the issue compares against;
#  3. end-to-end replay: a one-hour backlog of the 10 assets (3,600 envelopes,
#     36,000 samples, `fill-spool`) delivered by the agent to a Mosquitto of
#     its own, against the broker's ceiling in the same run: the same payloads
#     published by `publish-backlog` (the agent's rumqttc options, QoS 1,
#     window 64, no spool).
#
# Usage: bench/edge-agent.sh            (DURATION=60 RUNS=3 REPLAY_RUNS=5)
#        DURATION=30 RUNS=5 bench/edge-agent.sh
# Needs: cargo, mosquitto and mosquitto_sub (Debian: mosquitto mosquitto-clients), coreutils stdbuf;
#        collectd is optional (Debian: collectd-core), skipped if absent.
# Env:   DURATION  seconds each memory/CPU run measures (default 60)
#        RUNS      repetitions of the memory/CPU part (default 3)
#        REPLAY_RUNS repetitions of the replay part (default 5; each takes a second or two)
#        CARGO_TARGET_DIR as for cargo (default ./target)
#        SKIP_BUILD=1 use the binaries already built
#        AARCH64=1 also build the edge profile for the Pi (aarch64-unknown-linux-gnu; needs
#                 `rustup target add aarch64-unknown-linux-gnu` and Debian's gcc-aarch64-linux-gnu)
#                 and report its size
#        BROKER_NODELAY=1 start Mosquitto with set_tcp_nodelay true (default: as shipped, Nagle on)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
RUNS=${RUNS:-3}
REPLAY_RUNS=${REPLAY_RUNS:-5}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
WARMUP=3
SITE=bench-site
AGENT=bench-agent
ASSETS=(line-01 feeder-01 line-02 feeder-02 line-03 feeder-03 line-04 feeder-04 line-05 feeder-05)
BACKLOG_ENVELOPES=3600
BACKLOG_SAMPLES=36000

BENCH_NAME=edge-agent.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found ($2)"; }
need mosquitto "apt-get install mosquitto"
need mosquitto_sub "apt-get install mosquitto-clients"

# "median min max" of the numbers on stdin.
# "median (min-max)" with a printf format for each number.
summary() { local fmt=$1; stats | awk -v f="$fmt" '{ if ($1=="-") print "-"; else printf(f" ("f"-"f")\n", $1, $2, $3) }'; }
calc() { awk "BEGIN { x = $1; printf (x == int(x)) ? \"%d\" : \"%.6f\", x }"; }
now() { date +%s.%N; }
epoch_of() { date -d "$1" +%s.%N; }

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-}" != 1 ]; then
  say "== build (target dir $TARGET)"
  # The shipped build: static musl (no libc.so, libm.so, ld.so pages in memory).
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
  CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-gcc} \
    cargo build -q --profile edge -p throughline-edge-agent --bin edge-agent --target x86_64-unknown-linux-musl
  cargo build -q --profile edge -p throughline-edge-agent --bin edge-agent
  cargo build -q --release -p throughline-edge-agent --example fill-spool --example publish-backlog
  if [ "${AARCH64:-}" = 1 ]; then
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc} \
    CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc} \
      cargo build -q --profile edge -p throughline-edge-agent --bin edge-agent --target aarch64-unknown-linux-gnu
  fi
fi
EDGE_BIN=$TARGET/x86_64-unknown-linux-musl/edge/edge-agent
RELEASE_BIN=$TARGET/edge/edge-agent
FILL=$TARGET/release/examples/fill-spool
PUBLISH=$TARGET/release/examples/publish-backlog
for f in "$EDGE_BIN" "$FILL" "$PUBLISH"; do [ -x "$f" ] || die "$f is missing (run without SKIP_BUILD)"; done

say
say "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f MiB", $2/1024}' /proc/meminfo), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "== binary size (stripped)"
size_line() { printf '  %-26s %9d bytes  %5.2f MiB\n' "$1" "$(stat -c %s "$2")" "$(calc "$(stat -c %s "$2")/1048576")"; }
size_line "edge-agent edge, musl static" "$EDGE_BIN"
[ -x "$RELEASE_BIN" ] && size_line "edge-agent edge, glibc" "$RELEASE_BIN"
if [ "${AARCH64:-}" = 1 ]; then size_line "edge-agent edge, aarch64" "$TARGET/aarch64-unknown-linux-gnu/edge/edge-agent"; fi
if command -v size >/dev/null 2>&1; then
  say "  sections of the edge build (size -A): $(size -A "$EDGE_BIN" | awk '$1==".text"||$1==".rodata"||$1==".data.rel.ro"||$1==".data"||$1==".bss" {printf "%s %.0f KiB  ", $1, $2/1024}')"
fi
say "  shared libraries: $(ldd "$EDGE_BIN" 2>/dev/null | awk '{print $1}' | tr '\n' ' ')"

# ---------------------------------------------------------------- broker
PORT=$(free_port)
{
  echo "listener $PORT 127.0.0.1"
  echo "allow_anonymous true"
  echo "persistence false"
  echo "max_queued_messages 100000"
  # Mosquitto's default keeps Nagle on for its sockets: small PUBACKs may wait
  # for a delayed TCP ACK (up to 40 ms) at the end of a burst.
  if [ "${BROKER_NODELAY:-}" = 1 ]; then echo "set_tcp_nodelay true"; fi
  echo "log_dest file $work/mosquitto.log"
  if [ "$(id -u)" = 0 ]; then echo "user root"; fi
} > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.err" &
BROKER_PID=$!
started_pids+=("$BROKER_PID")
for _ in $(seq 1 100); do port_free "$PORT" || break; sleep 0.05; done
port_free "$PORT" && die "mosquitto did not start on 127.0.0.1:$PORT: $(cat "$work/mosquitto.err")"
say "== broker: mosquitto $(mosquitto -h 2>/dev/null | awk 'NR==1 {print $3}') on 127.0.0.1:$PORT (pid $BROKER_PID)"

# An agent config with the 10 simulated assets at 1 Hz, state in $1.
agent_config() {
  local state=$1 i=0 id
  cat <<EOF
agent = "$AGENT"
site = "$SITE"
state_dir = "$state"

[mqtt]
url = "mqtt://127.0.0.1:$PORT"
EOF
  for id in "${ASSETS[@]}"; do
    printf '\n[[assets]]\nid = "%s"\n[assets.source]\ntype = "simulator"\nseed = %d\ninterval_ms = 1000\n' "$id" $((i + 1))
    case $id in
      feeder*) printf 'profile = "feeder"\nbase_kw = %d\npeak_kw = %d\nperiod_s = 3600\n' $((200 + 20 * i)) $((600 + 30 * i)) ;;
      *) printf 'profile = "line"\nrate_per_hour = %d\nrunning_load_kw = %d\n' $((1200 + 120 * i)) $((30 + 2 * i)) ;;
    esac
    i=$((i + 1))
  done
}

# ---------------------------------------------------------------- memory and CPU
# Sampled from /proc: VmRSS once a second, VmHWM at the end, CPU as
# utime+stime ticks over the wall time (percent of one core).
HZ=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Time on a CPU in ns, summed over the threads (finer than the ticks above; a cross-check).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }
# "Pss USS dirty" in KiB: proportional share, private pages (what the process
# adds to the system), private dirty pages (what cannot simply be dropped and
# read back from a file).
pss_uss() {
  awk '$1=="Pss:" {p=$2} $1=="Private_Clean:" {u+=$2} $1=="Private_Dirty:" {u+=$2; d=$2}
       END {print p+0, u+0, d+0}' "/proc/$1/smaps_rollup"
}
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

# smaps Rss of pid $1 (program file $2) by mapping, in KiB:
# "binary libc ld.so other_libs heap anon stack other".
smaps_split() {
  awk -v bin="$2" '
    /^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : ""
      if (name == bin) k = 1; else if (name ~ /\/libc\.so/) k = 2; else if (name ~ /\/ld-linux/) k = 3;
      else if (name ~ /\.so/) k = 4; else if (name == "[heap]") k = 5; else if (name == "") k = 6;
      else if (name == "[stack]") k = 7; else k = 8; next }
    $1 == "Rss:" { r[k] += $2 }
    END { for (i = 1; i <= 8; i++) printf "%d ", r[i]; printf "\n" }' "/proc/$1/smaps"
}

# Rss and private dirty KiB of pid $1 per mapped file (anonymous ones as "[anon]"), largest first.
smaps_files() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; next }
       $1 == "Rss:" { r[name] += $2 } $1 == "Private_Dirty:" { d[name] += $2 }
       END { for (n in r) if (r[n] > 0) printf "%8d %8d  %s\n", r[n], d[n], n }' "/proc/$1/smaps" | sort -rn
}

# Measure pids "name:pid:binary ..." together for DURATION seconds; appends
# "median_rss max_rss hwm cpu_pct threads pss uss dirty cpu_pct_schedstat" to $work/mem.<name>, smaps split to $work/smaps.<name>.
measure() {
  local spec name pid t0 t1 i
  declare -A c0 n0
  t0=$(now)
  for spec in "$@"; do
    IFS=: read -r name pid _ <<<"$spec"
    c0[$name]=$(cpu_ticks "$pid")
    n0[$name]=$(cpu_ns "$pid")
    : > "$work/rss.$name"
  done
  for i in $(seq 1 "$DURATION"); do
    sleep 1
    for spec in "$@"; do
      IFS=: read -r name pid _ <<<"$spec"
      status_kb "$pid" VmRSS >> "$work/rss.$name"
    done
  done
  t1=$(now)
  for spec in "$@"; do
    IFS=: read -r name pid bin <<<"$spec"
    local c1 n1 med max hwm threads
    c1=$(cpu_ticks "$pid")
    n1=$(cpu_ns "$pid")
    read -r med _ max < <(stats < "$work/rss.$name")
    hwm=$(status_kb "$pid" VmHWM)
    threads=$(status_kb "$pid" Threads)
    echo "$med $max $hwm $(calc "(${c1} - ${c0[$name]}) / $HZ / ($t1 - $t0) * 100") $threads $(pss_uss "$pid")" \
      "$(calc "(${n1} - ${n0[$name]}) / 1e9 / ($t1 - $t0) * 100")" >> "$work/mem.$name"
    smaps_split "$pid" "$bin" >> "$work/smaps.$name"
    smaps_files "$pid" > "$work/maps.$name"
  done
}

COLLECTD=""
if command -v collectd >/dev/null 2>&1 && [ -f /usr/lib/collectd/cpu.so ]; then
  COLLECTD=$(command -v collectd)
else
  say "   (collectd not installed: apt-get install collectd-core; compared against the sleep floor only)"
fi
collectd_config() {
  cat <<EOF
Interval 1
BaseDir "$1"
PIDFile "$1/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin csv
<Plugin csv>
  DataDir "$1/csv"
</Plugin>
EOF
}

say
say "== memory and CPU: $RUNS runs of ${DURATION} s each (after ${WARMUP} s warm-up)"
say "   side by side in each run: the shipped build (musl static), the same profile linked to glibc (its own agent id), collectd, sleep"
collectd_pid=""
for run in $(seq 1 "$RUNS"); do
  d=$work/mem-$run
  mkdir -p "$d/state" "$d/state-release" "$d/collectd"
  agent_config "$d/state" > "$d/agent.toml"
  "$EDGE_BIN" --config "$d/agent.toml" 2> "$d/agent.log" &
  agent_pid=$!
  started_pids+=("$agent_pid")
  pids=("$agent_pid")
  specs=("agent:$agent_pid:$(readlink -f "$EDGE_BIN")")
  if [ -x "$RELEASE_BIN" ]; then
    agent_config "$d/state-release" | sed "s/^agent = .*/agent = \"$AGENT-release\"/" > "$d/agent-release.toml"
    "$RELEASE_BIN" --config "$d/agent-release.toml" 2> "$d/agent-release.log" &
    pids+=($!)
    started_pids+=($!)
    specs+=("glibc:$!:$(readlink -f "$RELEASE_BIN")")
  fi
  sleep 1000 &
  pids+=($!)
  started_pids+=($!)
  specs+=("sleep:$!:$(readlink -f "$(command -v sleep)")")
  if [ -n "$COLLECTD" ]; then
    collectd_config "$d/collectd" > "$d/collectd.conf"
    "$COLLECTD" -f -C "$d/collectd.conf" > "$d/collectd.log" 2>&1 &
    collectd_pid=$!
    pids+=("$collectd_pid")
    started_pids+=("$collectd_pid")
    specs+=("collectd:$collectd_pid:$(readlink -f "$COLLECTD")")
  fi
  sleep "$WARMUP"
  for spec in "${specs[@]}"; do
    IFS=: read -r name pid _ <<<"$spec"
    kill -0 "$pid" 2>/dev/null || die "$name stopped early (logs in $d)"
  done
  grep -q ' connected ' "$d/agent.log" || die "the agent did not connect: $(tail -5 "$d/agent.log")"
  measure "${specs[@]}"
  kill -TERM "${pids[@]}"
  wait "$agent_pid" || die "the agent exited with an error: $(tail -5 "$d/agent.log")"
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  delivered=$(grep -o 'delivered=[0-9]*' "$d/agent.log" | tail -1)
  say "   run $run: agent $(tail -1 "$work/mem.agent" | awk '{printf "RSS median %d KiB, max %d, HWM %d, CPU %.3f %%, %d thread(s)", $1, $2, $3, $9, $5}') ($delivered envelopes)"
done

mem_row() {
  local name=$1 f=$work/mem.$1
  [ -f "$f" ] || return 0
  printf '  %-9s %-17s %-17s %-17s %-17s %-17s %-17s %-20s %-20s %s\n' "$name" \
    "$(awk '{print $1/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $2/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $3/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $6/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $7/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $8/1024}' "$f" | summary '%.2f')" \
    "$(awk '{print $4}' "$f" | summary '%.3f')" \
    "$(awk '{print $9}' "$f" | summary '%.3f')" \
    "$(awk '{print $5}' "$f" | stats | cut -d' ' -f1)"
}
say
say "  medians (min-max) of $RUNS runs; memory in MiB; CPU in % of one core from utime+stime"
say "  (/proc/PID/stat, 1 tick = $(calc "1000 / $HZ") ms) and from /proc/PID/task/*/schedstat (ns)"
printf '  %-9s %-17s %-17s %-17s %-17s %-17s %-17s %-20s %-20s %s\n' process "RSS median" "RSS max" VmHWM PSS \
  "USS (private)" "private dirty" "CPU % (stat)" "CPU % (schedstat)" threads
for name in agent glibc collectd sleep; do mem_row "$name"; done
agent_rss=$(awk '{print $1}' "$work/mem.agent" | stats | cut -d' ' -f1)
floor_rss=$(awk '{print $1}' "$work/mem.sleep" | stats | cut -d' ' -f1)
say "  agent (edge build) above the sleep floor: $(calc "($agent_rss - $floor_rss) / 1024" | xargs printf '%.2f') MiB RSS"
if [ -f "$work/mem.collectd" ]; then
  collectd_rss=$(awk '{print $1}' "$work/mem.collectd" | stats | cut -d' ' -f1)
  say "  agent / collectd RSS: $(calc "$agent_rss / $collectd_rss" | xargs printf '%.2f')"
fi
say
say "  where the resident memory is (smaps Rss in KiB, median of runs):"
printf '  %-9s %8s %8s %8s %8s %8s %8s %8s %8s\n' process binary libc ld.so "oth.libs" heap anon stack other
for name in agent glibc collectd sleep; do
  f=$work/smaps.$name
  [ -f "$f" ] || continue
  printf '  %-9s' "$name"
  for col in 1 2 3 4 5 6 7 8; do printf ' %8s' "$(awk -v c=$col '{print $c}' "$f" | stats | cut -d' ' -f1)"; done
  printf '\n'
done
say "  (binary: the program's own file; oth.libs: other shared objects (libm, libgcc_s, collectd's"
say "   plugins); heap: brk heap; anon: anonymous mappings (allocator arenas, thread stacks))"
say
say "  the agent's (edge build) mappings at the end of the last run (KiB):"
say "       Rss    dirty  file"
sed 's/^/  /' "$work/maps.agent"

# ---------------------------------------------------------------- replay
# Counting subscriber: stops after $1 telemetry messages; "done" holds its end time.
start_subscriber() {
  local out=$1 n=$2
  ( stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -d -F '%t' -C "$n" -W 120 \
      -t "throughline/v1/$SITE/$AGENT/+/telemetry" > "$out" 2>&1
    now > "$out.done" ) &
  sub_pid=$!
  started_pids+=("$sub_pid")
  for _ in $(seq 1 200); do grep -q 'received SUBACK' "$out" 2>/dev/null && return 0; sleep 0.02; done
  die "the counting subscriber did not subscribe"
}
wait_for() { # file, pattern, seconds
  local end
  end=$(calc "$(date +%s) + $3")
  until grep -q "$2" "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "${end%.*}" ] || return 1
    sleep 0.01
  done
}
log_time() { epoch_of "$(grep -m1 "$2" "$1" | awk '{print $1}')"; }

say
say "== replay of a one-hour backlog ($BACKLOG_ENVELOPES envelopes of 10 samples, $BACKLOG_SAMPLES samples), $REPLAY_RUNS runs"
: > "$work/replay.agent"
: > "$work/replay.base"
for run in $(seq 1 "$REPLAY_RUNS"); do
  d=$work/replay-$run
  mkdir -p "$d/state"
  agent_config "$d/state" > "$d/agent.toml"
  asset_args=()
  for id in "${ASSETS[@]}"; do asset_args+=(--asset "$id"); done
  "$FILL" --state-dir "$d/state" --site "$SITE" --agent "$AGENT" "${asset_args[@]}" > "$d/fill.out"
  spool_bytes=$(du -sb "$d/state/spool" | cut -f1)

  # The agent replays its spool.
  start_subscriber "$d/sub.agent" "$BACKLOG_ENVELOPES"
  t_start=$(now)
  "$EDGE_BIN" --config "$d/agent.toml" 2> "$d/agent.log" &
  agent_pid=$!
  started_pids+=("$agent_pid")
  wait_for "$d/agent.log" 'spooled backlog delivered' 300 || die "no 'spooled backlog delivered' in the agent log: $(tail -5 "$d/agent.log")"
  peak=$(status_kb "$agent_pid" VmHWM)
  kill -TERM "$agent_pid"
  wait "$agent_pid" || die "the agent exited with an error: $(tail -5 "$d/agent.log")"
  wait "$sub_pid" || true
  got=$(grep -c "^throughline/" "$d/sub.agent" || true)
  [ "$got" -ge "$BACKLOG_ENVELOPES" ] || die "the subscriber counted $got of $BACKLOG_ENVELOPES envelopes"
  t_conn=$(log_time "$d/agent.log" ' connected ')
  t_done=$(log_time "$d/agent.log" 'spooled backlog delivered')
  t_sub=$(cat "$d/sub.agent.done")
  spooled=$(grep -m1 ' connected ' "$d/agent.log" | grep -o 'spooled=[0-9]*' | cut -d= -f2)
  replay_s=$(calc "$t_done - $t_conn")
  echo "$replay_s $(calc "$t_done - $t_start") $(calc "$t_sub - $t_start") $(calc "$spooled * 10 / $replay_s") $((peak)) $spooled $(calc "$t_conn - $t_start")" >> "$work/replay.agent"

  # The broker's ceiling: the same payloads without the agent.
  start_subscriber "$d/sub.base" "$BACKLOG_ENVELOPES"
  "$PUBLISH" --url "mqtt://127.0.0.1:$PORT" --site "$SITE" --agent "$AGENT" "${asset_args[@]}" > "$d/publish.out"
  wait "$sub_pid" || true
  got=$(grep -c "^throughline/" "$d/sub.base" || true)
  [ "$got" -ge "$BACKLOG_ENVELOPES" ] || die "the subscriber counted $got of $BACKLOG_ENVELOPES published envelopes"
  base_ms=$(grep -o 'publish_ms=[0-9.]*' "$d/publish.out" | cut -d= -f2)
  echo "$(calc "$base_ms / 1000") $(calc "$BACKLOG_SAMPLES / ($base_ms / 1000)")" >> "$work/replay.base"

  say "   run $run: spool $spool_bytes bytes, $spooled records at connect; agent connected->delivered $(calc "$replay_s * 1000" | xargs printf '%.0f') ms" \
      "($(tail -1 "$work/replay.agent" | awk '{printf "%.0f", $4}') samples/s), start->delivered $(calc "($t_done - $t_start) * 1000" | xargs printf '%.0f') ms," \
      "subscriber has all at $(calc "($t_sub - $t_start) * 1000" | xargs printf '%.0f') ms;" \
      "publish-backlog $(printf '%.0f' "$base_ms") ms ($(tail -1 "$work/replay.base" | awk '{printf "%.0f", $2}') samples/s)"
done

say
say "  medians (min-max) of $REPLAY_RUNS runs"
say "  agent, connected -> 'spooled backlog delivered': $(awk '{print $1*1000}' "$work/replay.agent" | summary '%.0f') ms," \
    "$(awk '{print $4}' "$work/replay.agent" | summary '%.0f') samples/s"
say "  agent, process start -> connected:               $(awk '{print $7*1000}' "$work/replay.agent" | summary '%.0f') ms"
say "  agent, process start -> delivered (log):         $(awk '{print $2*1000}' "$work/replay.agent" | summary '%.0f') ms," \
    "$(awk '{print '"$BACKLOG_SAMPLES"'/$2}' "$work/replay.agent" | summary '%.0f') samples/s"
say "  agent, process start -> subscriber has all:      $(awk '{print $3*1000}' "$work/replay.agent" | summary '%.0f') ms"
say "  agent, peak RSS during replay (VmHWM):          $(awk '{print $5/1024}' "$work/replay.agent" | summary '%.2f') MiB"
say "  baseline publish-backlog (CONNACK -> last PUBACK): $(awk '{print $1*1000}' "$work/replay.base" | summary '%.0f') ms," \
    "$(awk '{print $2}' "$work/replay.base" | summary '%.0f') samples/s"
a=$(awk '{print $4}' "$work/replay.agent" | stats | cut -d' ' -f1)
b=$(awk '{print $2}' "$work/replay.base" | stats | cut -d' ' -f1)
say "  agent / baseline replay rate: $(calc "$a / $b" | xargs printf '%.2f')"
