"""A WebSocket client we did not write, Python's `websockets` (with permessage-deflate,
RFC 7692, on by default), against wire-academy: tests/ws.rs runs it.

    python ws_deflate.py ws://127.0.0.1:PORT CHANNEL

Prints one JSON object: the extension each connection negotiated, with its parameters,
and whether every message came back unchanged.
"""
import json
import sys

from websockets.sync.client import connect


def params(ws):
    return [
        {
            "name": e.name,
            "server_no_context_takeover": e.remote_no_context_takeover,
            "client_no_context_takeover": e.local_no_context_takeover,
            "server_max_window_bits": e.remote_max_window_bits,
        }
        for e in ws.protocol.extensions
    ]


base, channel = sys.argv[1], sys.argv[2]
report = {}
# /echo: text and binary, small and large, repeated (context takeover), and empty.
with connect(base + "/echo", max_size=2**20) as ws:
    messages = ["Hello", "Hello", "the same words again " * 5000, "", "é€😀" * 100, b"\x00\x01" * 3000, b""]
    report["echo_extensions"] = params(ws)
    report["echoed"] = True
    for m in messages:
        ws.send(m)
        if ws.recv() != m:
            report["echoed"] = False
# A channel: what we send comes back with its id.
with connect(base + "/ws/" + channel, max_size=2**20) as ws:
    report["channel_extensions"] = params(ws)
    ws.send("hi from python")
    report["channel_message"] = json.loads(ws.recv())
print(json.dumps(report))
