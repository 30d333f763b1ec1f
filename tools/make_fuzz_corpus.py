#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ (committed; small):

- image_decode: an 8x8 photo crop in every accepted format, a truncated JPEG and PNG, an EXIF-rotated
  JPEG, bytes of formats the service refuses (TIFF header, text), and small hostile structures from
  tools/hostile_images.py (scan bombs, Huffman-table bombs, JPEG coding variants, GIF frames larger than the screen, PNG
  ICC-profile and APNG frame bombs, an animated WebP, a lossless WebP naming 300 prefix-code groups).
- handle_event: every sample in events/ with its image replaced by a small one (the events' shapes are
  what matters), plus a direct invocation and malformed shapes.
- http_request: the target's own layout (mode byte, query, 0xFF, content type, 0xFF, body) for raw,
  base64, JSON and multipart bodies.
- options: name=value lines as clients send them.

    .venv/bin/python tools/make_fuzz_corpus.py
"""
import base64
import io
import json
import pathlib
import shutil

from PIL import Image

import hostile_images

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz/corpus"


def small_images():
    photo = Image.open(ROOT / "tests/images/chelsea.jpg").convert("RGB").resize((8, 8))
    out = {}
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp")]:
        buf = io.BytesIO()
        photo.save(buf, fmt)
        out[ext] = buf.getvalue()
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.rotate(90, expand=True).save(rotated, "JPEG", exif=exif)
    out["exif6.jpg"] = rotated.getvalue()
    out["cut.jpg"] = out["jpg"][: len(out["jpg"]) // 2]
    out["cut.png"] = out["png"][: len(out["png"]) // 2]
    out["tiff"] = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 16
    out["text"] = b"hello, not an image\n"
    h = hostile_images
    out.update({
        "hostile-scans-101.jpg": h.jpeg_scan_bomb(64, 48, 1, 101),
        "hostile-scans-40-colour.jpg": h.jpeg_scan_bomb(256, 192, 3, 40),
        "hostile-progressive-9.jpg": h.jpeg_scan_bomb(64, 48, 1, 9),
        "hostile-arithmetic.jpg": h.jpeg_variant(0xC9),
        "hostile-huffman-tables.jpg": h.jpeg_huffman_tables(1002, 64, 48),
        "hostile-12bit.jpg": h.jpeg_variant(0xC1, 12),
        "hostile-frame-over-screen.gif": h.gif((4, 3), (400, 300), (1, 0)),
        "hostile-frame-inside-screen.gif": h.gif((64, 48), (16, 16), (8, 8)),
        "hostile-iccp.png": h.png_iccp_bomb(32 << 20),
        "hostile-apng.png": h.apng_oversized_frames(fdat_zeros=4 << 20),
        "hostile-animated.webp": h.webp_animated((64, 48)),
        "hostile-groups.webp": h.webp_huffman_groups(300),
    })
    return out


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    images = small_images()
    for name, data in images.items():
        write("image_decode", name, data)

    jpeg64 = base64.b64encode(images["jpg"]).decode()
    full_jpeg64 = base64.b64encode((ROOT / "tests/images/chelsea.jpg").read_bytes()).decode()
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "image" in event:
            event["image"] = jpeg64
        elif event.get("body") and event.get("isBase64Encoded"):
            event["body"] = jpeg64
        elif event.get("body"):
            try:
                body = json.loads(event["body"])
                if "image" in body:
                    body["image"] = jpeg64
                event["body"] = json.dumps(body)
            except (ValueError, TypeError):
                pass
        # Other protocols carry the photo elsewhere: the small JPEG in its place.
        write("handle_event", path.name, json.dumps(event).replace(full_jpeg64, jpeg64))
    # Object events (S3, SQS, EventBridge, item batches) as they are: no image inside.
    for path in sorted((ROOT / "events" / "objects").glob("*.json")):
        write("handle_event", f"objects-{path.name}", path.read_text())
    write("handle_event", "no-shape.json", '{"hello": 1}')
    write("handle_event", "direct-bad.json", '{"image": "@@@", "classes": ["cat"]}')
    write("handle_event", "records.json", '{"Records": [{"s3": {}}]}')
    # Images from elsewhere: a closed local port, a refused address, an S3 endpoint that is not there.
    write("handle_event", "direct-url.json", '{"image_url": "http://127.0.0.1:9/cat.jpg"}')
    write("handle_event", "direct-s3.json", '{"s3": {"bucket": "b", "key": "k", "version_id": "v"}}')
    write("handle_event", "direct-list.json", json.dumps(
        {"images": [jpeg64, {"image_url": "https://169.254.169.254/"}, {"s3": "s3://b/k"}], "annotate": True}))

    form = (
        b"--X\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + images["jpg"] + b"\r\n"
        b"--X\r\nContent-Disposition: form-data; name=\"score_threshold\"\r\n\r\n0.3\r\n--X--\r\n"
    )
    json_body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(images["png"]).decode(),
                            "classes": ["cat", "dog"], "annotate": True}).encode()
    png_b64 = {"b64": base64.b64encode(images["png"]).decode()}
    tf_rows = json.dumps({"signature_name": "serving_default",
                          "instances": [png_b64, {"image_bytes": png_b64}]}).encode()
    tf_columns = json.dumps({"inputs": {"image_bytes": [png_b64]}}).encode()
    images_body = json.dumps({"images": [png_b64["b64"], {"image_url": "https://[::ffff:a9fe:a9fe]/"},
                                         {"s3": {"bucket": "b", "key": "k"}}]}).encode()
    # Mode byte: content type index in the high nibble, body mode in the low bits (0 text, 1 base64 of
    # the bytes, 2 bytes claimed to be base64), bit 2 OPTIONS, bit 3 TF Serving's predict route.
    for name, mode, query, body in [
        ("raw-jpeg", 0x01, b"classes=cat,dog&max_detections=3", images["jpg"]),
        ("raw-png-octet", 0x31, b"", images["png"]),
        ("json", 0x10, b"", json_body),
        ("json-base64", 0x11, b"format=jpeg", json_body),
        ("multipart", 0x21, b"", form),
        ("bad-base64", 0x02, b"", b"***"),
        ("preflight", 0x04, b"", b""),
        ("custom-type", 0xF1, b"", images["gif"]),
        ("tf-serving-rows", 0x18, b"max_detections=5", tf_rows),
        ("tf-serving-columns", 0x19, b"", tf_columns),
        ("json-images", 0x10, b"box_format=normalized", images_body),
    ]:
        write("http_request", name, bytes([mode]) + query + b"\xff" + b"image/gif" + b"\xff" + body)

    for name, text in [
        ("all", "score_threshold=0.3\niou_threshold=0.5\nmax_detections=10\nclasses=cat,dog\n"
                "format=jpeg\nannotate=true\nannotate_max_side=640\njpeg_quality=80"),
        ("bad", "score_threshold=2\nclasses=unicorn\nformat=gif"),
    ]:
        write("options", name, text)
    print(f"fuzz corpora written under {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
