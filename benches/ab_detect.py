#!/usr/bin/env python3
"""Two `detect` builds against each other, runs alternating: time per image (one worker, the same photo
N times; process start and model load spread over the N) and the model's load time (`detect -v`),
medians and the ratio B / A from the same run.
For a build setting (an opt-level, a feature) whose cost is a few percent, below what separate runs on
a noisy machine can show.

    cargo build --release --bin detect && cp target/release/detect /tmp/detect-a
    (change the setting) cargo build --release --bin detect && cp target/release/detect /tmp/detect-b
    .venv/bin/python benches/ab_detect.py /tmp/detect-a /tmp/detect-b [--runs 6] [--images 31]
"""
import argparse
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def per_image_ms(binary, photos):
    start = time.perf_counter()
    subprocess.run([binary, "--jobs", "1", *photos], stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1e3 / len(photos)


def load_ms(binary, photo):
    err = subprocess.run([binary, "-v", "--jobs", "1", photo], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=True).stderr
    return float(re.search(r"ready in ([0-9.]+) ms", err).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--images", type=int, default=31)
    parser.add_argument("--photo", default=str(ROOT / "tests/images/coffee.jpg"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        photos = []
        for i in range(args.images):
            photos.append(str(pathlib.Path(folder) / f"{i}.jpg"))
            shutil.copy(args.photo, photos[-1])
        warm = {"a": [], "b": []}
        load = {"a": [], "b": []}
        for _ in range(args.runs):
            for key in ("a", "b"):
                binary = getattr(args, key)
                warm[key].append(per_image_ms(binary, photos))
                load[key].append(load_ms(binary, args.photo))
    for name, figures in (("warm per image", warm), ("model load", load)):
        a, b = statistics.median(figures["a"]), statistics.median(figures["b"])
        runs = lambda key: " ".join(f"{v:.1f}" for v in figures[key])
        print(f"{name}: A {a:.1f} ms [{runs('a')}]  B {b:.1f} ms [{runs('b')}]  B/A {b / a:.3f}")


if __name__ == "__main__":
    main()
