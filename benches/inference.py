#!/usr/bin/env python3
"""Inference alone, one thread, the same ONNX file: tract (the `detect` CLI's own `timings_ms.inference`)
against onnxruntime, both through the project's onnxruntime backend and through Python's
`InferenceSession.run` on the tensor tools/manifest_ref.py makes. Runs interleaved; prints medians and
the ratios tract / onnxruntime.

    cargo build --release --bins --all-features
    .venv/bin/python benches/inference.py [--runs 5] [--images 11] [--model FILE --manifest TOML] [PHOTO]

The model defaults to the embedded manifest's fp32 twin (`X.int8.onnx` -> `X.fp32.onnx`): the graph both
runtimes read unchanged (tract folds the int8 file's weights to the same float kernels). Each run is one
process per runtime answering the same photo `--images` times; the first answer of each run (which also
pays for first-touch memory) is left out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import manifest_ref  # noqa: E402


def ort_library():
    import onnxruntime
    capi = Path(onnxruntime.__file__).parent / "capi"
    return str(sorted(capi.glob("libonnxruntime.so*"))[0])


def detect_inference_ms(binary, backend, model, manifest, photo, images):
    env = dict(os.environ, MODEL_PATH=str(model), MODEL_MANIFEST=str(manifest), DETECTOR_BACKEND=backend,
               DETECTOR_THREADS="1", ORT_DYLIB_PATH=os.environ.get("ORT_DYLIB_PATH") or ort_library())
    out = subprocess.run([binary, "--jobs", "1", *[str(photo)] * images], env=env, capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(line)["timings_ms"]["inference"] for line in out.splitlines()][1:]


def python_inference_ms(sess, manifest, photo, images):
    x, _ = manifest_ref.preprocess(manifest_ref.load_rgb(photo), manifest["input"])
    name = manifest["input"].get("name") or sess.get_inputs()[0].name
    times = []
    for _ in range(images):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return times[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", type=int, default=11)
    ap.add_argument("--detect", default=str(ROOT / "target/release/detect"))
    ap.add_argument("--model")
    ap.add_argument("--manifest")
    ap.add_argument("photo", nargs="?", default=str(ROOT / "tests/images/coffee.jpg"))
    args = ap.parse_args()
    manifest_path = Path(args.manifest) if args.manifest else manifest_ref.embedded_manifest()
    model = Path(args.model) if args.model else manifest_ref.fp32_twin(manifest_path)
    manifest = manifest_ref.load_manifest(manifest_path)
    sess = manifest_ref.session(model)
    runs = {"tract": [], "onnxruntime (project)": [], "onnxruntime (Python)": []}
    for _ in range(args.runs):
        for backend in ("tract", "onnxruntime"):
            key = "tract" if backend == "tract" else "onnxruntime (project)"
            runs[key] += detect_inference_ms(args.detect, backend, model, manifest_path, args.photo,
                                             args.images)
        runs["onnxruntime (Python)"] += python_inference_ms(sess, manifest, args.photo, args.images)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"model {model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}, photo "
          f"{Path(args.photo).name}, one thread; {args.runs} runs x {args.images - 1} inferences each, "
          f"interleaved; medians (min-max)")
    for k, v in runs.items():
        print(f"  {k:<24} {med[k]:7.1f} ms ({min(v):.1f}-{max(v):.1f})")
    for k in ("onnxruntime (project)", "onnxruntime (Python)"):
        print(f"  tract / {k:<24} {med['tract'] / med[k]:.2f}")


if __name__ == "__main__":
    main()
