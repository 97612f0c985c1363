#!/usr/bin/env bash
# The long bad-input run (issue 18): PAYLOADS generated cases per broker
# (tests/support/fuzz.rs, seeded), through the embedded broker and through
# a Mosquitto the test starts itself (MQTT 5), against the release
# aggregator. The test asserts what the short run in the normal suite does
# (never exits, RSS under 200 MiB, every good envelope ingested once, every
# refused one counted by reason, no reconnect) and prints one line of
# figures per broker: cases/s and the aggregator's RSS peak.
#
# Usage: bench/fuzz.sh
# Needs: cargo, mosquitto (apt-get install mosquitto).
# Env:   PAYLOADS=1000000 SEED_EMBEDDED=1 SEED_MOSQUITTO=2
#        CARGO_TARGET_DIR (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
PAYLOADS=${PAYLOADS:-1000000}
cargo build --release --workspace --bins
THROUGHLINE_FUZZ_PAYLOADS=$PAYLOADS THROUGHLINE_FUZZ_SEED_EMBEDDED=${SEED_EMBEDDED:-1} \
THROUGHLINE_FUZZ_SEED_MOSQUITTO=${SEED_MOSQUITTO:-2} \
  cargo test --release -p throughline-tests --test e2e fuzz_ -- --nocapture --test-threads=1 2>&1 \
  | grep -E '^fuzz |^test |test result'
