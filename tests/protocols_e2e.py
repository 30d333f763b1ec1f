"""End-to-end test of the other systems' protocols (docs/protocols.md), with the requests those systems'
clients send, against the real function behind `cargo lambda watch`'s function-URL front.

    python tests/protocols_e2e.py [BINARY]     (default target/release/object-detector)

Starts the emulator and the function on 127.0.0.1 and free ports, stops both by PID at the end. For each
test photo, `POST /detect` gives the reference detections; then:

- TF Serving's REST API as its clients send it (plain HTTP JSON: `{"instances": [{"b64": ...}]}` rows,
  `{"inputs": ...}` columns, after a base path and at the root): the boxes, scores and COCO ids equal
  `/detect`'s after the conversion to `[ymin, xmin, ymax, xmax]` fractions (within 0.01); the status and
  metadata routes; another model's name, a wrong method and a bad image in TF Serving's error shape.
"""

import base64
import json
import pathlib
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request

from harness import ROOT, Processes, free_port, function_env, wait_for_port

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/object-detector")
PHOTOS = ["tests/images/chelsea.jpg", "tests/images/astronaut.png", "tests/images/coffee.jpg"]

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def call(url, body=None, method=None, headers=None):
    """Status and body (parsed when JSON) of one request."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and not (headers or {}).get("Content-Type"):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def tf_boxes(detections, width, height, coco_ids):
    """`/detect`'s detections as TF Serving's outputs, with the manifest's COCO category ids."""
    return {
        "detection_boxes": [[d["box"]["y_min"] / height, d["box"]["x_min"] / width,
                             d["box"]["y_max"] / height, d["box"]["x_max"] / width] for d in detections],
        "detection_scores": [d["score"] for d in detections],
        "detection_classes": [float(coco_ids[d["class_id"]]) for d in detections],
        "num_detections": float(len(detections)),
    }


def same_prediction(got, want):
    """Equal counts, classes and scores (1e-5), boxes within 0.01."""
    if got.get("num_detections") != want["num_detections"]:
        return f"num_detections {got.get('num_detections')} vs {want['num_detections']}"
    if got["detection_classes"] != want["detection_classes"]:
        return f"classes {got['detection_classes']} vs {want['detection_classes']}"
    for a, b in zip(got["detection_scores"], want["detection_scores"]):
        if abs(a - b) > 1e-5:
            return f"score {a} vs {b}"
    for a, b in zip(got["detection_boxes"], want["detection_boxes"]):
        if len(a) != 4 or max(abs(x - y) for x, y in zip(a, b)) > 0.01:
            return f"box {a} vs {b}"
    return None


def tf_serving(url, model, photos, coco_ids):
    b64 = {path: {"b64": base64.b64encode(data).decode()} for path, (data, _) in photos.items()}
    wants = {path: tf_boxes(r["detections"], r["image"]["width"], r["image"]["height"], coco_ids)
             for path, (_, r) in photos.items()}
    paths = list(photos)

    status, body = call(f"{url}/v1/models/{model}:predict", {"instances": [b64[p] for p in paths]})
    ok = status == 200 and isinstance(body, dict) and len(body.get("predictions", [])) == len(paths)
    problems = [same_prediction(body["predictions"][i], wants[p]) for i, p in enumerate(paths)] if ok else []
    check("TF Serving rows, three photos in one request", ok and not any(problems),
          f"{status} {problems or str(body)[:300]}")

    rows = {"signature_name": "serving_default", "instances": [{"image_bytes": b64[paths[0]]}]}
    status, body = call(f"{url}/vision/api/v1/models/{model}/versions/1:predict", rows)
    problem = same_prediction(body["predictions"][0], wants[paths[0]]) if status == 200 else str(body)
    check("TF Serving rows of named inputs, after a base path, version 1", problem is None, problem)

    columns = {"inputs": {"image_bytes": [b64[paths[1]], b64[paths[2]]]}}
    status, body = call(f"{url}/v1/models/{model}/labels/stable:predict", columns)
    outputs = body.get("outputs", {}) if isinstance(body, dict) else {}
    problems = []
    for i, p in enumerate(paths[1:]):
        got = {k: outputs.get(k, [None] * 2)[i] for k in wants[p]}
        problems.append(same_prediction(got, wants[p]))
    check("TF Serving columns, by label", status == 200 and not any(problems), f"{status} {problems or body}")

    status, body = call(f"{url}/v1/models/{model}:predict?classes=cat&score_threshold=0.5",
                        {"instances": [b64[paths[0]]]})
    classes = body["predictions"][0]["detection_classes"] if status == 200 else body
    check("TF Serving options in the query string", classes == [17.0], f"{status} {classes}")

    status, body = call(f"{url}/v1/models/{model}")
    check("TF Serving model status", status == 200
          and body["model_version_status"] == [{"version": "1", "state": "AVAILABLE",
                                                "status": {"error_code": "OK", "error_message": ""}}], body)
    status, body = call(f"{url}/v1/models/{model}/metadata")
    signature = (body or {}).get("metadata", {}).get("signature_def", {}).get("signature_def", {}) \
        .get("serving_default", {}) if status == 200 else {}
    check("TF Serving metadata", status == 200 and body["model_spec"]["name"] == model
          and set(signature.get("outputs", {})) == {"detection_boxes", "detection_scores",
                                                    "detection_classes", "num_detections"}, body)

    def error(name, want_status, want_prefix, *args, **kwargs):
        status, body = call(*args, **kwargs)
        text = body.get("error") if isinstance(body, dict) else None
        check(name, status == want_status and isinstance(text, str) and text.startswith(want_prefix),
              f"{status} {body}")

    error("TF Serving: another model is 404 in its words", 404,
          "not_found: Servable not found for request: Latest(ssd_mobilenet)",
          f"{url}/v1/models/ssd_mobilenet:predict", {"instances": [b64[paths[0]]]})
    error("TF Serving: another version is 404", 404, "not_found: Servable not found for request: Specific(",
          f"{url}/v1/models/{model}/versions/3")
    error("TF Serving: GET on predict is 405", 405, "method_not_allowed: ", f"{url}/v1/models/{model}:predict")
    error("TF Serving: a text file among the images", 422, "not_an_image: image 1: ",
          f"{url}/v1/models/{model}:predict",
          {"instances": [b64[paths[0]], {"b64": base64.b64encode(b"not a photo").decode()}]})
    error("TF Serving: pixel arrays are refused", 400, "invalid_parameter: ",
          f"{url}/v1/models/{model}:predict", {"instances": [[[[0, 0, 0]]]]})
    error("TF Serving: not JSON", 400, "invalid_json: ", f"{url}/v1/models/{model}:predict", b"{\"instances\": ")


def main():
    with tempfile.TemporaryDirectory() as logs, Processes(logs) as procs:
        port = free_port()
        procs.emulator(port, "watch.log")
        procs.start([BIN], "function.log", stdout="function.out", env=function_env(port))
        url = f"http://127.0.0.1:{port}/lambda-url/object-detector"
        wait_for_port(port, "the emulator")

        photos = {}
        for path in PHOTOS:
            data = (ROOT / path).read_bytes()
            status, body = call(f"{url}/detect", data, headers={"Content-Type": "application/octet-stream"})
            if status != 200:
                sys.exit(f"/detect on {path}: {status} {body}")
            photos[path] = (data, body)
        model = photos[PHOTOS[0]][1]["model"]["name"]
        counts = ", ".join(f"{p}: {len(r['detections'])}" for p, (_, r) in photos.items())
        print(f"/detect, detections per photo: {counts}")
        # The COCO ids from the manifest of that name (model/<name>.toml, what build.rs embeds).
        manifest = tomllib.loads((ROOT / "model" / f"{model}.toml").read_text())

        tf_serving(url, model, photos, manifest["category_ids"])

        log = (pathlib.Path(logs) / "function.log").read_text()
        check("the function logged no error", '"level":"ERROR"' not in log,
              [line for line in log.splitlines() if '"level":"ERROR"' in line][:3])
    print(f"protocols e2e: {len(failures)} failed" if failures else "protocols e2e: all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
