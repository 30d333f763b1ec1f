"""End-to-end test of `/detect`'s image sources (`image_url`, `s3`, `images`) against real servers, through
the real function behind `cargo lambda watch`'s function-URL front and Invoke API.

    python tests/inputs_e2e.py [BINARY]     (default target/release/object-detector)

Starts moto_server (S3), the emulator and the function on 127.0.0.1 and free ports, and, in this process,
three photo servers on 127.0.0.1: HTTPS with a certificate from a CA made here by `trustme` (the function
trusts it through IMAGE_URL_CA_FILE), HTTPS with a certificate from another CA (not trusted), and plain
HTTP (allowed because IMAGE_URL_HOSTS lists 127.0.0.1 exactly). Everything is stopped at the end (the
processes by PID). For each test photo, `POST /detect` with its bytes gives the reference; then:

- `image_url` over HTTPS (through a redirect too) and plain HTTP answers the reference detections;
- the guard and the budget: a redirect to the instance metadata service (169.254.169.254) refused, a
  host IMAGE_URL_HOSTS does not list refused, an untrusted certificate, a 404, a server that trickles its
  body (cut off by the 8 s deadline) and one too large (over MAX_OBJECT_BYTES) answered with their 4xx
  codes, never a 5xx;
- `s3` objects in moto_server (as an object and as `s3://`, with a version id) answer the reference; a
  missing key is `object_not_found`;
- `images` mixing base64, URLs and objects answers each in order, the failing item with its error;
- a direct invocation through boto3's Lambda client names an S3 object and a list.
"""

import base64
import http.server
import json
import pathlib
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import boto3
import trustme
from botocore.config import Config

from harness import ROOT, Processes, free_port, function_env, wait_for_port

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/object-detector")
PHOTOS = ["tests/images/chelsea.jpg", "tests/images/astronaut.png", "tests/images/coffee.jpg"]

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
BUCKET = "photos"
# Over every test photo, under the large answer the test server sends.
MAX_OBJECT_BYTES = 3_000_000

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def call(url, body):
    """Status and parsed JSON body of a JSON POST."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class PhotoHandler(http.server.BaseHTTPRequestHandler):
    """The test photos at /<file name>, and the misbehaving answers the function must survive."""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/to-metadata":
            self.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"})
        elif path.startswith("/redirect/"):
            self.answer(301, headers={"Location": "/" + path.removeprefix("/redirect/")})
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
        elif path == "/large.jpg":
            self.answer(200, b"\xff\xd8" + b"\0" * MAX_OBJECT_BYTES)
        else:
            file = ROOT / "tests/images" / path.lstrip("/")
            if path.count("/") == 1 and file.is_file():
                self.answer(200, file.read_bytes(), {"Content-Type": "image/jpeg"})
            else:
                self.answer(404, b"not found")

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the function hung up: the answer was too large, as meant
            pass

    def log_message(self, *args):
        pass


def photo_server(tls=None):
    """A threaded server on 127.0.0.1 (HTTPS with the `tls` context); its port and the server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PhotoHandler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], server


def tls_context(ca):
    cert = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


def same(got, want):
    """None when `got` is `/detect`'s answer `want` (same detections, same image), else the difference."""
    if not isinstance(got, dict) or "detections" not in got:
        return f"not a detection: {str(got)[:300]}"
    if got["detections"] != want["detections"] or got["image"] != want["image"]:
        return f"{got['detections'][:2]} vs {want['detections'][:2]}"
    return None


def error_code(status_body):
    status, body = status_body
    return status, (body.get("error") or {}).get("code") if isinstance(body, dict) else None


def main():
    ca, other_ca = trustme.CA(), trustme.CA()
    with tempfile.TemporaryDirectory() as logs, Processes(logs) as procs:
        ca_file = pathlib.Path(logs) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        https_port, https_server = photo_server(tls_context(ca))
        untrusted_port, untrusted_server = photo_server(tls_context(other_ca))
        http_port, http_server = photo_server()

        port, s3_port = free_port(), free_port()
        venv_bin = pathlib.Path(sys.executable).parent
        procs.start([venv_bin / "moto_server", "-H", "127.0.0.1", "-p", s3_port], "moto.log")
        wait_for_port(s3_port, "moto_server")
        procs.emulator(port, "watch.log")
        env = function_env(port, **CREDENTIALS, AWS_REGION=REGION, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{s3_port}",
                           S3_FORCE_PATH_STYLE="true", MAX_OBJECT_BYTES=str(MAX_OBJECT_BYTES),
                           IMAGE_URL_HOSTS="localhost, 127.0.0.1", IMAGE_URL_CA_FILE=str(ca_file))
        procs.start([BIN], "function.log", stdout="function.out", env=env)
        url = f"http://127.0.0.1:{port}/lambda-url/object-detector/detect"
        wait_for_port(port, "the emulator")

        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        s3 = session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

        reference = {}
        for path in PHOTOS:
            data = (ROOT / path).read_bytes()
            status, body = call(url, {"image": base64.b64encode(data).decode()})
            if status != 200:
                sys.exit(f"/detect on {path}: {status} {body}")
            reference[path] = body
        print("reference detections per photo: "
              + ", ".join(f"{p}: {len(r['detections'])}" for p, r in reference.items()))

        # image_url: HTTPS with the test's CA (by name, through a redirect), plain HTTP on a listed address.
        for path, want in reference.items():
            name = pathlib.Path(path).name
            for photo_url in [f"https://localhost:{https_port}/{name}",
                              f"https://localhost:{https_port}/redirect/{name}",
                              f"http://127.0.0.1:{http_port}/{name}?size=original"]:
                status, body = call(url, {"image_url": photo_url})
                problem = same(body, want) if status == 200 else f"{status} {body}"
                check(f"image_url {photo_url}", problem is None, problem)

        # The guard and the budget: 4xx with a stable code, never a 5xx.
        cases = [
            ("a redirect to the instance metadata service", f"http://127.0.0.1:{http_port}/to-metadata",
             (400, "image_url_refused")),
            ("a host IMAGE_URL_HOSTS does not list", "https://example.com/cat.jpg", (400, "image_url_refused")),
            ("the metadata service named directly", "http://169.254.169.254/latest/meta-data/",
             (400, "image_url_refused")),
            ("a certificate from a CA not trusted", f"https://localhost:{untrusted_port}/chelsea.jpg",
             (422, "image_url_unreachable")),
            ("a 404", f"https://localhost:{https_port}/missing.jpg", (422, "image_url_unreachable")),
            ("a file over MAX_OBJECT_BYTES", f"http://127.0.0.1:{http_port}/large.jpg", (413, "image_url_too_large")),
        ]
        for what, photo_url, want in cases:
            got = error_code(call(url, {"image_url": photo_url}))
            check(f"image_url: {what} is {want}", got == want, got)
        start = time.time()
        got = error_code(call(url, {"image_url": f"http://127.0.0.1:{http_port}/trickle"}))
        elapsed = time.time() - start
        check("image_url: a server trickling its body is cut off at the deadline (422 within 12 s)",
              got == (422, "image_url_unreachable") and elapsed < 12, f"{got} after {elapsed:.1f} s")

        # s3: objects in moto_server, by object and by s3:// URI, with a version id.
        for path, want in reference.items():
            key = f"uploads/{pathlib.Path(path).name}"
            put = s3.put_object(Bucket=BUCKET, Key=key, Body=(ROOT / path).read_bytes())
            for source in [{"bucket": BUCKET, "key": key},
                           f"s3://{BUCKET}/{key}",
                           {"bucket": BUCKET, "key": key, "version_id": put["VersionId"]}]:
                status, body = call(url, {"s3": source})
                problem = same(body, want) if status == 200 else f"{status} {body}"
                check(f"s3 {source}", problem is None, problem)
        got = error_code(call(url, {"s3": {"bucket": BUCKET, "key": "uploads/none.jpg"}}))
        check("s3: a missing key is 404 object_not_found", got == (404, "object_not_found"), got)

        # images: a list mixing every source, each answered in its place.
        cat, coffee = reference[PHOTOS[0]], reference[PHOTOS[2]]
        items = [base64.b64encode((ROOT / PHOTOS[0]).read_bytes()).decode(),
                 {"image_url": f"https://localhost:{https_port}/coffee.jpg"},
                 {"s3": {"bucket": BUCKET, "key": "uploads/chelsea.jpg"}},
                 {"image_url": f"https://localhost:{https_port}/missing.jpg"}]
        status, body = call(url, {"images": items})
        results = body.get("results", []) if status == 200 else []
        problems = [same(results[0], cat), same(results[1], coffee), same(results[2], cat)] if len(results) == 4 else [body]
        ok = status == 200 and not any(problems) and results[3].get("error", {}).get("code") == "image_url_unreachable"
        check("images: base64, a URL, an S3 object and a failing URL answered in order", ok, (status, problems))

        # A direct invocation through boto3's Lambda client.
        client = session.client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                                config=Config(retries={"max_attempts": 0}, read_timeout=120))
        payload = {"s3": {"bucket": BUCKET, "key": "uploads/coffee.jpg"}}
        answer = json.loads(client.invoke(FunctionName="object-detector", Payload=json.dumps(payload))["Payload"].read())
        problem = same(answer, coffee)
        check("boto3 Lambda invoke with an s3 object", problem is None, problem)
        payload = {"images": [{"s3": f"s3://{BUCKET}/uploads/chelsea.jpg"},
                              {"image_url": f"http://127.0.0.1:{http_port}/coffee.jpg"}]}
        answer = json.loads(client.invoke(FunctionName="object-detector", Payload=json.dumps(payload))["Payload"].read())
        results = answer.get("results", [None, None])
        problem = same(results[0], cat) or same(results[1], coffee)
        check("boto3 Lambda invoke with a list", problem is None, problem)

        log = (pathlib.Path(logs) / "function.log").read_text()
        check("the function logged no error", '"level":"ERROR"' not in log,
              [line for line in log.splitlines() if '"level":"ERROR"' in line][:3])
        for server in (https_server, untrusted_server, http_server):
            server.shutdown()
    print(f"inputs e2e: {len(failures)} failed" if failures else "inputs e2e: all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
