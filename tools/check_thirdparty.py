#!/usr/bin/env python3
"""Bring-your-own-model check on real third-party exports (PP-PicoDet-S and YOLOX-nano, NanoDet-g's fp32
reference export) and on NanoDet-g int8 (model/nanodet-g-416.*, the build-time alternative to the embedded
model), as CI runs it.

    check_thirdparty.py DETECT_BINARY [MODELS_DIR]

MODELS_DIR (default ../shared/models-thirdparty; NanoDet-g's reference in its sibling reference/) holds exports
that are never committed; when it is absent the check says so and checks only the committed model. For each
model it runs the `detect` binary with MODEL_PATH/MODEL_MANIFEST
(model/manifests/*.toml) on the skimage photos in tests/images and requires:
  - the objects each photo shows (person, cat, cup) found, with scores within 0.05 of those the export's
    own pipeline gives (the models' README);
  - agreement with the numpy + onnxruntime reference of the same manifest (tools/manifest_ref.py): the same
    labels, each box at IoU >= 0.9 with its reference, scores within 0.03.
It prints plan build time, median inference time per image, and the agreement figures.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_ref  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# (model file, manifest, {photo: (label, score the upstream pipeline gives)}, folder: None for MODELS_DIR,
# "reference" for its sibling reference/)
PICODET_UPSTREAM = {"astronaut.png": ("person", 0.95), "chelsea.png": ("cat", 0.97),
                    "coffee.png": ("cup", 0.84), "camera.png": ("person", 0.96)}
# NanoDet-g's own pipeline (../shared/model/NANODET.md, fp32, threshold 0.3).
NANODET_UPSTREAM = {"astronaut.png": ("person", 0.737), "chelsea.png": ("cat", 0.574),
                    "camera.png": ("person", 0.877)}
MODELS = [
    ("picodet_s_416_coco.onnx", "model/manifests/picodet_s_416_coco.toml", PICODET_UPSTREAM, None),
    ("yolox_nano.onnx", "model/manifests/yolox_nano.toml",
     {"astronaut.png": ("person", 0.93), "chelsea.png": ("cat", 0.62), "coffee.png": ("cup", 0.90)}, None),
    # NanoDet-g's fp32 reference export (../shared/reference), with the project's NanoDet-g manifest.
    ("nanodet-g-416.fp32.onnx", "model/nanodet-g-416.toml", NANODET_UPSTREAM, "reference"),
    # NanoDet-g int8, the embedded model before PicoDet-S and a build-time alternative: committed, so
    # always checked.
    ("nanodet-g-416.int8.onnx", "model/nanodet-g-416.toml", NANODET_UPSTREAM, ROOT / "model"),
]


def box(d):
    b = d["box"]
    return [b["x_min"], b["y_min"], b["x_max"], b["y_max"]]


def run_detect(binary, model, manifest, photos, threshold):
    env = dict(os.environ, MODEL_PATH=str(model), MODEL_MANIFEST=str(manifest))
    proc = subprocess.run([binary, "-v", "--score-threshold", str(threshold), *map(str, photos)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"detect failed ({proc.returncode}): {proc.stderr}")
    ready = [line for line in proc.stderr.splitlines() if "ready in" in line]
    return [json.loads(line) for line in proc.stdout.splitlines()], (ready[0] if ready else "")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    binary = argv[0]
    models_dir = Path(argv[1] if len(argv) > 1 else ROOT.parent / "shared" / "models-thirdparty")
    if not models_dir.is_dir():
        print(f"third-party models: {models_dir} is absent; only the committed derivations are checked")
    failures = []
    for file, manifest_path, expect, folder in MODELS:
        base = models_dir.parent / "reference" if folder == "reference" else folder or models_dir
        model = base / file
        if not model.is_file():
            print(f"{file}: not in {base}; skipped")
            continue
        manifest = manifest_ref.load_manifest(ROOT / manifest_path)
        # The reference runs at the manifest's threshold; the binary at the same one.
        threshold = manifest.get("defaults", {}).get("score_threshold", 0.35)
        photos = [ROOT / "tests/images" / p for p in sorted(expect)]
        results, ready = run_detect(binary, model, ROOT / manifest_path, photos, threshold)
        sess = manifest_ref.session(model)
        worst_iou, worst_score, times = 1.0, 0.0, []
        for photo, result in zip(photos, results):
            got = result["detections"]
            times.append(result["timings_ms"]["inference"])
            ref = manifest_ref.detect(sess, manifest, manifest_ref.load_rgb(photo))
            label, score = expect[photo.name]
            best = max((d["score"] for d in got if d["label"] == label), default=None)
            line = f"  {photo.name}: " + ", ".join(f"{d['label']} {d['score']:.3f}" for d in got[:4])
            print(line)
            if best is None or abs(best - score) > 0.05:
                failures.append(f"{file} {photo.name}: {label} {best} (upstream {score})")
            if sorted(d["label"] for d in got) != sorted(d["label"] for d in ref):
                failures.append(f"{file} {photo.name}: labels {[d['label'] for d in got]} "
                                f"vs reference {[d['label'] for d in ref]}")
                continue
            for r in ref:
                match = max((d for d in got if d["label"] == r["label"]),
                            key=lambda d: manifest_ref.iou(box(d), box(r)))
                worst_iou = min(worst_iou, manifest_ref.iou(box(match), box(r)))
                worst_score = max(worst_score, abs(match["score"] - r["score"]))
        print(f"{file}: {ready.strip()}; inference median {statistics.median(times):.1f} ms per image; "
              f"vs numpy+onnxruntime reference: min IoU {worst_iou:.3f}, max score diff {worst_score:.4f}")
        if worst_iou < 0.9 or worst_score > 0.03:
            failures.append(f"{file}: agreement with the reference too low")
    for f in failures:
        print("FAIL " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
