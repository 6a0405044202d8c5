#!/usr/bin/env bash
# Instructions per delivery (ws-fanout, sse-fanout, lp-fanout), per echoed message (echo), per
# accepted WebSocket (ws-accept: connect, handshake, a short hold, close) and per accepted long
# poll (lp-accept: connect, request, held a second, the client gone), counted by callgrind:
# repeatable on a busy machine, where wall-clock figures are not.
#
#   ./callgrind.sh [options] [--server 'NAME|CAPS|BASE_URL|COMMAND']...
#
# Each server (CAPS from echo, ws, sse, lp as in run.sh; COMMAND must exec the server) runs under
#   valgrind --tool=callgrind --separate-threads=no
# once per run; rtload drives it for --short s and then, on a fresh process, for --long s.
# The server is stopped with SIGTERM (callgrind writes its totals as it exits; SIGINT would
# not do: a background job of a script ignores it), and
#   Ir per delivery = (Ir(long) - Ir(short)) / (deliveries(long) - deliveries(short))
# so start-up, connection set-up and shutdown, the same in both runs, cancel.
# callgrind counts user-space instructions only: the kernel's work (system calls, TCP) is not in it.
# valgrind counts each iteration of a `rep stos`/`rep movs` as one instruction, so glibc's
# memset/memcpy of large blocks (which use them past a size threshold) would count one Ir per
# byte, far above their native cost (e.g. a 128 KiB buffer zeroed per read: 131,072 Ir).
# By default the server runs with GLIBC_TUNABLES raising those thresholds out of reach, so glibc
# uses its vector loops (one Ir per 32-byte store), whose count follows the native cost;
# --rep-string keeps glibc's default.
# The three peers are added unless --no-peers.
#
# Options: --short S (2)  --long S (6)  --subs N (200)  --rate R (50 msg/s)   [the fan-outs]
#          --echo-conns N (10)  --size B (32)                                 [echo]
#          --accepts-per-s N (500: ws-accept opens N x --short, then N x --long WebSockets on /echo
#            with `rtload idle`, each held 1 s; Ir per accept = the difference over the difference;
#            lp-accept opens as many long polls, on one channel, each held 1 s by the client)
#          --reps N (1: pairs of runs per server and test; the median is shown, and the range)
#          --only REGEX (matched against the test ids ws-fanout, echo, sse-fanout, lp-fanout, ws-accept,
#            lp-accept;
#            by default ^(ws-fanout|echo)$)  --no-peers  --no-build  --rep-string
#          --lock FILE (take this flock around each server's pair of runs, e.g. /tmp/wa-bench.lock,
#            so as not to disturb someone's wall-clock runs)  --out DIR (/tmp/callgrind-DATE)
set -euo pipefail
cd "$(dirname "$0")"

REPS=1 SHORT=2 LONG=6 SUBS=200 RATE=50 ECHO_CONNS=10 SIZE=32 ACCEPTS=500 ONLY='^(ws-fanout|echo)$' PEERS=1 BUILD=1 LOCK=
TUNABLES=glibc.cpu.x86_rep_stosb_threshold=0xffffffffffff:glibc.cpu.x86_rep_movsb_threshold=0xffffffffffff
OUT=/tmp/callgrind-$(date +%Y%m%d-%H%M%S)
SPECS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) REPS=$2; shift ;;
    --short) SHORT=$2; shift ;;
    --long) LONG=$2; shift ;;
    --subs) SUBS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --echo-conns) ECHO_CONNS=$2; shift ;;
    --accepts-per-s) ACCEPTS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --server) SPECS+=("$2"); shift ;;
    --lock) LOCK=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-peers) PEERS=0 ;;
    --no-build) BUILD=0 ;;
    --rep-string) TUNABLES= ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
BIN=$PWD/target/release
if [[ $PEERS == 1 ]]; then   # ports apart from run.sh's, so both can run
  SPECS+=("tungstenite|echo,ws|http://127.0.0.1:18201|$BIN/peer-tungstenite 127.0.0.1:18201"
          "fastws|echo|http://127.0.0.1:18202|$BIN/peer-fastws 127.0.0.1:18202"
          "axum|echo,ws,sse,lp|http://127.0.0.1:18203|$BIN/peer-axum 127.0.0.1:18203")
fi
[[ ${#SPECS[@]} -gt 0 ]] || { echo "no servers" >&2; exit 2; }
[[ $BUILD == 1 ]] && cargo build --release --quiet
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
echo "results in $OUT; callgrind counts user-space instructions only (no kernel: system calls and TCP are not counted)"

listener_pid() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
SRV=
cleanup() { [[ -n $SRV ]] && kill -KILL "$SRV" 2>/dev/null; true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_one NAME CMD PORT TEST SECONDS FILE: one server process under callgrind, one rtload run.
# Prints "IR COUNT" (COUNT = deliveries or echoes); rtload's output goes to FILE.rtload.
run_one() {
  local name=$1 cmd=$2 port=$3 test=$4 secs=$5 file=$6 host=127.0.0.1:$3 out k
  trap cleanup EXIT   # runs in a subshell ($(run_one …)): stop its server if it dies
  if [[ -n $(ss -ltnH "sport = :$port") ]]; then
    echo "port $port for $name is already in use: refusing to start" >&2; return 1
  fi
  # shellcheck disable=SC2086
  env ${TUNABLES:+GLIBC_TUNABLES=$TUNABLES} valgrind --tool=callgrind --separate-threads=no --callgrind-out-file="$file" $cmd >"$file.log" 2>&1 &
  SRV=$!
  for ((k = 0; k < 1200; k++)); do   # valgrind reads debug info first: allow 2 min
    [[ $(listener_pid "$port") == "$SRV" ]] && break
    kill -0 "$SRV" 2>/dev/null || { echo "$name exited under valgrind (see $file.log)" >&2; return 1; }
    sleep 0.1
  done
  [[ $(listener_pid "$port") == "$SRV" ]] || { echo "$name did not listen on $port (see $file.log)" >&2; return 1; }
  case $test in
    *-fanout) local sub=${test/lp-/long-poll-}
               out=$(timeout $((secs * 4 + 180)) "$BIN/rtload" "$sub" --url-base "http://$host" --subs "$SUBS" \
                 --rate "$RATE" --size "$SIZE" --duration "$secs" --grace 60 --label "$name" 2>>"$file.rtload.err") ;;
    echo) out=$(timeout $((secs * 4 + 180)) "$BIN/rtload" ws-echo --url "ws://$host/echo" --conns "$ECHO_CONNS" \
                 --size "$SIZE" --duration "$secs" --warmup 0 --label "$name" 2>>"$file.rtload.err") ;;
    *-accept) local target=(--url "ws://$host/echo" --kind ws)
               [[ $test == lp-accept ]] && target=(--url "http://$host" --kind long-poll)
               out=$(timeout $((secs * 60 + 180)) "$BIN/rtload" idle "${target[@]}" \
                 --conns $((secs * ACCEPTS)) --hold 1 --connect-timeout 60 --pid "$SRV" --label "$name" 2>>"$file.rtload.err") ;;
  esac || { echo "rtload failed on $name $test (see $file.rtload.err)" >&2; }
  echo "$out" >"$file.rtload"
  kill -TERM "$SRV" 2>/dev/null || true
  for ((k = 0; k < 1200; k++)); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SRV" 2>/dev/null; then
    echo "$name did not exit within 2 min of SIGTERM: killed, no callgrind totals" >&2
    kill -KILL "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; return 1
  fi
  wait "$SRV" 2>/dev/null || true; SRV=
  local ir n
  ir=$(awk '/^(summary|totals):/ {v = $2} END {print v}' "$file")
  case $test in
    *-fanout) n=$(grep -o '"delivered":[0-9]*' "$file.rtload" | cut -d: -f2) ;;
    echo) n=$(grep -o '"msgs_all":[0-9]*' "$file.rtload" | cut -d: -f2) ;;
    *-accept) n=$(grep -o '"open":[0-9]*' "$file.rtload" | cut -d: -f2) ;;
  esac
  [[ -n $ir && -n $n ]] || { echo "no Ir or count for $name $test $secs s (see $file*)" >&2; return 1; }
  echo "$ir $n"
}

RES=$OUT/callgrind.jsonl
SUMMARY=() RAW=()
for spec in "${SPECS[@]}"; do
  IFS='|' read -r name caps url cmd <<<"$spec"
  [[ -n $cmd ]] || { echo "$name: callgrind.sh needs a COMMAND to start the server" >&2; continue; }
  hp=${url#*://}; hp=${hp%%/*}; port=${hp##*:}
  for test in ws-fanout echo sse-fanout lp-fanout ws-accept lp-accept; do
    [[ $test =~ $ONLY ]] || continue
    case $test in ws-accept) cap=echo ;; lp-accept) cap=lp ;; *) cap=${test%-fanout} ;; esac
    [[ ,$caps, == *,$cap,* ]] || continue
    pers=()
    for ((rep = 1; rep <= REPS; rep++)); do
    f=$OUT/$name-$test-r$rep
    [[ -n $LOCK ]] && { exec 9>"$LOCK"; flock 9; }
    if s=$(run_one "$name" "$cmd" "$port" "$test" "$SHORT" "$f-${SHORT}s.callgrind") &&
       l=$(run_one "$name" "$cmd" "$port" "$test" "$LONG" "$f-${LONG}s.callgrind"); then
      read -r ir_s n_s <<<"$s"; read -r ir_l n_l <<<"$l"
      unit=delivery units=deliveries; [[ $test == echo ]] && unit=message units=messages
      [[ $test == *-accept ]] && unit=accept units=accepts
      per=$(awk "BEGIN{d = $n_l - $n_s; if (d > 0) printf \"%.0f\", ($ir_l - $ir_s) / d; else print \"nan\"}")
      loss_s=$(grep -o '"loss":[0-9.e-]*' "$f-${SHORT}s.callgrind.rtload" | cut -d: -f2 || true)
      loss_l=$(grep -o '"loss":[0-9.e-]*' "$f-${LONG}s.callgrind.rtload" | cut -d: -f2 || true)
      line="$(printf '%-12s %-10s %10s Ir per %-8s | %ss run: Ir %s, %s %s | %ss run: Ir %s, %s %s' \
        "$name" "$test" "$per" "$unit" "$SHORT" "$ir_s" "$n_s" "$units" "$LONG" "$ir_l" "$n_l" "$units")"
      [[ -n $loss_s$loss_l ]] && line+=" | lost ${loss_s:-?} / ${loss_l:-?}"
      echo "  rep $rep: $line"; RAW+=("rep $rep: $line"); pers+=("$per")
      echo "{\"server\":\"$name\",\"test\":\"$test\",\"rep\":$rep,\"ir_per_$unit\":$per,\"short\":{\"s\":$SHORT,\"ir\":$ir_s,\"n\":$n_s,\"loss\":${loss_s:-null}},\"long\":{\"s\":$LONG,\"ir\":$ir_l,\"n\":$n_l,\"loss\":${loss_l:-null}}}" >>"$RES"
    else
      echo "$name $test: FAILED (see $OUT)" | tee -a "$OUT/failed.txt"
    fi
    [[ -n $LOCK ]] && flock -u 9
    done
    if ((${#pers[@]} > 0)); then   # the median over reps, and the range
      SUMMARY+=("$(printf '%s\n' "${pers[@]}" | sort -n | awk -v n="$name" -v t="$test" -v u="$unit" \
        '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "%-12s %-10s %10.0f Ir per %-8s (median of %d; min %s, max %s)", n, t, m, u, NR, v[1], v[NR]}')")
    fi
  done
done
{
  echo
  echo "Ir = user-space instructions of the server process (callgrind, all threads; kernel work not counted)."
  echo "ws-fanout: $SUBS subscribers, $RATE msg/s, $SIZE B; echo: $ECHO_CONNS connections, $SIZE B binary, one in flight each."
  echo "ws-accept: $((SHORT * ACCEPTS)), then $((LONG * ACCEPTS)) WebSockets opened on /echo (rtload idle), each held 1 s, then closed."
  echo "lp-accept: $((SHORT * ACCEPTS)), then $((LONG * ACCEPTS)) long polls opened on one channel (rtload idle), each held 1 s, then closed."
  echo "Ir per unit = (Ir(${LONG}s) - Ir(${SHORT}s)) / (count(${LONG}s) - count(${SHORT}s))"
  if [[ -n $TUNABLES ]]; then echo "glibc memset/memcpy: vector loops (GLIBC_TUNABLES=$TUNABLES), not rep stos/movs"
  else echo "glibc memset/memcpy: default (rep stos/movs past a threshold: one Ir per byte under valgrind)"; fi
  echo "raw runs:"
  printf '  %s\n' "${RAW[@]}"
  echo "per server and test:"
  printf '%s\n' "${SUMMARY[@]}"
} | tee "$OUT/summary.txt"
