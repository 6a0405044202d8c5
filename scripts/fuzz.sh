#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, cargo-fuzz and libFuzzer) for a set number of executions
# each, and reports executions, time, crashes and leaks per target (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh TARGET[,TARGET...]|all [RUNS]   # RUNS defaults to 10000000
#
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked). Builds
# with LeakSanitizer (leaks are reported) and debug assertions (overflow checks). New inputs the fuzzer finds go to fuzz/scratch/TARGET (not in git); the kept
# corpus fuzz/corpus/TARGET is only read. A crash leaves its input in
# fuzz/artifacts/TARGET and makes this script fail. Every line of the report is also
# appended to fuzz/scratch/report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET[,TARGET...]|all [RUNS]}
runs=${2:-10000000}
# Inputs up to 1 KiB: every limit of the checks is reachable within that (their limits
# scale with a parameter byte of the input, wire_academy::fuzzing).
max_len=${FUZZ_MAX_LEN:-1024}
# LeakSanitizer (leaks are reported) without AddressSanitizer's instrumentation, which
# made the runs several times slower; FUZZ_SANITIZER=address for the full ASan.
sanitizer=${FUZZ_SANITIZER:-leak}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: MISSING: a nightly toolchain (rustup toolchain install nightly --profile minimal)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: MISSING: cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  exit 1
fi

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^wire-academy-fuzz$')
if [ "$target" = all ]; then targets=$all; else targets=${target//,/ }; fi
for t in $targets; do
  grep -qx "$t" <<<"$all" || { echo "scripts/fuzz.sh: no target $t (one of: $(echo $all))" >&2; exit 1; }
done

# One build for every target; under the shared lock when there is one (docs/fuzzing.md).
build=(cargo +nightly fuzz build -s "$sanitizer" -a)
if [ -e /tmp/wa-cargo.lock ] && command -v flock >/dev/null; then build=(flock /tmp/wa-cargo.lock "${build[@]}"); fi
"${build[@]}"
# The binaries this run uses, copied: a rebuild meanwhile does not change a long run.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for t in $targets; do cp "fuzz/target/$triple/release/$t" "$bin/"; done

mkdir -p fuzz/scratch
failed=0
for t in $targets; do
  mkdir -p "fuzz/scratch/$t" "fuzz/artifacts/$t"
  log="fuzz/scratch/$t.log"
  start=$(date +%s.%N)
  set +e
  "$bin/$t" "fuzz/scratch/$t" "fuzz/corpus/$t" \
    -runs="$runs" -max_len="$max_len" -print_final_stats=1 -detect_leaks=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  status=$?
  set -e
  secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  # libFuzzer stops at the first failing input and writes it out: crash-, timeout-,
  # oom- or leak- followed by its hash.
  crashes=$(grep -cE 'Test unit written to .*/(crash|timeout|oom)-' "$log" || true)
  leaks=$(grep -cE 'Test unit written to .*/leak-' "$log" || true)
  line="$t: ${execs:-?} execs in $secs s, ${cov:-cov ?}, peak RSS ${rss:-?} MB, crashes $crashes, leaks $leaks, exit $status ($(date -u +%FT%TZ), runs=$runs max_len=$max_len sanitizer=$sanitizer)"
  echo "$line" | tee -a fuzz/scratch/report.txt
  if [ "$status" != 0 ] || [ "$crashes" != 0 ] || [ "$leaks" != 0 ]; then
    failed=1
    grep -E -A12 'panicked at|ERROR: |deadly signal' "$log" | head -40 >&2 || true
    ls "fuzz/artifacts/$t" >&2
  fi
done
exit $failed
