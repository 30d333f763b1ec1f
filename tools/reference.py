#!/usr/bin/env python3
"""Goldens for the embedded model: what the Python pipeline of its manifest (tools/manifest_ref.py: PIL
decode with EXIF transpose, the manifest's resize and normalisation, onnxruntime on one thread, numpy
decode and per-class NMS) gives on a few photos. The Rust parity tests (tests/it/parity.rs) hold tract
to them.

    reference.py goldens MANIFEST OUT_DIR IMAGE...   write the goldens of MANIFEST's model (int8) and its
                                                     fp32 twin (X.int8.onnx -> X.fp32.onnx)
    reference.py check GOLDEN_DIR IMAGE...           regenerate GOLDEN_DIR's goldens (the manifest they
                                                     record) and compare

Goldens, per image NAME:
  NAME.input.png   the model-sized RGB picture the manifest's resize makes (so both sides normalise the
                   same pixels)
  NAME.fp32.f32    the fp32 model's raw outputs on it: little-endian f32, outputs concatenated in model order
and detections.json: the manifest, both model files, the outputs' names and lengths, and the whole
pipeline's detections per image for the fp32 and the int8 model at the manifest's default score threshold
less BELOW_DEFAULT.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_ref  # noqa: E402

ROOT = manifest_ref.ROOT
# The goldens go this far below the manifest's default threshold, so that the comparison also covers
# detections a little weaker than the ones users get. Not further: below it, in crowded clusters (camera.png's
# umbrellas), which overlapping box survives NMS flips with the resize's +-1 rounding (fast_image_resize and
# PIL round differently), so the two sides legitimately keep different boxes.
BELOW_DEFAULT = 0.05


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


def goldens(manifest_path, out_dir, images):
    manifest_path = Path(manifest_path).resolve()
    manifest = manifest_ref.load_manifest(manifest_path)
    int8_path = manifest_path.parent / manifest["file"]
    fp32_path = manifest_ref.fp32_twin(manifest_path)
    fp32, int8 = manifest_ref.session(fp32_path), manifest_ref.session(int8_path)
    threshold = round(manifest.get("defaults", {}).get("score_threshold", 0.35) - BELOW_DEFAULT, 6)
    out_dir.mkdir(parents=True, exist_ok=True)
    dets, outputs = {}, None
    for path in map(Path, images):
        name = path.stem
        img = manifest_ref.load_rgb(path)
        picture, _ = manifest_ref.canvas(img, manifest["input"])
        picture.save(out_dir / f"{name}.input.png")
        names, outs = manifest_ref.run(fp32, manifest, manifest_ref.normalise(picture, manifest["input"]))
        outputs = [{"name": n, "len": int(o.size)} for n, o in zip(names, outs)]
        np.concatenate([o.ravel() for o in outs]).astype("<f4").tofile(out_dir / f"{name}.fp32.f32")
        dets[name] = {"file": path.name,
                      "fp32": manifest_ref.detect(fp32, manifest, img, threshold),
                      "int8": manifest_ref.detect(int8, manifest, img, threshold)}
        print(name, [(d["label"], round(d["score"], 3)) for d in dets[name]["fp32"][:3]])
    (out_dir / "detections.json").write_text(json.dumps({
        "manifest": rel(manifest_path), "fp32_model": rel(fp32_path), "int8_model": rel(int8_path),
        "outputs": outputs, "score_threshold": threshold, "images": dets}, indent=1) + "\n")


def check(golden_dir, images):
    """The committed goldens are what this script and onnxruntime produce today."""
    old = json.loads((golden_dir / "detections.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        goldens(ROOT / old["manifest"], fresh, images)
        new = json.loads((fresh / "detections.json").read_text())
        if new["outputs"] != old["outputs"]:
            raise SystemExit(f"outputs {new['outputs']} differ from the goldens' {old['outputs']}")
        worst = 0.0
        for path in map(Path, images):
            name = path.stem
            a = np.asarray(Image.open(golden_dir / f"{name}.input.png"))
            b = np.asarray(Image.open(fresh / f"{name}.input.png"))
            if not np.array_equal(a, b):
                raise SystemExit(f"{name}: the model's input picture differs from the golden")
            a = np.fromfile(golden_dir / f"{name}.fp32.f32", dtype="<f4")
            b = np.fromfile(fresh / f"{name}.fp32.f32", dtype="<f4")
            worst = max(worst, float(np.abs(a - b).max()))
        if worst > 1e-4:
            raise SystemExit(f"raw outputs differ from the goldens by {worst}")
        for name, sides in old["images"].items():
            for side in ("fp32", "int8"):
                a, b = sides[side], new["images"][name][side]
                if [d["label"] for d in a] != [d["label"] for d in b] or any(
                        abs(x["score"] - y["score"]) > 1e-4 for x, y in zip(a, b)):
                    raise SystemExit(f"{name} {side}: detections differ from the goldens")
        print(f"reference check: {old['manifest']} goldens reproduced (raw max abs diff {worst:.1e})")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "goldens":
        goldens(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(Path(sys.argv[2]), sys.argv[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
