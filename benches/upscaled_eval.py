"""Accuracy on camera-sized photos: COCO mAP of one or more `detect` binaries on the shared COCO photos
upscaled to phone-camera size, where a JPEG decodes at a reduced DCT scale (src/core/image_decode/).

    .venv/bin/python benches/upscaled_eval.py DETECT [DETECT...] [--images N] [--factor F] [EVAL_DIR]

Each of the first N images of EVAL_DIR (default ../shared/eval/coco-val2017-500) is upscaled F times
(default 6.5: a 640x480 photo becomes 4160x3120, a 13 MP phone camera's size) with PIL's bicubic filter and saved as a JPEG of
quality 92 (4:2:0, as cameras write them); its boxes and areas are scaled with it. Every binary runs
`detect eval --json` on the same files; one line per binary: mAP, AP50, AP small / medium / large (the
area ranges are COCO's own, in the upscaled pixels, so most objects count as large here).

Without EVAL_DIR present the script says so and exits 0: the photos are never committed.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval" / "coco-val2017-500"


def upscaled_set(eval_dir: Path, out: Path, count: int, factor: float) -> Path:
    """Writes the upscaled photos into `out/images` and their annotations; returns the annotation file."""
    coco = json.loads((eval_dir / "instances.json").read_text())
    images = sorted(coco["images"], key=lambda i: i["id"])[:count]
    keep = {i["id"] for i in images}
    (out / "images").mkdir()
    for info in images:
        with Image.open(eval_dir / "images" / info["file_name"]) as photo:
            photo = photo.convert("RGB")
            size = (round(photo.width * factor), round(photo.height * factor))
            photo.resize(size, Image.BICUBIC).save(out / "images" / info["file_name"], quality=92)
        info["width"], info["height"] = size
    annotations = []
    for a in coco["annotations"]:
        if a["image_id"] in keep:
            a["bbox"] = [v * factor for v in a["bbox"]]
            a["area"] = a["area"] * factor * factor
            # Polygons are not read by the box evaluation; drop them rather than scale them.
            a.pop("segmentation", None)
            annotations.append(a)
    coco["images"], coco["annotations"] = images, annotations
    path = out / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("detect", nargs="+", help="detect binaries (and, last, an optional EVAL_DIR)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--factor", type=float, default=6.5)
    args = parser.parse_args()
    binaries = [Path(b) for b in args.detect]
    eval_dir = DEFAULT_EVAL_DIR
    if binaries and binaries[-1].is_dir():
        eval_dir = binaries.pop()
    if not (eval_dir / "instances.json").exists():
        print(f"no COCO photos at {eval_dir}: nothing measured")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        annotations = upscaled_set(eval_dir, Path(tmp), args.images, args.factor)
        print(f"{args.images} photos of {eval_dir.name} upscaled {args.factor}x, JPEG quality 92")
        print(f"{'binary':<40} {'mAP':>8} {'AP50':>8} {'small':>8} {'medium':>8} {'large':>8}")
        for binary in binaries:
            run = subprocess.run(
                [str(binary), "eval", "--json", "--annotations", str(annotations), str(Path(tmp) / "images")],
                capture_output=True, text=True, check=True)
            r = json.loads(run.stdout)
            print(f"{str(binary):<40} {r['map']:>8.4f} {r['map_50']:>8.4f} {r['map_small']:>8.4f} "
                  f"{r['map_medium']:>8.4f} {r['map_large']:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
