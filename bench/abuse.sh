#!/bin/bash
# usage: bench/abuse.sh KIND [rtload abuse options...]
# Starts a fresh wire-academy (with its defaults, plus $SERVER_ARGS) on 127.0.0.1:18120,
# with the open-file limit raised as scripts/test.sh does, then runs `rtload abuse` twice
# against that same server: the second round shows whether memory kept after the first is
# reused or keeps growing. Prints rtload's lines and the server's log. Loopback only.
# SERVER_CMD, if set, is the whole command that starts the server on 127.0.0.1:18120 instead
# (a peer, say: SERVER_CMD="target/release/peer-axum 127.0.0.1:18120"; SERVER_ARGS is then unused).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=$1
shift
server=${SERVER:-$here/../target/release/wire-academy}
rtload=${RTLOAD:-$here/target/release/rtload}
ulimit -n "$(ulimit -Hn)"
log=$(mktemp /tmp/abuse-server-XXXX.log)
if [[ -n ${SERVER_CMD:-} ]]; then
  # shellcheck disable=SC2086 # a command line
  $SERVER_CMD >"$log" 2>&1 &
else
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
  "$server" serve --addr 127.0.0.1:18120 ${SERVER_ARGS:-} >"$log" 2>&1 &
fi
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/18120) 2>/dev/null && break; sleep 0.1; done
for round in 1 2; do
  timeout 300 "$rtload" abuse --url-base http://127.0.0.1:18120 --pid "$srv" --kind "$kind" --label "round$round" "$@"
done
kill "$srv"
wait "$srv" 2>/dev/null || true
echo "# server log ($log):"
sed 's/^/#   /' "$log"
