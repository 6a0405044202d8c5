#!/usr/bin/env bash
# System calls per message, counted by the kernel's tracepoints while rtload runs: the
# server's writes, reads, epoll waits, futex calls and context switches, each divided by
# the messages it delivered (fan-out) or echoed. Beside them, the server's and the load
# generator's CPU (rtload's figures) and a probe of the machine's speed taken before
# each run, so that a costly run can be told apart from a slow machine.
#
#   ./syscalls.sh [--reps N] [--lock FILE] --server 'NAME|BASE_URL|COMMAND' [--server …] -- TEST [RTLOAD ARGS…]
#
# TEST is an rtload subcommand: ws-fanout, sse-fanout or long-poll-fanout (given
# --url-base BASE_URL) or ws-echo (given --url ws://HOST/echo). COMMAND starts the
# server listening at BASE_URL's port; each run starts it afresh and stops it after.
# Servers alternate run by run. Needs perf (linux-perf) and a kernel that lets it read
# tracepoints (run as root; tracefs is mounted here if it is not).
#
# The probe: user CPU seconds of hashing 300 MB (sha256sum of zeros); on an idle,
# steady machine it does not move, and it rose by half between runs on our virtual one.
#
# Example (docs/performance.md, "SSE with --coalesce"):
#   ./syscalls.sh --reps 4 \
#     --server 'default|http://127.0.0.1:18330|/tmp/wire-academy-bench serve --addr 127.0.0.1:18330' \
#     --server 'coalesce|http://127.0.0.1:18331|/tmp/wire-academy-bench serve --addr 127.0.0.1:18331 --coalesce 0.02' \
#     -- sse-fanout --subs 1000 --rate 100 --duration 10
set -euo pipefail
cd "$(dirname "$0")"
BIN=$PWD/target/release
REPS=1
LOCK=
declare -a SPECS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --lock) LOCK=$2; shift 2 ;;
    --server) SPECS+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done
[[ $# -ge 1 && ${#SPECS[@]} -ge 1 ]] || { echo "usage: see the head of $0" >&2; exit 2; }
TEST=$1; shift
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
[[ -x $BIN/rtload ]] || { echo "no $BIN/rtload: cargo build --release first" >&2; exit 2; }
[[ -e /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true

EVENTS=syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev
EVENTS+=,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait
EVENTS+=,syscalls:sys_enter_futex,raw_syscalls:sys_enter,context-switches
perf stat -e "$EVENTS" -- true >/dev/null 2>&1 \
  || { echo "perf cannot count syscall tracepoints here (root? tracefs?)" >&2; exit 2; }

probe() { /usr/bin/time -f %U sh -c 'head -c 300000000 /dev/zero | sha256sum >/dev/null' 2>&1 | tail -1; }

run_one() { # NAME URL CMD RTLOAD-ARGS…
  local name=$1 url=$2 cmd=$3 hostport port spid out target
  shift 3
  hostport=${url#*://}; hostport=${hostport%%/*}; port=${hostport##*:}
  local speed; speed=$(probe)
  $cmd >/dev/null 2>&1 &
  spid=$!
  for _ in $(seq 200); do ss -ltnH "sport = :$port" | grep -q . && break; sleep 0.05; done
  case $TEST in
    ws-echo) target=(--url "ws://$hostport/echo") ;;
    *) target=(--url-base "$url") ;;
  esac
  # perf counts the server's events (-p) for as long as rtload, its command, runs.
  out=$(perf stat -x, -e "$EVENTS" -p "$spid" -o "$TMP/perf" -- \
    "$BIN/rtload" "$TEST" "${target[@]}" --pid "$spid" --label "$name" "$@" 2>>"$TMP/rtload.err" | tail -1) || true
  kill "$spid"; wait "$spid" 2>/dev/null || true
  [[ -n $out ]] || { echo "$name: rtload failed:" >&2; tail -3 "$TMP/rtload.err" >&2; }
  python3 - "$name" "$speed" "$TMP/perf" "$out" <<'EOF'
import json, sys
name, speed, perf, out = sys.argv[1:5]
d = json.loads(out) if out.strip().startswith("{") else {}
n = d.get("delivered") or d.get("msgs_all") or 0
c = {}
for line in open(perf):
    p = line.strip().split(",")
    if len(p) > 2 and p[0].isdigit():
        c[p[2].split(":")[-1]] = int(p[0])
def per(*keys):
    return f"{sum(c.get(k, 0) for k in keys) / n:.3f}" if n else "-"
print(f"{name:14s} {speed:>6s} {d.get('server_cpu', '-'):>7} {d.get('client_cpu', '-'):>7} "
      f"{d.get('steal_cpu', '-'):>6} {n:>9} "
      f"{per('sys_enter_sendto', 'sys_enter_sendmsg', 'sys_enter_write', 'sys_enter_writev'):>7} "
      f"{per('sys_enter_recvfrom', 'sys_enter_read'):>7} {per('sys_enter_epoll_wait'):>7} "
      f"{per('sys_enter_futex'):>7} {per('sys_enter'):>7} {per('context-switches'):>7}")
EOF
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "$TEST $* (per message: writes = sendto+sendmsg+write+writev, reads = recvfrom+read)"
printf '%-14s %6s %7s %7s %6s %9s %7s %7s %7s %7s %7s %7s\n' \
  server probe srv_cpu cli_cpu steal messages writes reads epoll futex all ctxsw
for ((r = 1; r <= REPS; r++)); do
  for spec in "${SPECS[@]}"; do
    IFS='|' read -r name url cmd <<<"$spec"
    if [[ -n $LOCK ]]; then
      exec 9>"$LOCK"; flock 9
      run_one "$name" "$url" "$cmd" "$@"
      flock -u 9
    else
      run_one "$name" "$url" "$cmd" "$@"
    fi
  done
done
