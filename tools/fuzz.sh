#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each on a scratch copy of its committed seed
# corpus (fuzz/corpus/<target>, from tools/make_fuzz_corpus.py) with the dictionary fuzz/fuzz.dict, and
# prints executions and coverage per target. A crash stops with its input in fuzz/artifacts/<target>/:
# reproduce with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`.
#
#   tools/fuzz.sh [SECONDS]        (default 20; for hours: tools/fuzz.sh 3600, or cargo fuzz run directly)
#
# FUZZ_SANITIZER (default `none`): `address` adds AddressSanitizer, for long runs; it doubles the build
# time (about 13 minutes on 2 cores) and halves the executions. The product's unsafe calls are malloc_trim
# and the opt-in Winograd transforms' uninitialized outputs (shapes fixed by the model, not the request);
# panics, hangs and out-of-memory are caught without it.
#
# Needs a nightly toolchain (libFuzzer's sanitizer flags) and cargo-fuzz (tools/requirements.txt brings
# a prebuilt one). Without nightly it says so and stops: fuzzing is then not part of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain here (rustup toolchain list); fuzzing skipped"
  exit 0
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is not on PATH (pip install -r tools/requirements.txt)"; exit 1; }
sanitizer=${FUZZ_SANITIZER:-none}
cargo +nightly fuzz build -O -s "$sanitizer" 2>&1 | tail -1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$work/$target" "fuzz/artifacts/$target"
  if ! cargo +nightly fuzz run -O -s "$sanitizer" "$target" "$work/$target" "fuzz/corpus/$target" -- \
      -dict=fuzz/fuzz.dict -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=3072 \
      -timeout=30 -print_final_stats=1 >"$work/$target.log" 2>&1; then
    echo "fuzz: $target FAILED"
    grep -E "ERROR|panicked|SUMMARY|Test unit written" "$work/$target.log" | head -20
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/$target.log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/$target.log" | tail -1 || echo "cov: ?")
  echo "fuzz: $target ok: $runs executions in ${seconds} s, $cov, corpus $(ls "$work/$target" | wc -l) new inputs"
done
