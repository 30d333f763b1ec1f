#!/usr/bin/env bash
# Lists every crate linked into the shipped binaries (default features, the Lambda targets, no build-time
# crates) with its licence expression, in LICENSES-THIRD-PARTY.md. `cargo deny check licenses` (deny.toml)
# holds each one to the permissive licences the project allows; this file is the list a user can read.
#
#   tools/licenses.sh            rewrite the list
#   tools/licenses.sh --check    fail when Cargo.lock has changed and the list has not (the test command)
set -euo pipefail
cd "$(dirname "$0")/.."
out=LICENSES-THIRD-PARTY.md
render() {
  echo "# Third-party crates in the shipped binaries"
  echo
  echo "Every crate linked into \`object-detector\` and \`detect\` as built for Lambda (default features,"
  echo "x86_64 and arm64 Linux; build-time crates and procedural macros left out), with the licence"
  echo "expression it declares. Where it offers a choice, the project uses it under a permissive licence"
  echo "\`deny.toml\` allows. The optional \`onnxruntime\` feature adds \`ort\` and \`prost\` (MIT/Apache-2.0)"
  echo "and loads ONNX Runtime (MIT) at run time. Written by \`tools/licenses.sh\`."
  echo
  echo "| crate | version | licence |"
  echo "| --- | --- | --- |"
  for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
    cargo tree --locked --offline -e normal,no-proc-macro --prefix none --format '{p}|{l}' --target "$target" \
      --workspace
  done | sed 's/ (\*)$//' | grep -v '^object-detector ' | sort -u |
    awk -F'|' '{ split($1, p, " v"); printf "| %s | %s | %s |\n", p[1], p[2], $2 }'
}
if [ "${1:-}" = --check ]; then
  if ! diff -u "$out" <(render) >/dev/null; then
    diff -u "$out" <(render) | head -20
    echo "licenses: $out is not what tools/licenses.sh writes for Cargo.lock; run tools/licenses.sh" >&2
    exit 1
  fi
  echo "licenses: $out lists the $(grep -c '^| [a-z]' "$out") crates of the shipped binaries"
else
  render > "$out"
  echo "licenses: wrote $out"
fi
