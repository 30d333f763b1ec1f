"""End-to-end test of the other systems' protocols (docs/protocols.md), with the requests those systems'
clients send, against the real function behind `cargo lambda watch`'s function-URL front.

    python tests/protocols_e2e.py [BINARY]     (default target/release/object-detector)

Starts moto_server (S3), the emulator and the function on 127.0.0.1 and free ports, stops them by PID at the
end. For each test photo, `POST /detect` gives the reference detections; then:

- TF Serving's REST API as its clients send it (plain HTTP JSON: `{"instances": [{"b64": ...}]}` rows,
  `{"inputs": ...}` columns, after a base path and at the root): the boxes, scores and COCO ids equal
  `/detect`'s after the conversion to `[ymin, xmin, ymax, xmax]` fractions (within 0.01); the status and
  metadata routes; another model's name, a wrong method and a bad image in TF Serving's error shape;
- Rekognition's DetectLabels through boto3's own `rekognition` client, its endpoint the function URL (the
  image as Bytes, and as an S3Object in moto_server's S3), and as a direct invocation through boto3's
  Lambda client: every detection is an instance of its label (title case), its box and confidence
  `/detect`'s; MinConfidence, MaxLabels and the label filters; errors as the client's own exceptions;
- the Open Inference Protocol through `tritonclient[http]` pointed at the function URL's base path: server
  and model health and metadata, `infer` with binary tensor data both ways and with JSON, the tensors held
  to `/detect`'s detections; a bad image and an unknown model as the client's exceptions.
"""

import base64
import json
import pathlib
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request

import boto3
import numpy as np
import tritonclient.http as triton
from botocore.config import Config
from tritonclient.utils import InferenceServerException

from harness import ROOT, Processes, free_port, function_env, wait_for_port

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/object-detector")
PHOTOS = ["tests/images/chelsea.jpg", "tests/images/astronaut.png", "tests/images/coffee.jpg"]

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
BUCKET = "photos"

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


def label_problem(labels, detections, width, height):
    """None when every detection is one instance of its label, box and confidence equal (0.01, 1e-3)."""
    instances = sum(len(label["Instances"]) for label in labels)
    if instances != len(detections):
        return f"{instances} instances for {len(detections)} detections"
    for d in detections:
        title = d["label"].title()
        label = next((lb for lb in labels if lb["Name"] == title), None)
        if label is None:
            return f"no label {title} in {[lb['Name'] for lb in labels]}"
        b = d["box"]
        want = [(b["x_max"] - b["x_min"]) / width, (b["y_max"] - b["y_min"]) / height,
                b["x_min"] / width, b["y_min"] / height]
        if not any(abs(i["Confidence"] - d["score"] * 100) < 1e-3
                   and all(abs(i["BoundingBox"][k] - w) < 0.01
                           for k, w in zip(("Width", "Height", "Left", "Top"), want))
                   for i in label["Instances"]):
            return f"{title}: no instance {want} at {d['score'] * 100} in {label['Instances']}"
    return None


def rekognition(url, lambda_port, s3_port, photos):
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
    config = Config(read_timeout=120, retries={"max_attempts": 0})
    client = session.client("rekognition", endpoint_url=url, config=config)
    s3 = session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
    lam = session.client("lambda", endpoint_url=f"http://127.0.0.1:{lambda_port}", config=config)
    s3.create_bucket(Bucket=BUCKET)

    for path, (data, native) in photos.items():
        width, height = native["image"]["width"], native["image"]["height"]
        # /detect's reference at Rekognition's default MinConfidence, 55.
        expected = [d for d in native["detections"] if d["score"] >= 0.55]
        answer = client.detect_labels(Image={"Bytes": data})
        problem = label_problem(answer["Labels"], expected, width, height)
        check(f"Rekognition detect_labels, Bytes, {path}", problem is None, problem)

        key = "in/" + pathlib.Path(path).name
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        answer = client.detect_labels(Image={"S3Object": {"Bucket": BUCKET, "Name": key}}, MinConfidence=55)
        problem = label_problem(answer["Labels"], expected, width, height)
        check(f"Rekognition detect_labels, S3Object in moto_server, {path}", problem is None, problem)

        out = lam.invoke(FunctionName="object-detector",
                         Payload=json.dumps({"Image": {"Bytes": base64.b64encode(data).decode()}}).encode())
        answer = json.loads(out["Payload"].read())
        problem = out.get("FunctionError") or label_problem(answer.get("Labels", []), expected, width, height)
        check(f"Rekognition-shaped direct invocation, boto3's Lambda client, {path}", problem is None, problem)

    data, native = photos["tests/images/coffee.jpg"]
    answer = client.detect_labels(Image={"Bytes": data}, MinConfidence=0, MaxLabels=1)
    top = max(native["detections"], key=lambda d: d["score"])["label"].title()
    check("Rekognition MaxLabels 1 keeps the most confident label",
          [label["Name"] for label in answer["Labels"]] == [top], answer["Labels"])
    answer = client.detect_labels(Image={"Bytes": data}, MinConfidence=0,
                                  Settings={"GeneralLabels": {"LabelInclusionFilters": ["Cup"]}})
    check("Rekognition label inclusion filter", {lb["Name"] for lb in answer["Labels"]} == {"Cup"},
          answer["Labels"])
    check("Rekognition LabelModelVersion names the model",
          answer["LabelModelVersion"] == f"{native['model']['name']} {native['model']['version']}",
          answer["LabelModelVersion"])

    def raises(name, exception, call):
        try:
            call()
        except client.exceptions.ClientError as e:
            got = e.response["Error"]["Code"]
            check(name, got == exception, f"{got}: {e}")
        else:
            check(name, False, "no error")

    raises("Rekognition: a text file is InvalidImageFormatException", "InvalidImageFormatException",
           lambda: client.detect_labels(Image={"Bytes": b"not a photo"}))
    raises("Rekognition: a missing S3 object is InvalidS3ObjectException", "InvalidS3ObjectException",
           lambda: client.detect_labels(Image={"S3Object": {"Bucket": BUCKET, "Name": "in/none.jpg"}}))
    raises("Rekognition: image properties are InvalidParameterException", "InvalidParameterException",
           lambda: client.detect_labels(Image={"Bytes": data}, Features=["IMAGE_PROPERTIES"]))
    raises("Rekognition: another operation is UnknownOperationException", "UnknownOperationException",
           lambda: client.detect_faces(Image={"Bytes": data}))
    # A function error: Lambda answers the Invoke API with 200 and X-Amz-Function-Error, cargo lambda's
    # emulator with a 500 that botocore cannot read, so the Invoke API is called as boto3 calls it.
    status, error = call(f"http://127.0.0.1:{lambda_port}/2015-03-31/functions/object-detector/invocations",
                         {"Image": {"Bytes": base64.b64encode(b"not a photo").decode()}})
    check("Rekognition-shaped direct invocation fails as InvalidImageFormatException",
          isinstance(error, dict) and error.get("errorType") == "InvalidImageFormatException", f"{status} {error}")


def tensors_problem(result, photos_in_order, coco_ids):
    """None when the tensors hold /detect's detections of each photo, in order, zero-padded."""
    boxes, scores = result.as_numpy("detection_boxes"), result.as_numpy("detection_scores")
    classes, counts = result.as_numpy("detection_classes"), result.as_numpy("num_detections")
    for i, (_, native) in enumerate(photos_in_order):
        want = tf_boxes(native["detections"], native["image"]["width"], native["image"]["height"], coco_ids)
        n = int(counts[i])
        got = {"detection_boxes": boxes[i][:n].tolist(), "detection_scores": scores[i][:n].tolist(),
               "detection_classes": classes[i][:n].tolist(), "num_detections": float(n)}
        problem = same_prediction(got, want)
        if problem:
            return f"image {i}: {problem}"
        if scores[i][n:].any() or boxes[i][n:].any():
            return f"image {i}: padding is not zero"
    return None


def open_inference(url, model, photos, coco_ids):
    client = triton.InferenceServerClient(url=url.removeprefix("http://"), network_timeout=120,
                                          connection_timeout=120)
    check("OIP server live and ready, model ready",
          client.is_server_live() and client.is_server_ready() and client.is_model_ready(model))
    meta = client.get_model_metadata(model)
    check("OIP model metadata: one BYTES input, four outputs",
          [i["datatype"] for i in meta["inputs"]] == ["BYTES"]
          and [o["name"] for o in meta["outputs"]] == ["detection_boxes", "detection_scores",
                                                       "detection_classes", "num_detections"], meta)
    check("OIP server metadata names the binary extension",
          "binary_tensor_data" in client.get_server_metadata().get("extensions", []))

    # tritonclient sends binary bodies without a Content-Type. A function URL base64-encodes such a body;
    # cargo lambda's emulator answers 500 before the function sees it, so binary requests here name theirs.
    binary = {"Content-Type": "application/octet-stream"}
    items = list(photos.items())
    image = triton.InferInput("image", [len(items)], "BYTES")
    image.set_data_from_numpy(np.array([data for _, (data, _) in items], dtype=np.object_), binary_data=True)
    result = client.infer(model, [image], headers=binary)
    problem = tensors_problem(result, [p for _, p in items], coco_ids)
    check("OIP infer, three photos as binary tensor data, binary outputs", problem is None, problem)

    one = triton.InferInput("image", [1], "BYTES")
    one.set_data_from_numpy(np.array([base64.b64encode(items[0][1][0]).decode()], dtype=np.object_),
                            binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False)
               for name in ("detection_boxes", "detection_scores", "detection_classes", "num_detections")]
    result = client.infer(model, [one], outputs=outputs, model_version="1")
    problem = tensors_problem(result, [items[0][1]], coco_ids)
    check("OIP infer, base64 JSON data and JSON outputs, version 1", problem is None, problem)

    result = client.infer(model, [one], outputs=outputs, parameters={"classes": "cat", "max_detections": 1})
    check("OIP detection options in the request's parameters",
          result.as_numpy("detection_classes").tolist() == [[17.0]], result.get_response())

    def raises(name, status, prefix, call):
        try:
            call()
        except InferenceServerException as e:
            check(name, e.status() == status and e.message().startswith(prefix), f"{e.status()} {e.message()}")
        else:
            check(name, False, "no error")

    text = triton.InferInput("image", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"not a photo"], dtype=np.object_), binary_data=True)
    raises("OIP: a text file is 422 not_an_image", "422", "not_an_image: image 0: ",
           lambda: client.infer(model, [text], headers=binary))
    raises("OIP: another model is 404", "404", "not_found: ", lambda: client.get_model_metadata("resnet"))
    raises("OIP: a float input is 400", "400", "invalid_parameter: ", lambda: client.infer(
        model, [triton.InferInput("image", [1], "FP32").set_data_from_numpy(np.zeros(1, np.float32))],
        headers=binary))
    client.close()


def main():
    with tempfile.TemporaryDirectory() as logs, Processes(logs) as procs:
        port, s3_port = free_port(), free_port()
        venv_bin = pathlib.Path(sys.executable).parent
        procs.start([venv_bin / "moto_server", "-H", "127.0.0.1", "-p", s3_port], "moto.log")
        wait_for_port(s3_port, "moto_server")
        procs.emulator(port, "watch.log")
        env = function_env(port, **CREDENTIALS, AWS_REGION=REGION, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{s3_port}",
                           S3_FORCE_PATH_STYLE="true")
        procs.start([BIN], "function.log", stdout="function.out", env=env)
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
        rekognition(url, port, s3_port, photos)
        open_inference(url, model, photos, manifest["category_ids"])

        log = (pathlib.Path(logs) / "function.log").read_text()
        check("the function logged no error", '"level":"ERROR"' not in log,
              [line for line in log.splitlines() if '"level":"ERROR"' in line][:3])
    print(f"protocols e2e: {len(failures)} failed" if failures else "protocols e2e: all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
