#!/usr/bin/env python3
"""Holds `detect eval` to pycocotools, the COCO reference scorer, on real labelled photos, as CI runs it.

    check_coco_eval.py DETECT_BINARY [EVAL_DIR] [--min-map X]

EVAL_DIR (default ../shared/eval/coco-val2017-500) holds COCO val2017 images and their instances.json; it is
never committed, and when it is absent the check says so and passes. The check runs
`detect eval --json --results R` on it, scores the same detections (R) with pycocotools' COCOeval, and
requires every one of the twelve figures and every category's AP to agree within 0.001. With --min-map it
also requires the model's mAP@[.5:.95] to reach X, through `detect eval --min-map` itself (exit 1 below it).
It prints both sets of figures and the largest difference.

Then it holds `detect --format coco` (the export users score their own data with) to the same figures: the
eval's settings (score threshold 0.001, 100 detections), run on the first half of the images, then resumed
on all of them (`--resume`), and the COCO array it writes scored by pycocotools: its twelve figures must be
detect eval's within 0.001.
"""
import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval" / "coco-val2017-500"
# detect eval's JSON keys, in pycocotools' stats order.
STATS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
         "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
TOLERANCE = 1e-3


def pycocotools_figures(annotations, results):
    """The twelve stats and each category's AP (mean of precision > -1, as COCOeval's summary takes it)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        dt = gt.loadRes(str(results))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        per_class[cat] = float(np.mean(p[p > -1])) if (p > -1).any() else None
    return [float(s) for s in ev.stats], per_class


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("detect")
    parser.add_argument("eval_dir", nargs="?", default=str(DEFAULT_EVAL_DIR))
    parser.add_argument("--min-map", type=float)
    args = parser.parse_args()
    eval_dir = Path(args.eval_dir)
    annotations = eval_dir / "instances.json"
    if not annotations.exists():
        print(f"check_coco_eval: {eval_dir} is absent: nothing to check here (CI has it)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        command = [args.detect, "eval", "--json", "--annotations", str(annotations),
                   "--results", str(results)]
        if args.min_map is not None:
            command += ["--min-map", str(args.min_map)]
        proc = subprocess.run(command + [str(eval_dir / "images")], capture_output=True, text=True)
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            sys.exit(f"detect eval failed ({proc.returncode}): {proc.stderr}")
        ours = json.loads(proc.stdout)
        stats, per_class = pycocotools_figures(annotations, results)

    print(f"{ours['model']['name']} {ours['model']['version']}: {ours['images']} images, "
          f"{ours['detections']} detections, {ours['seconds']:.1f} s")
    print(f"{'figure':<12} {'detect eval':>12} {'pycocotools':>12}")
    worst = 0.0
    for name, theirs in zip(STATS, stats):
        mine = ours[name] if ours[name] is not None else -1.0
        worst = max(worst, abs(mine - theirs))
        print(f"{name:<12} {mine:>12.6f} {theirs:>12.6f}")
    for line in ours["per_class"]:
        theirs = per_class[line["category_id"]]
        if (line["ap"] is None) != (theirs is None):
            sys.exit(f"category {line['category_id']}: detect eval {line['ap']}, pycocotools {theirs}")
        if theirs is not None:
            worst = max(worst, abs(line["ap"] - theirs))
    print(f"largest difference over the 12 figures and {len(per_class)} categories' AP: {worst:.2e}")
    if worst > TOLERANCE:
        sys.exit(f"check_coco_eval: detect eval differs from pycocotools by {worst:.2e} > {TOLERANCE}")
    if ours["failed"]:
        sys.exit(f"check_coco_eval: {ours['failed']} images failed: {proc.stderr}")
    if proc.returncode == 1:
        sys.exit(f"check_coco_eval: {proc.stderr.strip()}")
    check_coco_export(args.detect, eval_dir, annotations, ours)
    return 0


def check_coco_export(detect, eval_dir, annotations, ours):
    """`detect --format coco`, interrupted halfway and resumed, scores as detect eval does."""
    images = sorted((eval_dir / "images").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "coco.json"
        base = [detect, "--format", "coco", "--annotations", str(annotations), "--score-threshold", "0.001",
                "--max-detections", "100", "--output", str(exported)]
        for run, inputs in (("first half", [str(p) for p in images[: len(images) // 2]]),
                            ("resumed", ["--resume", str(eval_dir / "images")])):
            proc = subprocess.run(base + inputs, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"detect --format coco ({run}) failed ({proc.returncode}): {proc.stderr}")
        lines = (Path(str(exported) + ".jsonl")).read_text().splitlines()
        if len(lines) != len(images):
            sys.exit(f"check_coco_eval: the resumed export ran {len(lines)} images, not {len(images)} once each")
        stats, _ = pycocotools_figures(annotations, exported)
    worst = max(abs((ours[name] if ours[name] is not None else -1.0) - theirs) for name, theirs in zip(STATS, stats))
    print(f"detect --format coco (half, then --resume): pycocotools mAP {stats[0]:.6f}, "
          f"detect eval {ours['map']:.6f}; largest difference over the 12 figures {worst:.2e}")
    if worst > TOLERANCE:
        sys.exit(f"check_coco_eval: the COCO export scores {worst:.2e} away from detect eval")


if __name__ == "__main__":
    sys.exit(main())
