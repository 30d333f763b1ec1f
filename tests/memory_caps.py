"""Memory sizes: the function under a memory cap, as Lambda runs it, with the costliest image it accepts.

    python tests/memory_caps.py [--sizes 128,256,512] [--report FILE] [BINARY]

Lambda stops an environment whose memory goes over the function's memory size. For each size this
starts the function binary (default target/release/object-detector) inside a memory cgroup capped at that
size with no swap (v1's memory.limit_in_bytes + memsw, or v2's memory.max + swap.max = 0; root needed), with
AWS_LAMBDA_FUNCTION_MEMORY_SIZE set as Lambda sets it, behind `cargo lambda watch`, and invokes it
directly (`{"image": base64}`) with, in one warm process:

- the worst case of each format at exactly the pixel budget the function derives from the memory size
  (src/core/image_decode/mod.rs, DecodeLimits::for_memory; mirrored in tools/hostile_images.py's `budget`):
  PNG with 16-bit RGBA (the costliest decode there is), 8-bit RGBA and RGB; WebP (lossless, with
  alpha); GIF; JPEG; and the 16-bit PNG again with its annotated picture asked for. Each must be
  answered with detections; the cgroup's peak memory is recorded for each;
- the 16-bit RGBA PNG one row over the budget: refused with `image_too_large`, which also shows the
  function's budget is the one computed here;
- every hostile image of tools/hostile_images.py sized for that budget (JPEG scan bombs, GIF frames
  larger than the screen, PNG ICC-profile bombs, animated WebP at the budget, ...), each answered as
  the case says (detections or its error code), the process alive, the peak within the memory size;
- a photo afterwards: the process is still the warm one.

Then, at the smallest size, the same function with the fixed limits it had before the memory size set
them (MAX_IMAGE_PIXELS=40000000, MAX_DECODE_BYTES=536870912) and a 16-bit RGBA PNG at four times the
derived budget: the kernel stops it (it would be an out-of-memory kill on Lambda), which shows the cap is real.

BMP is left out: it travels uncompressed, so the 6 MB invocation payload holds at most 2 MP of it, within
every size's budget. Without a writable memory cgroup it says so and exits 0.
"""

import argparse
import base64
import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
from PIL import Image

from harness import ROOT, Processes, free_port, function_env

sys.path.insert(0, str(ROOT / "tools"))
import hostile_images  # noqa: E402
from hostile_images import budget, chunk, size_for  # noqa: E402


def pattern(w, h, channels):
    """64-pixel blocks of four colours: every format compresses them to a small invocation (the
    decoder's buffers are the same size whatever the content)."""
    palette = np.array([[200, 40, 40, 255], [40, 160, 60, 255], [30, 60, 200, 128], [230, 230, 230, 255]],
                       np.uint8)[:, :channels]
    index = (np.arange(h)[:, None] // 64 + np.arange(w)[None, :] // 64) % 4
    return palette[index]


def png16_rgba(w, h):
    """A 16-bit RGBA PNG of the same blocks, written directly (Pillow does not write 16-bit colour)."""
    blocks = pattern(w, h, 4).astype(">u2") * 257
    raw = b"".join(b"\x00" + row.tobytes() for row in blocks)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def encoded(image, fmt, **kw):
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def worst_cases(pixels):
    w, h = size_for(pixels)
    rgb, rgba = Image.fromarray(pattern(w, h, 3)), Image.fromarray(pattern(w, h, 4))
    cases = [("png_rgba16", png16_rgba(w, h)), ("png_rgba8", encoded(rgba, "PNG")),
             ("png_rgb8", encoded(rgb, "PNG"))]
    if max(w, h) <= 16383:  # WebP's largest side
        cases.append(("webp_lossless_rgba", encoded(rgba, "WEBP", lossless=True, quality=0)))
    gif = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4, dither=Image.Dither.NONE)
    cases += [("gif", encoded(gif, "GIF")), ("jpeg", encoded(rgb, "JPEG", quality=80))]
    return (w, h), cases


class Cgroup:
    """A memory cgroup capped at `mib` MiB without swap, v1 or v2, whichever is writable here."""

    def __init__(self, mib):
        name = f"object-detector-memory-{os.getpid()}-{mib}"
        self.path = self.v1 = None
        v1 = pathlib.Path("/sys/fs/cgroup/memory")
        v2 = pathlib.Path("/sys/fs/cgroup")
        try:
            if (v1 / "memory.limit_in_bytes").exists():
                self.path, self.v1 = v1 / name, True
                self.path.mkdir()
                (self.path / "memory.limit_in_bytes").write_text(str(mib << 20))
                if (self.path / "memory.memsw.limit_in_bytes").exists():
                    (self.path / "memory.memsw.limit_in_bytes").write_text(str(mib << 20))
            elif "memory" in (v2 / "cgroup.controllers").read_text().split():
                self.path, self.v1 = v2 / name, False
                self.path.mkdir()
                (self.path / "memory.max").write_text(str(mib << 20))
                (self.path / "memory.swap.max").write_text("0")
        except OSError as e:
            self.remove()
            raise RuntimeError(f"no writable memory cgroup here ({e})") from e
        if self.path is None:
            raise RuntimeError("no memory cgroup controller here")

    def works(self):
        """Whether a process can be started inside it (a container may allow the folder, not the move)."""
        return subprocess.run(self.command(["true"]), stderr=subprocess.DEVNULL).returncode == 0

    def swap_unbounded(self):
        """The machine has swap this cgroup cannot forbid: over the cap, a process would swap, not die."""
        swaps = pathlib.Path("/proc/swaps").read_text().splitlines()[1:]
        no_swap_limit = self.v1 and not (self.path / "memory.memsw.limit_in_bytes").exists()
        return bool(swaps) and no_swap_limit

    def command(self, argv):
        """`argv`, started inside this cgroup."""
        return ["sh", "-c", f'echo $$ > "{self.path}/cgroup.procs" && exec "$@"', "sh", *argv]

    def peak_and_reset(self):
        if self.v1:
            peak = int((self.path / "memory.max_usage_in_bytes").read_text())
            (self.path / "memory.max_usage_in_bytes").write_text("0")
            return peak
        peak_file = self.path / "memory.peak"
        return int(peak_file.read_text()) if peak_file.exists() else None

    def remove(self):
        if self.path is not None and self.path.exists():
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def invoke(port, event):
    """A direct invocation through the emulator: (error type or None, answer)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/object-detector/invocations",
                                     data=json.dumps(event).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read() or b"null")
            failed = response.headers.get("X-Amz-Function-Error")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"errorType": f"http {e.code}", "errorMessage": body[:200].decode(errors="replace")}
        failed = True
    except OSError as e:
        return "no answer", {"errorMessage": repr(e)}
    if failed or (isinstance(answer, dict) and "errorType" in answer):
        return answer.get("errorType", "function error"), answer
    return None, answer


def invoke_while_alive(port, event, function):
    """invoke(), given up as soon as the function's process has died: the emulator would otherwise hold
    the request for a function that can no longer answer until invoke's 300 s timeout."""
    result = []

    def call():
        try:
            result.append(invoke(port, event))
        except BaseException as e:  # raised again below, in the caller's thread
            result.append(e)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if thread.is_alive() and function.poll() is not None:
            return "no answer", {"errorMessage": "the function's process died"}
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def run_size(binary, mib, work, extra=None, cases=None):
    """Starts the function in a `mib` cgroup and sends `cases` (default: the worst cases at its budget,
    the one-row-over image and a photo). Returns the rows of the report."""
    pixels = budget(mib)
    rows = []
    hostile = {name for name, _, _ in hostile_images.cases(mib)}
    if cases is None:
        (w, h), cases = worst_cases(pixels)
        over = png16_rgba(w, h + 1) if w * (h + 1) > pixels else png16_rgba(w + 1, h)
        cases = [(name, data, "detected") for name, data in cases]
        # The costliest request: the costliest image, answered with its annotated picture as well.
        cases.append(("png_rgba16_annotated", (cases[0][1], {"annotate": True}), "detected"))
        cases.append(("png_rgba16_one_row_over", over, "image_too_large"))
        cases += hostile_images.cases(mib)
        cases.append(("photo_after", (ROOT / "tests/images/chelsea.jpg").read_bytes(), "detected"))
    cgroup = Cgroup(mib)
    port = free_port()
    try:
        with Processes(work) as procs:
            procs.emulator(port, f"watch-{mib}.log")
            env = function_env(port, METRICS="off", AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(mib), **(extra or {}))
            function = procs.start(cgroup.command([binary]), f"fn-{mib}.log", env=env)
            invoke(port, {"image": base64.b64encode((ROOT / "tests/images/chelsea.jpg").read_bytes()).decode()})
            cgroup.peak_and_reset()
            for name, data, expected in cases:
                data, options = data if isinstance(data, tuple) else (data, {})
                if name in hostile:
                    size = (0, 0)  # not opened here: Pillow would inflate the bombs
                else:
                    with Image.open(io.BytesIO(data)) as im:
                        size = im.size
                error, answer = invoke_while_alive(
                    port, {"image": base64.b64encode(data).decode(), **options}, function)
                alive = function.poll() is None
                got = error or ("detected" if isinstance(answer, dict) and "detections" in answer else "unexpected")
                if not alive:
                    got = f"killed (exit {function.returncode})"
                peak = cgroup.peak_and_reset()
                rows.append({"memory_mib": mib, "case": name, "width": size[0], "height": size[1],
                             "megapixels": round(size[0] * size[1] / 1e6, 2), "payload_bytes": len(data),
                             "expected": expected, "got": got,
                             "peak_mib": round(peak / 2**20, 1) if peak else None})
                print(f"memory {mib} MiB: {name} {size[0]}x{size[1]} ({len(data)} bytes): {got}"
                      f"{'' if got == expected else ' (expected ' + expected + ')'}, "
                      f"peak {rows[-1]['peak_mib']} MiB", flush=True)
                if not alive:
                    break
    finally:
        cgroup.remove()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default=str(ROOT / "target/release/object-detector"))
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--report")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = pathlib.Path(tempfile.mkdtemp())
    try:
        probe = Cgroup(sizes[0])
    except RuntimeError as e:
        print(f"memory caps: {e}; skipped")
        return
    usable, swap_unbounded = probe.works(), probe.swap_unbounded()
    probe.remove()
    if not usable:
        print("memory caps: a memory cgroup can be made here but no process moved into it; skipped")
        return
    rows = []
    for mib in sizes:
        print(f"memory {mib} MiB: pixel budget {budget(mib):,}", flush=True)
        rows += run_size(args.binary, mib, work)
    # The cap is real: with the fixed limits of before, the smallest size is killed (unless the
    # machine would swap instead).
    if swap_unbounded:
        print("memory caps: this machine has swap the cgroup cannot forbid; the kill check is skipped")
    else:
        w, h = size_for(4 * budget(sizes[0]))
        fixed = {"MAX_IMAGE_PIXELS": "40000000", "MAX_DECODE_BYTES": "536870912"}
        case = ("png_rgba16_4x_the_budget_fixed_limits", png16_rgba(w, h), "killed")
        for row in run_size(args.binary, sizes[0], work, extra=fixed, cases=[case]):
            row["got"] = "killed" if row["got"].startswith("killed") else row["got"]
            rows.append(row)
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(rows, indent=1))
    wrong = [r for r in rows if r["got"] != r["expected"]]
    if wrong:
        for name in sorted(os.listdir(work)):
            if name.startswith("fn-"):
                print(f"--- {name} (last 1500 characters)\n{(work / name).read_text(errors='replace')[-1500:]}")
        sys.exit(f"memory caps: FAILED: {wrong}")
    print("memory caps: passed")


if __name__ == "__main__":
    main()
