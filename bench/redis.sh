#!/bin/bash
# usage: bench/redis.sh [SUBS] [RATE] [DURATION]      (defaults: 1000 100 10)
# Fan-out through Redis beside the memory broker (docs/performance.md, "Through Redis: two
# instances"). Starts a redis-server on a free loopback port and two release wire-academy
# instances A and B with --broker redis://…, and runs `rtload ws-fanout` and `rtload sse-fanout`
# publishing on A, subscribing on B, with the server CPU summed over A and B (--pid A,B).
# The redis-server's own CPU over each run is printed after it. Then the same against one
# instance with --broker memory (publisher and subscribers on it). Every process it starts is
# stopped at the end, by PID. Loopback only. Build first: `cargo build --release` at the root
# and in bench/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
subs=${1:-1000}
rate=${2:-100}
dur=${3:-10}
server=${SERVER:-$here/../target/release/wire-academy}
rtload=${RTLOAD:-$here/target/release/rtload}
ulimit -n "$(ulimit -Hn)"
logs=$(mktemp -d /tmp/bench-redis-XXXX)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on 127.0.0.1:$1 (logs: $logs)" >&2
  return 1
}
start_server() { # PORT BROKER NAME -> sets $started
  "$server" serve --addr "127.0.0.1:$1" --broker "$2" >"$logs/$3.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_port "$1"
}
ticks() { # utime+stime of a PID, in clock ticks (100 Hz)
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# 1. through Redis: publisher on A, subscribers on B
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no >"$logs/redis.log" 2>&1 &
redis=$!
pids+=("$redis")
wait_port "$rport"
pa=$(free_port)
start_server "$pa" "redis://127.0.0.1:$rport" a
a=$started
pb=$(free_port)
start_server "$pb" "redis://127.0.0.1:$rport" b
b=$started
echo "# redis-server :$rport (pid $redis), A :$pa (pid $a), B :$pb (pid $b), logs in $logs"
for mode in ws-fanout sse-fanout; do
  r0=$(ticks "$redis")
  timeout 120 "$rtload" "$mode" --label redis --url-base "http://127.0.0.1:$pb" \
    --publish-url-base "http://127.0.0.1:$pa" --pid "$a,$b" \
    --subs "$subs" --rate "$rate" --duration "$dur"
  r1=$(ticks "$redis")
  echo "# $mode redis: redis-server CPU $(awk -v t=$((r1 - r0)) 'BEGIN { printf "%.2f", t / 100 }') s over the run"
done
stop_all

# 2. memory broker: one instance, publisher and subscribers on it
pm=$(free_port)
start_server "$pm" memory memory
m=$started
echo "# memory :$pm (pid $m)"
for mode in ws-fanout sse-fanout; do
  timeout 120 "$rtload" "$mode" --label memory --url-base "http://127.0.0.1:$pm" --pid "$m" \
    --subs "$subs" --rate "$rate" --duration "$dur"
done
stop_all
