#!/usr/bin/env python3
"""`detect --jobs N` on a folder of 200 photos: images per second and peak memory for 1, 2 and N (the
machine's cores) workers, one run each in turn, repeated; ratios against one worker from the same run.

    cargo build --release --bin detect
    .venv/bin/python benches/cli_jobs.py [--runs 3] [--jobs 1,2,4]

The folder is made from the committed test photos (tests/images): each at its own size and scaled to
1280 and 2400 px on the longer side, as JPEG and PNG, copied round-robin to 200 files.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent


def make_folder(folder, count=200):
    sources = sorted(p for p in (ROOT / "tests/images").iterdir() if p.suffix in (".png", ".jpg"))
    variants = []
    for src in sources:
        img = Image.open(src).convert("RGB")
        for side in (None, 1280, 2400):
            v = img if side is None else img.resize(
                (side, round(img.height * side / img.width)) if img.width >= img.height
                else (round(img.width * side / img.height), side),
                Image.LANCZOS,
            )
            variants.append(v)
    for i in range(count):
        v = variants[i % len(variants)]
        if i % 3 == 2:
            v.save(folder / f"photo-{i:03}.png")
        else:
            v.save(folder / f"photo-{i:03}.jpg", quality=90)


def run(binary, folder, jobs):
    """Wall seconds and peak RSS (MiB) of one `detect --jobs N` over the folder."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "--jobs", str(jobs), "--output", os.devnull, str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"detect --jobs {jobs} failed: {proc.stderr.read().decode()[:500]}")
    return seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", default=f"1,2,{os.cpu_count()}")
    parser.add_argument("--binary", default=str(ROOT / "target/release/detect"))
    parser.add_argument("--make", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_folder(pathlib.Path(args.make))
        return
    jobs = sorted({int(j) for j in args.jobs.split(",")})
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        # In a child process: a forked child's peak RSS counts the parent's pages until it execs, so this
        # process stays small and holds no decoded photos.
        subprocess.run([sys.executable, __file__, "--make", str(folder)], check=True)
        count = len(list(folder.iterdir()))
        results = {j: [] for j in jobs}
        for _ in range(args.runs):
            for j in jobs:
                results[j].append(run(args.binary, folder, j))
    print(f"{count} photos, {os.cpu_count()} cores, median of {args.runs} runs each (interleaved)")
    print(f"{'jobs':>4} {'images/s':>9} {'vs 1 job':>9} {'peak RSS':>10}")
    base = None
    for j in jobs:
        seconds = statistics.median(s for s, _ in results[j])
        rss = max(r for _, r in results[j])
        rate = count / seconds
        base = base or rate
        print(f"{j:>4} {rate:>9.2f} {rate / base:>8.2f}x {rss:>7.1f} MiB")


if __name__ == "__main__":
    main()
