#!/usr/bin/env bash
# Build the edge agent (profile `edge`: small code, small resident set) for 64-bit Raspberry Pi OS (aarch64) on a
# Debian/Ubuntu x86-64 machine, then try the binary under qemu-user:
# --version, --check on the example config, and a few seconds of real
# publishing to a throwaway local Mosquitto, stopped with SIGTERM.
#
# Usage:  deploy/build-aarch64.sh [--no-run]
#   --no-run   build only (no qemu, no Mosquitto)
#
# Installs what is missing: the Rust target (rustup), and with apt-get
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user, file, mosquitto,
# mosquitto-clients (as root, or through sudo). The workspace's Cargo config
# is not touched: the cross linker is set through the environment.
# Honours CARGO_TARGET_DIR. The binary: $CARGO_TARGET_DIR/aarch64-unknown-linux-musl/edge/edge-agent
# (default target/...). Copy it to the Pi as /usr/local/bin/edge-agent
# (docs/raspberry-pi.md).
set -euo pipefail
cd "$(dirname "$0")/.."

run=yes
case "${1:-}" in
  --no-run) run=no ;;
  "") ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

# Static musl: runs on any 64-bit Raspberry Pi OS whatever its glibc, and keeps
# shared-library pages out of the agent's resident memory.
target=aarch64-unknown-linux-musl
sysroot=/usr/aarch64-linux-gnu
say() { printf '\n== %s\n' "$*"; }

# --- What the build and the trial run need -----------------------------------
if ! rustup target list --installed | grep -qx "$target"; then
  say "rustup target add $target"
  rustup target add "$target"
fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/lib/libc.so.6" ] && [ -e "$sysroot/include/stdio.h" ] || need+=(libc6-dev-arm64-cross)
command -v file >/dev/null || need+=(file)
if [ "$run" = yes ]; then
  command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || need+=(qemu-user)
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
  command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- Build ----------------------------------------------------------------------
# The cross gcc links (Rust brings musl's libc.a and start files for the target)
# and compiles ring's bit of C and assembly.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
say "cargo build --profile edge --target $target -p throughline-edge-agent"
started=$(date +%s)
cargo build --profile edge --locked --target "$target" -p throughline-edge-agent
bin="${CARGO_TARGET_DIR:-target}/$target/edge/edge-agent"
echo "built in $(( $(date +%s) - started )) s: $bin"

say "the binary"
echo "size: $(stat -c %s "$bin") bytes ($(du -h "$bin" | cut -f1))"
file "$bin"
echo "statically linked: no glibc version needed (Raspberry Pi OS bullseye and bookworm alike)"

[ "$run" = yes ] || exit 0

# --- Try it under qemu-user -------------------------------------------------------
qemu="$(command -v qemu-aarch64 || command -v qemu-aarch64-static)"
mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
on_arm() { "$qemu" -L "$sysroot" "$bin" "$@"; }

say "qemu: edge-agent --version"
on_arm --version

say "qemu: edge-agent --check --config deploy/edge-agent.example.toml"
on_arm --check --config deploy/edge-agent.example.toml

say "qemu: publishing to a throwaway Mosquitto on 127.0.0.1"
work="$(mktemp -d)"
broker_pid=""
agent_pid=""
cleanup() {
  [ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true
  [ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$(( 20000 + RANDOM % 20000 ))
while port_busy "$port"; do port=$(( 20000 + RANDOM % 20000 )); done
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 100); do port_busy "$port" && break; sleep 0.1; done
port_busy "$port" || { cat "$work/mosquitto.log"; echo "mosquitto did not start" >&2; exit 1; }
echo "mosquitto (pid $broker_pid) on 127.0.0.1:$port"

cat >"$work/agent.toml" <<EOF
agent = "gw-qemu"
site = "plant-qemu"
state_dir = "$work/state"

[mqtt]
url = "mqtt://127.0.0.1:$port"

[publish]
max_batch_delay_ms = 500

[[assets]]
id = "press-1"
[assets.source]
type = "simulator"
profile = "line"
interval_ms = 250
rate_per_hour = 1800
EOF
# qemu itself in the background (not a function, which would be a subshell),
# so that the SIGTERM below reaches the agent.
"$qemu" -L "$sysroot" "$bin" --config "$work/agent.toml" 2>"$work/agent.log" &
agent_pid=$!
ran_from=$(date +%s)
echo "edge-agent under qemu (pid $agent_pid), waiting for one telemetry message:"
if ! mosquitto_sub -h 127.0.0.1 -p "$port" -t 'throughline/v1/plant-qemu/gw-qemu/+/telemetry' -C 1 -W 30 -v; then
  cat "$work/agent.log"
  echo "no telemetry arrived within 30 s" >&2
  exit 1
fi
# Let it run about 5 s in all, then stop it as systemd would.
left=$(( 5 - ($(date +%s) - ran_from) ))
[ "$left" -le 0 ] || sleep "$left"
kill -TERM "$agent_pid"
status=0
wait "$agent_pid" || status=$?
agent_pid=""
echo "after SIGTERM the agent exited with status $status; its log:"
cat "$work/agent.log"
grep -q "edge agent stopped" "$work/agent.log" || { echo "no clean-stop line in the log" >&2; exit 1; }
[ "$status" -eq 0 ] || exit 1
say "ok: $bin runs on aarch64 (under qemu) and publishes"
