"""CPU and peak memory of each hostile image (tools/hostile_images.py), one `detect` process per image
on one core, as a Lambda function of the given memory size decodes it.

    .venv/bin/python benches/hostile.py [--memory 1769] [--timeout 60] [--only SUBSTRING] [--check] DETECT [DETECT_B]

For every case: the answer (detections, or the error code), the process's CPU time (user + system,
model load and inference included) and its peak RSS; the first row, a photo, is what every process
pays anyway. With a second binary, both run each case, alternating, and the table gives both and the
ratio of their CPU (B / A), measured in this one run. A process still running at `--timeout` seconds
of wall time is killed and shown as such. Prints a table. With `--check`
it also exits 1 when an answer is not the one the case expects or a process's peak RSS is over the
memory size; CPU time is reported, never asserted.
"""

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import hostile_images  # noqa: E402


def run(binary, path, memory, timeout):
    """(answer, CPU seconds, peak RSS MiB, wall seconds) of `binary path` on core 0."""
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "DETECTOR_THREADS": "1"}
    start = time.monotonic()
    p = subprocess.Popen(["taskset", "-c", "0", str(binary), "--jobs", "1", str(path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    answer = None
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            p.send_signal(signal.SIGKILL)
            pid, status, usage = os.wait4(p.pid, 0)
            answer = f"killed at {timeout} s"
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    out = p.stdout.read()
    p.stdout.close()
    if answer is None:
        if os.WIFSIGNALED(status):
            answer = f"signal {os.WTERMSIG(status)}"
        else:
            try:
                line = json.loads(out.splitlines()[0])
                answer = line["error"]["code"] if "error" in line else "detected"
            except (IndexError, ValueError, KeyError):
                answer = f"exit {os.WEXITSTATUS(status)}, no answer"
    return answer, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+", type=pathlib.Path)
    parser.add_argument("--memory", type=int, default=1769)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--only", default="")
    parser.add_argument("--check", action="store_true", help="fail on a wrong answer or a peak over the memory size")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp())
    cases = [("photo (chelsea.jpg)", (ROOT / "tests/images/chelsea.jpg").read_bytes(), "detected")]
    cases += [c for c in hostile_images.cases(args.memory) if args.only in c[0]]
    names = [b.name for b in args.binaries]
    print(f"memory size {args.memory} MiB (pixel budget {hostile_images.budget(args.memory):,}), one core, "
          f"timeout {args.timeout:.0f} s; binaries: {', '.join(map(str, args.binaries))}")
    head = "| case | bytes | expected | " + " | ".join(f"{n}: answer | {n}: CPU s | {n}: peak MiB" for n in names)
    print(head + (" | CPU B/A |" if len(names) == 2 else " |"))
    print("|" + " --- |" * (3 + 3 * len(names) + (len(names) == 2)))
    wrong = []
    for name, data, expected in cases:
        path = work / name.split(" ")[0]
        path.write_bytes(data)
        results = [run(b, path, args.memory, args.timeout) for b in args.binaries]
        wrong += [f"{name}: {b.name} answered {a} (expected {expected}), peak {rss:.0f} MiB"
                  for b, (a, _, rss, _) in zip(args.binaries, results) if a != expected or rss > args.memory]
        cells = [f"{a} | {cpu:.2f} | {rss:.0f}" for a, cpu, rss, _ in results]
        ratio = f" | {results[1][1] / results[0][1]:.3f}" if len(results) == 2 and results[0][1] else ""
        print(f"| {name} | {len(data):,} | {expected} | " + " | ".join(cells) + ratio + " |", flush=True)
        path.unlink()
    work.rmdir()
    if args.check:
        if wrong:
            sys.exit("hostile images: FAILED:\n" + "\n".join(wrong))
        print(f"hostile images: {len(cases)} passed, 0 failed")


if __name__ == "__main__":
    main()
