#!/usr/bin/env bash
# The build without `serve`'s byte trace (`--no-default-features`; docs/performance.md
# measures the default build, trace off, against it): it compiles, it serves, and it
# refuses the trace flags it cannot honour (exit 1, with a message) rather than ignore them.
#
#   bash scripts/notrace.sh
#
# Built into target/notrace, so that the default build's binary in target/ stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --no-default-features --bin wire-academy --target-dir target/notrace
BIN=target/notrace/debug/wire-academy
TMP=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "scripts/notrace.sh: $*" >&2; exit 1; }

for flag in --trace-bytes "--trace-out $TMP/trace.txt" "--trace-pcap $TMP/c.pcap"; do
  # A build that took the flag would serve until the timeout: no message, a failure below.
  # shellcheck disable=SC2086 # the flag and its value are two words
  if timeout 20 "$BIN" serve --addr 127.0.0.1:0 $flag >"$TMP/out" 2>"$TMP/err"; then
    fail "serve $flag started in a build without the trace"
  fi
  grep -q "this build has no byte trace" "$TMP/err" || fail "serve $flag: no message saying why: $(cat "$TMP/err")"
done

# It serves: the listening line names the port; a message published is polled back.
"$BIN" serve --addr 127.0.0.1:0 >"$TMP/serve.out" 2>&1 &
SERVER=$!
url=
for _ in $(seq 500); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$TMP/serve.out" || true)
  [ -n "$url" ] && break
  kill -0 "$SERVER" 2>/dev/null || fail "serve exited: $(cat "$TMP/serve.out")"
  sleep 0.01
done
[ -n "$url" ] || fail "no listening line: $(cat "$TMP/serve.out")"
curl -sf -d 'no trace here' "$url/publish/notrace" >/dev/null || fail "publish failed"
body=$(curl -sf "$url/poll/notrace?after=0") || fail "poll failed"
case $body in
  *'"data":"no trace here"'*) echo "scripts/notrace.sh: the build without the trace serves, and refuses the trace flags" ;;
  *) fail "poll answered $body" ;;
esac
