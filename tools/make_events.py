#!/usr/bin/env python3
"""Writes events/*.json: real event shapes from `sam local generate-event` (aws-sam-cli), given real image
bodies. Shapes sam does not generate (HTTP API payload 1.0, function URL) are derived from the nearest one
it does, as AWS documents them.

    .venv/bin/python tools/make_events.py          (needs `sam` on PATH or in .venv/bin)
"""
import base64
import copy
import io
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "events"
JPEG = (ROOT / "tests/images/chelsea.jpg").read_bytes()


def sam(*args):
    exe = shutil.which("sam") or str(Path(sys.executable).parent / "sam")
    return json.loads(subprocess.run([exe, "local", "generate-event", *args], check=True, capture_output=True,
                                     text=True).stdout)


def b64(data):
    return base64.b64encode(data).decode()


def small_png():
    img = Image.open(ROOT / "tests/images/chelsea.png").resize((226, 150), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def multipart(fields, boundary="----detector-form-7f3a"):
    parts = []
    for name, value, filename, ctype in fields:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename:
            head += f'; filename="{filename}"\r\nContent-Type: {ctype}'
        parts.append(head.encode() + b"\r\n\r\n" + value + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def rest(method, path, body=None, b64body=False, ctype=None, query=None, stage="prod"):
    e = sam("apigateway", "aws-proxy", "--method", method, "--path", path.strip("/"), "--stage", stage,
            "--resource", path)
    e["path"] = path
    e["resource"] = path
    e["pathParameters"] = None
    e["requestContext"]["path"] = f"/{stage}{path}"
    e["requestContext"]["resourcePath"] = path
    e["requestContext"]["requestId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, method + path + str(query)))
    headers = {k: v for k, v in e["headers"].items() if k.lower() != "content-type"}
    if ctype:
        headers["Content-Type"] = ctype
    e["headers"] = headers
    e["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    e["queryStringParameters"] = query
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    e["body"] = body
    e["isBase64Encoded"] = b64body
    return e


def http_v2(method, path, body=None, b64body=False, ctype=None, raw_query=""):
    e = sam("apigateway", "http-api-proxy", "--method", method, "--path", path)
    e["rawPath"] = path
    e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    e["requestContext"]["routeKey"] = e["routeKey"] = "$default"
    e["rawQueryString"] = raw_query
    query = {}
    for pair in filter(None, raw_query.split("&")):
        k, _, v = pair.partition("=")
        query[k] = f"{query[k]},{v}" if k in query else v
    e["queryStringParameters"] = query or None
    e.pop("cookies", None)
    e["headers"] = {"accept": "*/*", "host": e["requestContext"]["domainName"], "user-agent": "curl/8.5.0"}
    if ctype:
        e["headers"]["content-type"] = ctype
    if body is None:
        e.pop("body", None)
    else:
        e["body"] = body
    e["isBase64Encoded"] = b64body
    e["pathParameters"] = None
    e["stageVariables"] = None
    return e


def function_url(method, path, body, ctype):
    e = http_v2(method, path, b64(body), True, ctype)
    url_id = "abcdefghijklmnopqrstuvwxyz012345"
    ctx = e["requestContext"]
    ctx["domainName"] = f"{url_id}.lambda-url.us-east-1.on.aws"
    ctx["domainPrefix"] = url_id
    ctx["apiId"] = url_id
    ctx.pop("authentication", None)
    ctx["authorizer"] = None
    e["headers"]["host"] = ctx["domainName"]
    return e


def json_body_event(path, ctype, body, headers=None):
    """A function URL POST of a JSON body, which the URL passes as text (not base64)."""
    e = function_url("POST", path, b"", ctype)
    e["body"] = json.dumps(body)
    e["isBase64Encoded"] = False
    e["headers"].update(headers or {})
    return e


def http_v1_payload(method, path, body, ctype):
    e = rest(method, path, b64(body), True, ctype, stage="$default")
    e["version"] = "1.0"
    e["requestContext"]["path"] = path
    e["requestContext"]["stage"] = "$default"
    return e


def alb(method, path, body, ctype, query):
    e = sam("alb", "request", "--method", method, "--path", path)
    e["headers"]["content-type"] = ctype
    e["queryStringParameters"] = query
    e["body"] = b64(body)
    e["isBase64Encoded"] = True
    return e


def main():
    OUT.mkdir(exist_ok=True)
    form, form_type = multipart([("score_threshold", b"0.3", None, None),
                                 ("image", JPEG, "chelsea.jpg", "image/jpeg")])
    json_body = json.dumps({"image": "data:image/jpeg;base64," + b64(JPEG), "classes": ["cat"]})
    events = {
        # REST API (v1) proxy, binary media types configured: the gateway base64-encodes the JPEG.
        "rest-api-jpeg.json": rest("POST", "/detect", b64(JPEG), True, "image/jpeg", {"score_threshold": "0.3"}),
        # REST API, JSON body with a data-URL base64 image and a class filter.
        "rest-api-json.json": rest("POST", "/detect", json_body, False, "application/json"),
        "rest-api-model.json": rest("GET", "/model"),
        "rest-api-wrong-method.json": rest("GET", "/detect"),
        # HTTP API, payload format 1.0.
        "http-api-v1-jpeg.json": http_v1_payload("POST", "/detect", JPEG, "image/jpeg"),
        # HTTP API, payload format 2.0: binary bodies always arrive base64-encoded.
        "http-api-jpeg.json": http_v2("POST", "/detect", b64(JPEG), True, "image/jpeg", "classes=cat,dog"),
        "http-api-png.json": http_v2("POST", "/detect", b64(small_png()), True, "image/png"),
        "http-api-multipart.json": http_v2("POST", "/detect", b64(form), True, form_type),
        "http-api-health.json": http_v2("GET", "/health"),
        "http-api-not-an-image.json": http_v2("POST", "/detect", b64(b"hello, world"), True,
                                              "application/octet-stream"),
        "http-api-bad-parameter.json": http_v2("POST", "/detect", b64(JPEG), True, "image/jpeg",
                                               "score_threshold=2"),
        "http-api-unknown-route.json": http_v2("GET", "/favicon.ico"),
        # Lambda function URL: v2 shape, POST to the bare URL.
        "function-url-jpeg.json": function_url("POST", "/", JPEG, "image/jpeg"),
        # ALB target group: query strings arrive still percent-encoded.
        "alb-jpeg.json": alb("POST", "/detect", JPEG, "image/jpeg",
                             {"score_threshold": "0.3", "classes": "cat%2Cdog"}),
        # Several images in one request, boxes as fractions of each image.
        "http-api-images.json": http_v2("POST", "/detect", json.dumps(
            {"images": [b64(JPEG), {"image": b64(small_png())}], "box_format": "normalized"}),
            False, "application/json"),
        # Direct invocation (SDK, CLI, Step Functions).
        "direct-invoke.json": {"image": b64(JPEG), "score_threshold": 0.3},
        "direct-images.json": {"images": [b64(JPEG), {"image": b64(small_png())}], "max_detections": 2},
        # Other systems' protocols (docs/protocols.md), as their clients send them to a function URL.
        "function-url-tf-serving.json": json_body_event(
            "/v1/models/picodet-s-416-coco:predict", "application/json",
            {"signature_name": "serving_default", "instances": [{"b64": b64(JPEG)}]}),
        "function-url-rekognition.json": json_body_event(
            "/", "application/x-amz-json-1.1", {"Image": {"Bytes": b64(JPEG)}, "MaxLabels": 5},
            {"x-amz-target": "RekognitionService.DetectLabels"}),
        "function-url-open-inference.json": json_body_event(
            "/v2/models/picodet-s-416-coco/infer", "application/json",
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(JPEG)]}]}),
        # A direct invocation with Rekognition's DetectLabels request.
        "direct-rekognition.json": {"Image": {"Bytes": b64(JPEG)}, "MinConfidence": 50},
    }
    for name, event in events.items():
        (OUT / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"events/{name}")


if __name__ == "__main__":
    main()
