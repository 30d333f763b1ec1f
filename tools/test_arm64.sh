#!/usr/bin/env bash
# The tests that check what differs on aarch64, the default deployment (Graviton), under qemu-aarch64
# user emulation: every library test (among them the Winograd operator against tract's own convolution
# on every 3x3 stride-1 conv shape of the model, on tract's NEON kernels, and the graph rewrites), and
# from the integration tests the raw outputs against onnxruntime's goldens (fp32 model), the int8
# pipeline against onnxruntime on the same file, and the whole model with Winograd against tract's own
# convolutions; and tests/trace_env.rs (the function's own `setenv` for the trace variable, on aarch64's glibc). Correctness only: a time under emulation says nothing about Graviton, and none is
# measured here.
#
#   tools/test_arm64.sh                 # the set above
#   tools/test_arm64.sh parity:: heads::  # other integration tests, by libtest filter
#
# Under emulation one inference of the model takes about a minute on this 2-core machine, so the whole
# integration suite would take hours; the CLI tests cannot run at all (they start the aarch64 `detect`
# binary, which needs binfmt_misc). Not part of CI: the aarch64 test build alone takes about 15 minutes
# on 2 cores. Needs, once:
#   apt-get install qemu-user libc6-arm64-cross libgcc-s1-arm64-cross
#   rustup target add aarch64-unknown-linux-gnu
# and the Python tools in .venv (tools/requirements.txt: cargo-zigbuild links with cargo-lambda's zig).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
missing() { echo "test_arm64: $1" >&2; exit 2; }
command -v qemu-aarch64 > /dev/null || missing "qemu-aarch64 not found (apt-get install qemu-user)"
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] ||
  missing "no aarch64 C library in $sysroot (apt-get install libc6-arm64-cross libgcc-s1-arm64-cross)"
rustup target list --installed | grep -qx "$target" ||
  missing "Rust target $target not installed (rustup target add $target)"
[ -x .venv/bin/cargo-zigbuild ] ||
  missing "no .venv/bin/cargo-zigbuild (python3 -m venv .venv && .venv/bin/pip install -r tools/requirements.txt)"

export PATH="$PWD/.venv/bin:$PATH"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
if [ $# -eq 0 ]; then
  set -- parity::tract_raw_outputs_match_onnxruntime_on_the_fp32_model \
    parity::int8_pipeline_matches_onnxruntime_on_the_same_int8_model \
    backends::tract_with_winograd_convolutions_finds_what_its_own_find
fi
cargo-zigbuild test --locked --target "$target" --lib
cargo-zigbuild test --locked --target "$target" --test trace_env
cargo-zigbuild test --locked --target "$target" --test it -- --skip cli:: "$@"
