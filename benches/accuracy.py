#!/usr/bin/env python3
"""Accuracy against speed for every model the repository knows: COCO mAP on labelled photos and the mean
time per image, from `detect eval` on one thread, one model after another in one run.

    cargo build --release --bin detect
    .venv/bin/python benches/accuracy.py [--eval-dir DIR] [--jobs 1] target/release/detect

The photos: DIR (default ../shared/eval/coco-val2017-500: COCO val2017 images with their instances.json,
never committed). The models: the embedded one; every manifest in model/ and model/manifests/ whose ONNX
file is found, beside the manifest or in ../shared/models-thirdparty or ../shared/reference (those files are
never committed; a model whose file is absent is listed as skipped). Each runs with DETECTOR_THREADS=1 and
`--jobs 1`, so its times are one image at a time on one core, as a one-vCPU Lambda function runs them.
"""
import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEARCH = [SHARED / "models-thirdparty", SHARED / "reference"]


def models():
    """(label, env, (name, file)) for the embedded model, then each manifest whose ONNX file is found."""
    yield "embedded", {}, None
    manifests = sorted(ROOT.glob("model/*.toml")) + sorted(ROOT.glob("model/manifests/*.toml"))
    for manifest in manifests:
        with open(manifest, "rb") as f:
            spec = tomllib.load(f)
        names = [spec["file"]] if "file" in spec else []
        # Third-party manifests name no file: their ONNX is the manifest's stem.
        names.append(manifest.stem + ".onnx")
        # The fp32 twin of an int8 file (the reference export, NanoDet-g's in ../shared/reference).
        names += [n.replace(".int8.", ".fp32.") for n in names if ".int8." in n]
        # Each name once: beside the manifest first, then in ../shared.
        found = []
        for name in dict.fromkeys(names):
            hits = [d / name for d in [manifest.parent, *SEARCH] if (d / name).exists()]
            found += hits[:1]
        for onnx in found:
            label = f"{spec['name']} ({onnx.name})"
            env = {"MODEL_PATH": str(onnx), "MODEL_MANIFEST": str(manifest)}
            yield label, env, (spec["name"], onnx.name if onnx.name == spec.get("file") else None)
        if not found:
            yield f"{spec['name']}: skipped, no {' or '.join(sorted(set(names)))} here", None, None


def embedded_file(name):
    """The ONNX file of the manifest in model/ named `name`: what the build embedded."""
    for manifest in sorted(ROOT.glob("model/*.toml")):
        with open(manifest, "rb") as f:
            spec = tomllib.load(f)
        if spec["name"] == name:
            return spec.get("file")
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("detect")
    parser.add_argument("--eval-dir", default=str(SHARED / "eval" / "coco-val2017-500"))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    eval_dir = Path(args.eval_dir)
    if not (eval_dir / "instances.json").exists():
        sys.exit(f"accuracy: {eval_dir} has no instances.json")
    rows = []
    embedded = None
    for label, env, key in models():
        if key is not None and key == embedded and key[1] is not None:
            continue  # the embedded model's own file: the first row already
        if env is None:
            rows.append(f"| {label} | | | | | | |")
            continue
        run_env = {k: v for k, v in os.environ.items() if k not in ("MODEL_PATH", "MODEL_MANIFEST")}
        run_env.update(env, DETECTOR_THREADS="1")
        proc = subprocess.run(
            [args.detect, "eval", "--json", "--jobs", str(args.jobs),
             "--annotations", str(eval_dir / "instances.json"), str(eval_dir / "images")],
            env=run_env, capture_output=True, text=True)
        if not proc.stdout.strip():
            sys.exit(f"accuracy: {label}: detect eval failed ({proc.returncode}): {proc.stderr}")
        r = json.loads(proc.stdout)
        if not env:
            # The embedded model and the manifest file it was built from.
            embedded = (r["model"]["name"], embedded_file(r["model"]["name"]))
        t = r["mean_timings_ms"]
        rows.append(f"| {label} | {r['map']:.3f} | {r['map_50']:.3f} | {r['mar_100']:.3f} | "
                    f"{t['inference']:.1f} | {t['postprocess']:.1f} | {t['total']:.1f} |")
        print(f"accuracy: {label}: mAP {r['map']:.3f} in {r['seconds']:.0f} s", file=sys.stderr)
    print(f"{eval_dir.name}, `detect eval`, DETECTOR_THREADS=1, --jobs {args.jobs}\n")
    print("| model | mAP@[.5:.95] | AP50 | AR@100 | inference ms/image | postprocess ms/image | total ms/image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
