#!/usr/bin/env python3
"""Side-by-side benchmark: the `detect` CLI against the pipeline a Python user would write for the embedded
model (PIL decode with EXIF transpose, the manifest's resize with PIL, onnxruntime on one thread with the
model's fp32 twin, the same decode in numpy: tools/manifest_ref.py), on the same photos, in one run, A and B
interleaved. Prints medians and ratios.

    .venv/bin/python benches/compare.py [--runs 5] [--detect target/release/detect] [--backends tract,onnxruntime]

`--backends` runs the project once per variant (DETECTOR_BACKEND, and DETECTOR_THREADS after a colon:
`tract:2`; `tract-winograd` is tract with DETECTOR_WINOGRAD=on; `+annotate` after it also writes each image's annotated JPEG, `detect --annotate`, so
`tract,tract+annotate` shows what drawing and encoding the picture add), all interleaved with the Python runs, which stay on one thread; `onnxruntime` needs a binary
built with `--features onnxruntime` and uses the library of the onnxruntime wheel in this Python
(ORT_DYLIB_PATH), the same build the Python side runs; tract on more than one thread needs
the `multithread` feature (a default one).

Photos are generated into a temp dir from the committed skimage photos: a 550x367 JPEG, a 640x480 PNG and
a phone-sized 4000x2500 JPEG (upscaled, so it decodes like a real camera file).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import manifest_ref  # noqa: E402


def make_photos(out):
    coffee = Image.open(ROOT / "tests/images/coffee.png").convert("RGB")
    chelsea = Image.open(ROOT / "tests/images/chelsea.png").convert("RGB")
    photos = {
        "550x367 JPEG": out / "small.jpg",
        "640x480 PNG": out / "medium.png",
        "4000x2500 JPEG": out / "large.jpg",
    }
    coffee.resize((550, 367), Image.LANCZOS).save(photos["550x367 JPEG"], quality=90)
    coffee.resize((720, 480), Image.LANCZOS).crop((40, 0, 680, 480)).save(photos["640x480 PNG"])
    chelsea.resize((4000, 2660), Image.BICUBIC).crop((0, 80, 4000, 2580)).save(photos["4000x2500 JPEG"], quality=92)
    return photos


def run(cmd, env=None):
    """Wall time (s) and stderr of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, err.decode()


def peak_rss(cmd, env=None):
    """Peak resident set size in MiB of one process: the kernel's high-water mark of the process's own
    address space (VmHWM in /proc/PID/status), sampled every millisecond until it exits.

    Not ru_maxrss from wait4: the kernel folds the parent's high-water mark into a child's ru_maxrss at
    exec (fork/vfork then exec), so a child of this benchmark, which holds decoded 4000x2500 photos,
    would be charged for the benchmark's own memory."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak_kib = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.001)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.returncode}")
    return peak_kib / 1024


def backend_env(variant):
    """Environment for one project variant: `backend` or `backend:threads`; `tract-winograd` is tract
    with Winograd convolutions (DETECTOR_WINOGRAD=on). A `+annotate` suffix is for the command line,
    `variant_args`."""
    backend, _, threads = variant.removesuffix("+annotate").partition(":")
    winograd = "on" if backend.endswith("-winograd") else "off"
    backend = backend.removesuffix("-winograd")
    env = dict(os.environ, DETECTOR_BACKEND=backend, DETECTOR_THREADS=threads or "1",
               DETECTOR_WINOGRAD=winograd)
    if backend == "onnxruntime" and not env.get("ORT_DYLIB_PATH"):
        import onnxruntime

        capi = Path(onnxruntime.__file__).parent / "capi"
        env["ORT_DYLIB_PATH"] = str(sorted(capi.glob("libonnxruntime.so*"))[0])
    return env


def variant_args(variant, out):
    """Extra `detect` arguments for one project variant."""
    return ["--annotate", str(out)] if variant.endswith("+annotate") else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--detect", default=str(ROOT / "target/release/detect"))
    ap.add_argument("--backends", default="tract",
                    help="comma-separated variants: tract, tract-winograd, onnxruntime, optionally with :THREADS (tract:2)")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    envs = {b: backend_env(b) for b in backends}
    manifest = manifest_ref.embedded_manifest()
    python = [sys.executable, str(ROOT / "tools/manifest_ref.py"), str(manifest_ref.fp32_twin(manifest)), str(manifest)]
    print(f"python: {' '.join(python[1:])}")
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp))
        # One image at a time, as a Lambda invocation runs it (`detect` would otherwise run a worker per
        # core on the 11 images of the warm figures).
        cmds = {b: [args.detect, "--jobs", "1"] + variant_args(b, Path(tmp) / "annotated") for b in backends}
        rows = []
        # Cold: one process, one small photo, start to exit (the detections are printed before exit).
        small = str(photos["550x367 JPEG"])
        a, b = {k: [] for k in backends}, []
        for _ in range(args.runs):
            for k in backends:
                a[k].append(run(cmds[k] + [small], envs[k])[0] * 1e3)
            b.append(run(python + [small])[0] * 1e3)
        rows.append(("cold start, 550x367 JPEG (process wall time)", a, b, "ms"))
        for label, path in photos.items():
            one, eleven = [str(path)], [str(path)] * 11
            a, b = {k: [] for k in backends}, []
            for _ in range(args.runs):
                for k in backends:
                    r1, r11 = run(cmds[k] + one, envs[k])[0], run(cmds[k] + eleven, envs[k])[0]
                    a[k].append((r11 - r1) / 10 * 1e3)
                p1, p11 = run(python + one)[0], run(python + eleven)[0]
                b.append((p11 - p1) / 10 * 1e3)
            rows.append((f"warm per image, {label} ((11 - 1 images) / 10)", a, b, "ms"))
        large = str(photos["4000x2500 JPEG"])
        a = {k: [peak_rss(cmds[k] + [large], envs[k]) for _ in range(3)] for k in backends}
        b = [peak_rss(python + [large]) for _ in range(3)]
        rows.append(("peak RSS, 4000x2500 JPEG", a, b, "MiB"))
        builds = {k: [] for k in backends}
        for _ in range(args.runs):
            for k in backends:
                err = run(cmds[k] + ["-v", small], envs[k])[1]
                builds[k].append(float(re.search(r"ready in ([0-9.]+) ms", err).group(1)))
    med = statistics.median
    print(f"machine: {os.cpu_count()} cores; onnxruntime 1 thread; {args.runs} runs each, interleaved; medians")
    head = "".join(f" {k:>12} {'ratio':>6}" for k in backends)
    print(f"{'figure':<52} {'python':>10}{head}")
    for name, a, b, unit in rows:
        cells = "".join(f" {med(a[k]):>10.1f}{unit:>2} {med(a[k]) / med(b):>6.2f}" for k in backends)
        print(f"{name:<52} {med(b):>8.1f}{unit:>2}{cells}")
    cells = "".join(f" {med(builds[k]):>10.1f}ms {'':>6}" for k in backends)
    print(f"{'model ready (load + optimize + plan), detect -v':<52} {'':>10}{cells}")
    print("ratio = project / python")


if __name__ == "__main__":
    main()
