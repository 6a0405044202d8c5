#!/usr/bin/env bash
# The soak (tests/soak.rs): mixed load on all four transports, reconnects through a
# proxy that cuts idle connections, fresh channels past --max-channels, and the
# contract's bad inputs at random, for SECONDS (default 1800: half an hour); then the
# invariants: every acknowledged message exactly once, in order, for every subscriber
# that kept its cursor; no growth in the server's memory or descriptors after its
# first quarter; descriptors back once the clients leave; no panic in its log.
#
#   bash scripts/soak.sh [SECONDS]
#
# Built in release mode, as a server runs in production. scripts/test.sh runs the same
# test for two minutes inside `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WIRE_ACADEMY_SOAK_SECONDS="${1:-1800}" cargo test --release --test soak -- --nocapture
