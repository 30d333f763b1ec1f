"""Soak test: one warm function process, thousands of mixed invocations, nothing lost, memory flat.

    python tests/soak.py [--requests N] [--seed S] [--report FILE] [--only KIND ...] [BINARY]

Starts `cargo lambda watch` (the Lambda emulator) and the function binary behind it on free 127.0.0.1
ports, and stops both by PID at the end. Then sends N invocations (default 10,000) through the emulator's
Invoke API, drawn at a fixed seed from a mix of every HTTP event shape (REST v1, HTTP API v1 and v2,
function URL, ALB) and direct invocations; every body form (raw binary, JSON with base64, multipart);
photos in every accepted format at sizes up to 4000 px; and every error class (not base64, not an image,
truncated, huge dimensions, unsupported format, empty body, an event of no known shape, bad parameters,
unknown route, wrong method), plus routes and an SQS event with S3's test event.

Every answer is checked against the status (or function error code) its kind must get. Every 100 requests
the function's RSS and open file descriptors are read from /proc: RSS as the mix left it, and again after
one reference request (a 4000 px photo, outside the mix), since what a random request leaves behind varies
by tens of MiB (src/core/memory.rs). Passes when: the process is the same one at the end (no restart), every
request was answered as expected, the RSS floor at the end is within 5% of the floor at request 1,000 (at
half the run, for runs shorter than 2,000), and the descriptor count at the end is what it was then. The
floor is the median RSS after the reference request over five readings (500 requests): one reading varies
by a few percent, a leak raises them all. The high-water RSS is reported too. Prints p50/p90/p99 latency per kind and the RSS curve; --report writes them
as JSON. --only KIND (repeatable) narrows the mix to those kinds, to find which requests make RSS grow.
"""

import argparse
import base64
import http.client
import io
import json
import os
import pathlib
import random
import socket
import statistics
import struct
import sys
import tempfile
import time
import zlib

from PIL import Image

from harness import ROOT, Processes, free_port, function_env


def encode(image, fmt, **kw):
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def photos():
    """(name, bytes, media type) for every accepted format, at sizes up to 4000 px on the longer side.
    PNG, GIF and BMP stop at 1280 px: larger ones are over the 6 MB a Lambda request carries."""
    sources = [Image.open(ROOT / "tests/images" / n).convert("RGB")
               for n in ("chelsea.jpg", "coffee.jpg", "astronaut.png", "rocket.png")]
    out = []
    for i, image in enumerate(sources):
        for side in (None, 640, 1280, 2400, 4000):
            scaled = image
            if side:
                w, h = image.size
                scale = side / max(w, h)
                scaled = image.resize((max(1, round(w * scale)), max(1, round(h * scale))))
            label = f"{i}-{side or 'native'}"
            out.append((f"jpeg-{label}", encode(scaled, "JPEG", quality=85), "image/jpeg"))
            out.append((f"webp-{label}", encode(scaled, "WEBP", quality=80), "image/webp"))
            if side is None or side <= 1280:
                out.append((f"png-{label}", encode(scaled, "PNG"), "image/png"))
                out.append((f"gif-{label}", encode(scaled.convert("P"), "GIF"), "image/gif"))
                out.append((f"bmp-{label}", encode(scaled, "BMP"), "image/bmp"))
    return out


def huge_png():
    """A valid PNG header claiming 100,000 x 100,000 pixels: refused from the header, before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def tiff():
    return encode(Image.new("RGB", (32, 32), (200, 30, 30)), "TIFF")


class Events:
    """Builds each kind of invocation from the committed event samples."""

    def __init__(self):
        self.samples = {p.stem: json.loads(p.read_text()) for p in (ROOT / "events").glob("*.json")}

    def http(self, shape, body, media_type, *, path="/detect", method="POST", query="", base64_body=True):
        sample = {"rest": "rest-api-jpeg", "http1": "http-api-v1-jpeg", "http2": "http-api-jpeg",
                  "url": "function-url-jpeg", "alb": "alb-jpeg"}[shape]
        e = json.loads(json.dumps(self.samples[sample]))
        text = base64.b64encode(body).decode() if base64_body else body.decode()
        e["body"], e["isBase64Encoded"] = text, base64_body
        for key in ("headers", "multiValueHeaders"):
            if isinstance(e.get(key), dict):
                for name in list(e[key]):
                    if name.lower() == "content-type":
                        del e[key][name]
                e[key]["content-type"] = media_type if key == "headers" else [media_type]
        pairs = [p.split("=", 1) for p in query.split("&") if p]
        if shape in ("http2", "url"):
            e["rawPath"], e["requestContext"]["http"]["path"] = path, path
            e["requestContext"]["http"]["method"] = method
            e["rawQueryString"] = query
            e["queryStringParameters"] = dict(pairs) or None
        else:
            e["path"], e["httpMethod"] = path, method
            # An ALB always sends an object (empty without a query); API Gateway sends null.
            e["queryStringParameters"] = dict(pairs) if shape == "alb" else (dict(pairs) or None)
            if "multiValueQueryStringParameters" in e:
                e["multiValueQueryStringParameters"] = {k: [v] for k, v in pairs} or None
            if shape in ("rest", "http1"):
                e["requestContext"]["httpMethod"] = method
                e["requestContext"]["path"] = path
        return e

    @staticmethod
    def multipart(image, media_type):
        boundary = "soak-boundary-5c1e"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p\"\r\n"
                f"Content-Type: {media_type}\r\n\r\n").encode() + image + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"score_threshold\"\r\n\r\n0.3"
            f"\r\n--{boundary}--\r\n").encode()
        return body, f"multipart/form-data; boundary={boundary}"


def kinds(events, images):
    """(kind, weight, builder(rng) -> (event, expected)). expected: an HTTP status, or `fn:<code>` for a
    function error of a direct invocation."""
    shapes = ["rest", "http1", "http2", "url", "alb"]
    jpeg = next(b for n, b, _ in images if n == "jpeg-0-native")

    def photo_raw(rng):
        name, data, media = rng.choice(images)
        return events.http(rng.choice(shapes), data, media), 200

    def photo_json(rng):
        name, data, media = rng.choice(images)
        body = json.dumps({"image": base64.b64encode(data).decode(), "score_threshold": 0.3}).encode()
        return events.http(rng.choice(shapes), body, "application/json", base64_body=False), 200

    def photo_multipart(rng):
        name, data, media = rng.choice(images)
        body, media_type = events.multipart(data, media)
        return events.http(rng.choice(shapes), body, media_type), 200

    def photo_direct(rng):
        name, data, media = rng.choice(images)
        return {"image": base64.b64encode(data).decode(), "max_detections": 20}, 200

    def error(shape_body, status):
        return lambda rng: (events.http(rng.choice(shapes), *shape_body), status)

    truncated = jpeg[: len(jpeg) // 2]
    return [
        ("photo_raw", 30, photo_raw),
        ("photo_json", 12, photo_json),
        ("photo_multipart", 8, photo_multipart),
        ("photo_direct", 10, photo_direct),
        ("not_base64", 3, lambda rng: (events.http(rng.choice(shapes), b'{"image": "@@@ not base64"}',
                                                   "application/json", base64_body=False), 400)),
        ("not_base64_direct", 2, lambda rng: ({"image": "@@@"}, "fn:invalid_base64")),
        ("not_an_image", 3, error((b"just some text, not a photo", "image/jpeg"), 422)),
        ("truncated", 3, error((truncated, "image/jpeg"), 422)),
        ("huge_dimensions", 3, error((huge_png(), "image/png"), 413)),
        ("unsupported_format", 3, error((tiff(), "image/tiff"), 415)),
        ("empty_body", 3, error((b"", "image/jpeg"), 400)),
        ("no_known_shape", 2, lambda rng: ({"hello": rng.randint(0, 9)}, "fn:invalid_event")),
        ("bad_parameter", 3, lambda rng: (events.http(rng.choice(shapes), jpeg, "image/jpeg",
                                                      query="score_threshold=7"), 400)),
        ("unknown_route", 2, lambda rng: (events.http(rng.choice(shapes), b"", "text/plain",
                                                      path="/nope", method="GET"), 404)),
        ("wrong_method", 2, lambda rng: (events.http(rng.choice(shapes), b"", "text/plain",
                                                     method="DELETE"), 405)),
        ("health_and_model", 4, lambda rng: (events.http(rng.choice(shapes), b"", "text/plain",
                                                         path=rng.choice(["/health", "/model"]),
                                                         method="GET"), 200)),
        ("sqs_test_event", 2, lambda rng: ({"Records": [{
            "messageId": f"m{rng.randint(0, 10**6)}", "eventSource": "aws:sqs",
            "body": json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "photos"})}]},
            200)),
    ]


def connect(port):
    """A keep-alive connection to the emulator, without Nagle's delay on small requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def answered(conn, event):
    """Invokes; returns (status or fn:code, seconds)."""
    payload = json.dumps(event).encode()
    start = time.perf_counter()
    conn.request("POST", "/2015-03-31/functions/object-detector/invocations", body=payload,
                 headers={"content-type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    answer = json.loads(body)
    if response.getheader("X-Amz-Function-Error") or "errorType" in answer:
        return "fn:" + str(answer.get("errorType")), elapsed
    if "statusCode" in answer:
        return answer["statusCode"], elapsed
    if "detections" in answer or "batchItemFailures" in answer:
        return 200, elapsed
    return f"unexpected:{body[:100]!r}", elapsed


def invoke_or_reconnect(conn, port, event):
    """`answered`, on a fresh connection after a failed one: (connection, status or why none, seconds)."""
    try:
        got, seconds = answered(conn, event)
        return conn, got, seconds
    except (OSError, http.client.HTTPException, ValueError) as e:
        return connect(port), f"no answer: {e!r}", 0.0


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def high_water_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default=str(ROOT / "target/release/object-detector"))
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--report")
    parser.add_argument("--only", action="append", metavar="KIND",
                        help="send only this kind (repeatable): to find which requests make RSS grow")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    images = photos()
    events = Events()
    mix = kinds(events, images)
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in mix}
        if unknown:
            sys.exit(f"soak: no such kind {sorted(unknown)}; kinds: {[name for name, _, _ in mix]}")
        mix = [kind for kind in mix if kind[0] in args.only]
    weights = [w for _, w, _ in mix]
    work = pathlib.Path(tempfile.mkdtemp())
    port = free_port()
    with Processes(work) as procs:
        procs.emulator(port, "watch.log")
        function = procs.start([args.binary], "fn.log", stdout="fn.out",
                               env=function_env(port, METRICS="off"))
        probe_photo = next(data for name, data, _ in images if name == "jpeg-0-4000")
        result = soak(args, rng, mix, weights, function, port, probe_photo)
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(result, indent=1))
    if result["failures"]:
        print("--- fn.log (last 2000 characters)\n" + (work / "fn.log").read_text(errors="replace")[-2000:])
        sys.exit(f"soak: FAILED: {result['failures']}")
    print("soak: passed")


# Readings (one every 100 requests) whose median is the floor compared.
FLOOR_READINGS = 5


def soak(args, rng, mix, weights, function, port, probe_photo):
    conn = connect(port)
    latencies = {name: [] for name, _, _ in mix}
    wrong = []
    curve = []
    probe = {"image": base64.b64encode(probe_photo).decode()}
    baseline_at = min(1000, max(100, args.requests // 2 // 100 * 100))
    start = time.time()
    for i in range(1, args.requests + 1):
        name, _, build = rng.choices(mix, weights)[0]
        event, expected = build(rng)
        conn, got, seconds = invoke_or_reconnect(conn, port, event)
        latencies[name].append(seconds * 1000)
        if got != expected:
            wrong.append({"request": i, "kind": name, "expected": expected, "got": got})
        if i % 100 == 0:
            # RSS right after a random request depends on that request (a mid-size photo leaves its
            # pages with the allocator; a large one is followed by a trim). Read it once as it is, and
            # once after the same reference request, a 4000 px photo, which ends with a trim: that floor
            # is comparable from one reading to the next, and what a leak would raise.
            as_left = rss_kib(function.pid)
            conn, probe_status, _ = invoke_or_reconnect(conn, port, probe)
            if probe_status != 200:
                wrong.append({"request": i, "kind": "rss_probe", "expected": 200, "got": probe_status})
            fds = len(os.listdir(f"/proc/{function.pid}/fd"))
            curve.append({"request": i, "rss_kib": rss_kib(function.pid), "rss_as_left_kib": as_left,
                          "fds": fds})
            if i % 1000 == 0 or i == args.requests:
                print(f"soak: {i} requests, {time.time() - start:.0f} s, RSS {curve[-1]['rss_kib'] / 1024:.1f} MiB, "
                      f"{fds} fds, {len(wrong)} unexpected", flush=True)
    base = next(c for c in curve if c["request"] == baseline_at)
    last = curve[-1]
    # One reading after the reference request still varies by a few percent (26.5-28.5 MiB over a flat
    # 10,000-request run), so the floor is the median of FLOOR_READINGS readings: those up to the
    # baseline request against the last ones. A leak raises every reading, so it raises the median too.
    floor_at_base = statistics.median(c["rss_kib"] for c in curve if c["request"] <= baseline_at
                                      and c["request"] > baseline_at - FLOOR_READINGS * 100)
    floor_at_end = statistics.median(c["rss_kib"] for c in curve[-FLOOR_READINGS:])
    failures = []
    if function.poll() is not None:
        failures.append(f"the function exited ({function.returncode})")
    if wrong:
        failures.append(f"{len(wrong)} answers not as expected, first: {wrong[:3]}")
    growth = floor_at_end / floor_at_base - 1
    if growth > 0.05:
        failures.append(f"the RSS floor grew {growth:.1%} from request {baseline_at} to {last['request']}")
    if last["fds"] != base["fds"]:
        failures.append(f"open descriptors went from {base['fds']} to {last['fds']}")
    table = {name: {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99)}
             for name, v in latencies.items() if v}
    print(f"{'kind':<20} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, row in table.items():
        print(f"{name:<20} {row['n']:>6} {row['p50']:>8.1f} {row['p90']:>8.1f} {row['p99']:>8.1f}")
    peak = high_water_kib(function.pid)
    left = [c["rss_as_left_kib"] for c in curve]
    print(f"RSS floor (median of {FLOOR_READINGS} readings after the reference request) up to request "
          f"{baseline_at}: {floor_at_base / 1024:.1f} MiB; up to {last['request']}: {floor_at_end / 1024:.1f} MiB "
          f"({growth:+.1%}); as the mix left it: "
          f"{min(left) / 1024:.1f} to {max(left) / 1024:.1f} MiB; high-water {peak / 1024:.1f} MiB; "
          f"fds {base['fds']} -> {last['fds']}; {time.time() - start:.0f} s")
    return {"requests": args.requests, "seed": args.seed, "latency_ms": table, "rss_curve": curve,
            "baseline_request": baseline_at, "rss_floor_kib": [floor_at_base, floor_at_end], "rss_growth": growth, "rss_high_water_kib": peak,
            "failures": failures, "unexpected": wrong[:50]}


if __name__ == "__main__":
    main()
