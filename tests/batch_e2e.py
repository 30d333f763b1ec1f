"""End-to-end test of the batch path against a real S3-compatible server and real S3 notifications.

    python tests/batch_e2e.py [BINARY]     (default target/release/object-detector)

Starts, on 127.0.0.1 and free ports, moto_server (S3 and SQS), a TCP relay in front of it that the
test can cut (S3 going away mid-test), `cargo lambda watch` (the Lambda emulator) and the function
binary behind it; stops them all by PID at the end. Then, as the Lambda SQS poller would:

1. a bucket notifies a queue of every new object (no prefix filter, so the function's own results
   notify the queue too); photos are uploaded with spaces and non-ASCII characters in their names,
   with a corrupt JPEG and a text file among them;
2. the queue's real messages (S3's test event first) are handed to the function as the SQS event the
   poller builds; every photo gets a result with the detections the API answers for the same bytes,
   the bad files get error results, the test event is acknowledged;
3. the notifications of those results are handed back: all skipped, nothing new written (no loop);
4. S3 goes away: every message of a batch is reported in batchItemFailures and nothing is written;
   S3 comes back, the queue redelivers them, and every result appears;
5. a direct S3 event and a Distributed Map item batch go through the same path;
6. a batch of 10 photos is timed: images per second, and the split between S3 I/O and inference
   from the function's per-object log lines (printed; not a pass/fail figure).
"""

import base64
import io
import json
import pathlib
import socket
import sys
import tempfile
import threading
import time

import boto3
from botocore.config import Config
from PIL import Image

from harness import ROOT, Processes, free_port, function_env, wait_for_port

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/object-detector")
BUCKET = "photos"
QUEUE = "photo-events"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


class Relay:
    """A TCP relay to the S3 server that can be cut (listener and live connections) and restored."""

    def __init__(self, port, target):
        self.port, self.target = port, target
        self.listener, self.conns, self.lock = None, [], threading.Lock()

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []


def jpeg(path, size=None, quality=90):
    image = Image.open(path).convert("RGB")
    if size:
        image = image.resize(size)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def main():
    if not BIN.exists():
        sys.exit(f"batch e2e: {BIN} not built")
    work = pathlib.Path(tempfile.mkdtemp())
    s3_port, relay_port, lambda_port, annotator_port, exporter_port = (free_port() for _ in range(5))
    venv_bin = pathlib.Path(sys.executable).parent
    with Processes(work) as procs:
        try:
            procs.start([venv_bin / "moto_server", "-H", "127.0.0.1", "-p", s3_port], "moto.log")
            wait_for_port(s3_port, "moto_server")
            relay = Relay(relay_port, s3_port)
            relay.start()
            procs.emulator(lambda_port, "watch.log")
            env = function_env(lambda_port, **CREDENTIALS, AWS_REGION=REGION,
                               AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{relay_port}",
                               S3_FORCE_PATH_STYLE="true", METRICS="off")
            function = procs.start([BIN], "fn.log", stdout="fn.out", env=env)
            # A second function, writing annotated pictures beside the results, behind its own
            # emulator (the emulator serves the package's binary names).
            procs.emulator(annotator_port, "watch-annotator.log")
            annotator = function_env(annotator_port, **CREDENTIALS, AWS_REGION=REGION,
                                     AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{relay_port}",
                                     S3_FORCE_PATH_STYLE="true", METRICS="off", ANNOTATE="jpeg")
            procs.start([BIN], "annotator.log", stdout="annotator.out", env=annotator)
            # A third, writing its results as Pascal VOC annotations.
            procs.emulator(exporter_port, "watch-exporter.log")
            exporter = function_env(exporter_port, **CREDENTIALS, AWS_REGION=REGION,
                                    AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{relay_port}",
                                    S3_FORCE_PATH_STYLE="true", METRICS="off", OUTPUT_FORMAT="voc")
            procs.start([BIN], "exporter.log", stdout="exporter.out", env=exporter)
            run(work, work / "fn.log", relay, s3_port, lambda_port, annotator_port, exporter_port)
            check("the function process stayed up", function.poll() is None, function.returncode)
        except Exception as e:  # noqa: BLE001 - reported with the logs below
            check("the test ran to its end", False, repr(e))
    if failures:
        for name in ("fn.log", "annotator.log", "moto.log", "watch.log"):
            text = (work / name).read_text(errors="replace") if (work / name).exists() else ""
            print(f"--- {name} (last 3000 characters)\n{text[-3000:]}")
        sys.exit(f"batch e2e: {len(failures)} failed: {failures}")
    print("batch e2e: all passed")


def run(work, fn_log, relay, s3_port, lambda_port, annotator_port, exporter_port):
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    s3 = session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}")
    sqs = session.client("sqs", endpoint_url=f"http://127.0.0.1:{s3_port}")
    config = Config(read_timeout=120, retries={"max_attempts": 0})
    lam = session.client("lambda", endpoint_url=f"http://127.0.0.1:{lambda_port}", config=config)
    annotating = session.client("lambda", endpoint_url=f"http://127.0.0.1:{annotator_port}", config=config)
    exporting = session.client("lambda", endpoint_url=f"http://127.0.0.1:{exporter_port}", config=config)

    def invoke(event, client=lam):
        out = client.invoke(FunctionName="object-detector", Payload=json.dumps(event).encode())
        return out.get("FunctionError"), json.loads(out["Payload"].read() or b"null")

    s3.create_bucket(Bucket=BUCKET)
    queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})

    def receive(n, seconds=20):
        """The next n messages, as the Lambda SQS poller would take them."""
        got, deadline = [], time.time() + seconds
        while len(got) < n and time.time() < deadline:
            out = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      AttributeNames=["All"])
            got += out.get("Messages", [])
        return got

    def sqs_event(messages):
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": REGION} for m in messages]}

    def delete(messages, failed_ids=()):
        """What the poller does with a partial batch response: deletes all but the failed ones."""
        for m in messages:
            if m["MessageId"] not in failed_ids:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    def result(key):
        body = s3.get_object(Bucket=BUCKET, Key=f"detections/{key}.json")["Body"].read()
        return json.loads(body)

    def results():
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="detections/").get("Contents", [])
        return sorted(o["Key"] for o in listed)

    images = ROOT / "tests/images"
    photos = {
        "incoming/red flower.jpg": (images / "chelsea.jpg").read_bytes(),
        "incoming/café/写真 1.png": (images / "astronaut.png").read_bytes(),
        "incoming/a+b (1).jpg": (images / "coffee.jpg").read_bytes(),
    }
    corrupt = (images / "coffee.jpg").read_bytes()[:2000]
    bad = {"incoming/broken.jpg": corrupt, "incoming/notes.txt": b"not a photo, just text\n"}

    # 1-2. The test event, then one notification per upload.
    test_event = receive(1)
    check("configuring the notification sends S3's test event",
          len(test_event) == 1 and "s3:TestEvent" in test_event[0]["Body"], test_event)
    for key, data in {**photos, **bad}.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    messages = test_event + receive(len(photos) + len(bad))
    bodies = [json.loads(m["Body"]) for m in messages[1:]]
    encoded = [b["Records"][0]["s3"]["object"]["key"] for b in bodies]
    # S3 writes `incoming/red+flower.jpg`; moto also escapes the slash. Both decode to the key.
    check("notification keys arrive URL-encoded", any("red+flower.jpg" in k for k in encoded), encoded)
    error, answer = invoke(sqs_event(messages))
    check("SQS batch: nothing to retry", error is None and answer == {"batchItemFailures": []},
          (error, answer))
    delete(messages)
    for key, data in photos.items():
        try:
            got = result(key)
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            check(f"result for {key!r}", False, e)
            continue
        error, api = invoke({"image": base64.b64encode(data).decode()})
        check(f"result for {key!r} has the API's detections for the same bytes",
              error is None and got["detections"] == api["detections"] and got["model"] == api["model"]
              and len(got["detections"]) > 0, (got.get("detections"), api))
        check(f"result for {key!r} names its source",
              got["source"]["bucket"] == BUCKET and got["source"]["key"] == key
              and got["source"]["size"] == len(data) and got["source"]["etag"], got.get("source"))
    for key, code in (("incoming/broken.jpg", "invalid_image"), ("incoming/notes.txt", "not_an_image")):
        got = result(key)
        check(f"error result for {key!r} is {code}",
              got.get("error", {}).get("code") == code and got["model"]["name"] and "detections" not in got,
              got)

    # 3. The results' own notifications come back: skipped, nothing written, nothing to retry.
    written = results()
    check("one result per object, nothing else", len(written) == len(photos) + len(bad), written)
    echoes = receive(len(written))
    error, answer = invoke(sqs_event(echoes))
    check("notifications of results are acknowledged", error is None and answer == {"batchItemFailures": []},
          (error, answer))
    delete(echoes)
    check("results retrigger nothing", results() == written and receive(1, 3) == [], results())
    skipped = [json.loads(line) for line in fn_log.read_text().splitlines()
               if '"outcome":"skipped"' in line]
    check("each echo is logged as skipped", len(skipped) == len(echoes), len(skipped))

    # 4. S3 goes away mid-test: every message is retried, nothing written; then nothing is lost.
    late = {"incoming/late one.jpg": jpeg(images / "rocket.png"),
            "incoming/late two.jpg": jpeg(images / "camera.png")}
    for key, data in late.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    pending = receive(len(late))
    relay.stop()
    error, answer = invoke(sqs_event(pending))
    failed_ids = sorted(f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", []))
    check("S3 down: every message is in batchItemFailures",
          error is None and failed_ids == sorted(m["MessageId"] for m in pending), (error, answer))
    delete(pending, failed_ids)
    relay.start()
    check("S3 down: nothing was written", results() == written, results())
    redelivered = receive(len(late), 30)
    check("the queue redelivers the failed messages",
          sorted(m["MessageId"] for m in redelivered) == failed_ids, redelivered)
    error, answer = invoke(sqs_event(redelivered))
    check("S3 back: the redelivered batch succeeds", error is None and answer == {"batchItemFailures": []},
          (error, answer))
    delete(redelivered)
    for key in late:
        check(f"nothing lost: {key!r} has its result", "detections" in result(key))
    receive(len(late), 5)  # the new results' own notifications, not needed below

    # 5. A direct S3 event (S3 invoking the function) and a Distributed Map item batch.
    s3.put_object(Bucket=BUCKET, Key="incoming/direct.jpg", Body=photos["incoming/red flower.jpg"])
    direct_body = json.loads(receive(1)[0]["Body"])
    error, answer = invoke(direct_body)
    check("direct S3 event: a summary with the result key",
          error is None and answer["detected"] == 1
          and answer["results"][0]["result_key"] == "detections/incoming/direct.jpg.json", (error, answer))
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="incoming/")["Contents"]
    items = [{"Etag": o["ETag"], "Key": o["Key"], "LastModified": o["LastModified"].isoformat(),
              "Size": o["Size"], "StorageClass": o.get("StorageClass", "STANDARD")}
             for o in listed if o["Key"].endswith((".jpg", ".png"))]
    error, answer = invoke({"BatchInput": {"bucket": BUCKET}, "Items": items})
    check("Distributed Map item batch: every photo re-detected, same result keys",
          error is None and answer["detected"] == len(items) - 1 and answer["failed"] == 1
          and {r["key"] for r in answer["results"]} == {i["Key"] for i in items}, (error, answer))
    check("reprocessing writes the same result keys (idempotent)",
          set(results()) == set(written) | {f"detections/{k}.json" for k in [*late, "incoming/direct.jpg"]},
          results())

    # With ANNOTATE=jpeg the picture is written beside the result, and the result names it.
    error, answer = invoke({"bucket": BUCKET, "keys": ["incoming/red flower.jpg"]}, annotating)
    got = result("incoming/red flower.jpg")
    picture = s3.get_object(Bucket=BUCKET, Key="detections/incoming/red flower.jpg.jpg")
    check("ANNOTATE=jpeg writes the annotated picture beside the result",
          error is None and got.get("annotated_key") == "detections/incoming/red flower.jpg.jpg"
          and picture["ContentType"] == "image/jpeg" and picture["Body"].read()[:3] == b"\xff\xd8\xff",
          (error, answer, got.get("annotated_key")))

    # With OUTPUT_FORMAT=voc the result is a Pascal VOC annotation of the JSON result's detections; an
    # object that is not an image still gets its JSON error result.
    error, answer = invoke({"bucket": BUCKET, "keys": ["incoming/red flower.jpg", "incoming/notes.txt"]}, exporting)
    voc = s3.get_object(Bucket=BUCKET, Key="detections/incoming/red flower.jpg.xml")
    xml = voc["Body"].read().decode()
    names = [part.split("</name>")[0] for part in xml.split("<name>")[1:]]
    want = [d["label"] for d in result("incoming/red flower.jpg")["detections"]]
    check("OUTPUT_FORMAT=voc writes a VOC annotation of the result's detections, failures as JSON",
          error is None and answer["detected"] == 1 and answer["failed"] == 1
          and voc["ContentType"] == "application/xml" and "<filename>red flower.jpg</filename>" in xml
          and names == want and "error" in result("incoming/notes.txt"),
          (error, answer, names, want))

    # 6. Throughput: one SQS batch of 10 photos, on a drained queue.
    while leftovers := receive(10, 3):
        delete(leftovers)
    sources = ["astronaut.png", "camera.png", "chelsea.jpg", "coffee.jpg", "rocket.png", "chelsea.png",
               "coffee.png"]
    batch = {f"bench/{i:02d} {name}.jpg": jpeg(images / name, quality=85 + i)
             for i, name in enumerate(sources + sources[:3])}
    for key, data in batch.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    ten = receive(len(batch))
    lines_before = len(fn_log.read_text().splitlines())
    start = time.perf_counter()
    error, answer = invoke(sqs_event(ten))
    elapsed = time.perf_counter() - start
    check("a batch of 10: nothing to retry", error is None and answer == {"batchItemFailures": []},
          (error, answer))
    objects = [json.loads(line) for line in fn_log.read_text().splitlines()[lines_before:]
               if '"message":"object"' in line]
    fetch = sum(o["fetch_ms"] for o in objects)
    detect = sum(o["detect_ms"] for o in objects)
    write = sum(o["write_ms"] for o in objects)
    print(f"batch of {len(objects)} photos: {elapsed * 1000:.0f} ms through the emulator, "
          f"{len(objects) / elapsed:.2f} images/s; per object summed: S3 GET {fetch:.0f} ms, "
          f"detection (decode, model, boxes) {detect:.0f} ms, S3 PUT {write:.0f} ms")


if __name__ == "__main__":
    main()
