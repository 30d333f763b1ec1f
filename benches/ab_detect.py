#!/usr/bin/env python3
"""Two `detect` builds against each other, runs alternating: time per image (one worker, the same photo
N times; process start and model load spread over the N), the cold run of one photo (process start to
exit, wall time), the model's load time and that run's first inference (`detect -v`), medians and the
ratio B / A from the same run.
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


def cold_run(binary, photo):
    """Wall time of a process that loads the model and answers one photo, its model load and its
    (first) inference, in ms."""
    start = time.perf_counter()
    done = subprocess.run([binary, "-v", "--jobs", "1", photo], capture_output=True, text=True, check=True)
    wall = (time.perf_counter() - start) * 1e3
    load = float(re.search(r"ready in ([0-9.]+) ms", done.stderr).group(1))
    inference = float(re.search(r'"inference":([0-9.]+)', done.stdout).group(1))
    return wall, load, inference


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
        cold = {"a": [], "b": []}
        load = {"a": [], "b": []}
        first = {"a": [], "b": []}
        for _ in range(args.runs):
            for key in ("a", "b"):
                binary = getattr(args, key)
                warm[key].append(per_image_ms(binary, photos))
                # Three cold runs for each warm one: they are short and noisier.
                for _ in range(3):
                    wall, model, inference = cold_run(binary, args.photo)
                    cold[key].append(wall)
                    load[key].append(model)
                    first[key].append(inference)
    for name, figures in (("warm per image", warm), ("cold, one photo", cold), ("model load", load),
                          ("first inference", first)):
        a, b = statistics.median(figures["a"]), statistics.median(figures["b"])
        runs = lambda key: " ".join(f"{v:.1f}" for v in figures[key])
        print(f"{name}: A {a:.1f} ms [{runs('a')}]  B {b:.1f} ms [{runs('b')}]  B/A {b / a:.3f}")


if __name__ == "__main__":
    main()
