#!/usr/bin/env bash
# Measures the server's memory per idle WebSocket connection, with and without
# permessage-deflate (docs/performance.md): one release server per case, 1000 Python
# `websockets` clients (from target/tools, see scripts/test.sh) that each send one
# message, read one, then stay idle; the server's VmRSS before and after.
#
#   bash scripts/deflate-memory.sh [N] [PATH]     # default 1000 /echo
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000}"; WSPATH="${2:-/echo}"
PY=target/tools/bin/python
cargo build --release --quiet
CLIENT="$(mktemp)"; trap 'rm -f "$CLIENT"' EXIT
cat >"$CLIENT" <<'PY'
import asyncio, sys
from websockets.asyncio.client import connect
async def one(url, compression, conns):
    ws = await connect(url, compression=compression, max_size=2**20, ping_interval=None)
    await ws.send("hello " * 20)
    await ws.recv()
    conns.append(ws)
async def main():
    url, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    conns = []
    for i in range(0, n, 50):
        await asyncio.gather(*(one(url, "deflate" if mode == "deflate" else None, conns) for _ in range(min(50, n - i))))
    print("open", len(conns), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
PY
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for mode in plain deflate; do
  LOG="$(mktemp)"; CL="$(mktemp)"
  target/release/wire-academy serve --addr 127.0.0.1:0 --ping-interval 0 >"$LOG" 2>&1 & SP=$!
  for _ in $(seq 100); do grep -q listening "$LOG" && break; sleep 0.1; done
  ADDR="$(sed -n 's|^wire-academy listening on http://||p' "$LOG")"
  before="$(rss $SP)"
  "$PY" "$CLIENT" "ws://$ADDR$WSPATH" "$N" "$mode" >"$CL" 2>&1 & CP=$!
  for _ in $(seq 1200); do grep -q open "$CL" && break; sleep 0.1; done
  grep -q open "$CL" || { echo "clients did not connect: $(cat "$CL")" >&2; kill $CP $SP; exit 2; }
  after="$(rss $SP)"
  echo "$mode $WSPATH: server RSS $before KiB idle, $after KiB with $N idle connections: $(( (after - before) * 1024 / N / 1024 )) KiB each"
  kill $CP $SP; wait $CP $SP 2>/dev/null || true
  rm -f "$LOG" "$CL"
done
