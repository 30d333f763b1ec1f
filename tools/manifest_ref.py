#!/usr/bin/env python3
"""The manifest-driven pipeline in numpy: what the Rust core does for any model and manifest, written the
plain way, as the reference its decoders are checked against.

    manifest_ref.py MODEL MANIFEST IMAGE...   print each image's detections as one JSON line

Pre-processing follows the manifest with PIL (resize filter, centred or top-left letterbox, stretch, pad
value, colour order, scale/mean/std, NCHW or NHWC); onnxruntime runs the model on one thread; the decoders
(GFL, YOLOX, YOLOv8, boxes/scores, DETR) and the per-class NMS follow model/README.md. Boxes come back in image
pixels, like the product's.
"""
import json
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def embedded_manifest():
    """The manifest a build embeds: DETECTOR_MODEL_MANIFEST, else build.rs's default."""
    return ROOT / os.environ.get("DETECTOR_MODEL_MANIFEST", "model/picodet-s-416-coco.toml")


def fp32_twin(manifest_path):
    """The unquantized file beside a manifest whose `file` is an int8 export (`X.int8.onnx` -> `X.fp32.onnx`)."""
    manifest_path = Path(manifest_path)
    file = load_manifest(manifest_path)["file"]
    return manifest_path.parent / file.replace(".int8.", ".fp32.")


def load_manifest(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_rgb(path):
    """Decode, apply EXIF orientation, flatten alpha onto white, convert to 8-bit RGB."""
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    return img.convert("RGB")


def canvas(img, spec):
    """The model-sized RGB picture the manifest's resize makes of `img` (before normalisation), and the
    geometry (scale_x, scale_y, offset_x, offset_y)."""
    W, H = spec["width"], spec["height"]
    w, h = img.size
    mode = spec["resize"]
    if mode == "stretch":
        nw, nh = W, H
    else:
        s = min(W / w, H / h)
        nw, nh = min(max(1, round(w * s)), W), min(max(1, round(h * s)), H)
    dx, dy = ((W - nw) // 2, (H - nh) // 2) if mode == "letterbox_center" else (0, 0)
    pad = spec.get("pad_value", 0)
    out = Image.new("RGB", (W, H), (pad, pad, pad))
    resized = img if (nw, nh) == (w, h) else img.resize((nw, nh), FILTERS[spec.get("filter", "bilinear")])
    out.paste(resized, (dx, dy))
    return out, (nw / w, nh / h, dx, dy)


def normalise(picture, spec):
    """The input tensor of a model-sized RGB picture: colour order, scale/mean/std, layout, batch of one."""
    x = np.asarray(picture, dtype=np.float32)
    if spec["color"] == "bgr":
        x = x[:, :, ::-1]
    scale = np.float32(spec.get("scale", 1.0))
    mean = np.array(spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    std = np.array(spec.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)
    x = (x * scale - mean) / std
    if spec.get("layout", "nchw") == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def preprocess(img, spec):
    """Returns the input tensor and the geometry (scale_x, scale_y, offset_x, offset_y)."""
    picture, geometry = canvas(img, spec)
    return normalise(picture, spec), geometry


def session(model):
    ort.set_default_logger_severity(3)  # Paddle exports list weights as inputs: one warning per weight
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def run(sess, manifest, x):
    name = manifest["input"].get("name") or sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, {name: x})


def output(names, outs, ref):
    return outs[ref] if isinstance(ref, int) else outs[names.index(ref)]


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(cands, iou_thr, max_det):
    """Per class, greedy: drop a box whose IoU with a better kept box of its class exceeds iou_thr."""
    kept = []
    for c in sorted({c[0] for c in cands}):
        mine = sorted((x for x in cands if x[0] == c), key=lambda x: -x[1])
        first = len(kept)
        for cand in mine:
            if len(kept) - first == max_det:
                break
            if all(iou(k[2], cand[2]) <= iou_thr for k in kept[first:]):
                kept.append(cand)
    kept.sort(key=lambda x: -x[1])
    return kept[:max_det]


def clip(box, W, H):
    b = np.asarray(box, dtype=np.float64)
    if not np.all(np.isfinite(b)):
        return None
    x0, x1 = sorted((b[0], b[2]))
    y0, y1 = sorted((b[1], b[3]))
    return [min(max(x0, 0), W), min(max(y0, 0), H), min(max(x1, 0), W), min(max(y1, 0), H)]


def top_k(cands, k):
    """The k best (ties by position); cands are (position, class, score, box)."""
    if len(cands) > k:
        cands = sorted(cands, key=lambda c: (-c[2], c[0]))[:k]
    return [c[1:] for c in cands]


def gfl_levels(d, names, outs, nc, W, H):
    """Per level (stride, class scores [n, nc], box logits [n, 4, bins]), from separate or combined outputs."""
    bins = d["reg_max"] + 1
    if "output" in d:
        combined, start = output(names, outs, d["output"])[0], 0
        for s in d["strides"]:
            n = -(-W // s) * -(-H // s)
            rows = combined[start:start + n]
            start += n
            yield s, rows[:, :nc], rows[:, nc:].reshape(-1, 4, bins)
    else:
        for s, cref, rref in zip(d["strides"], d["cls"], d["reg"]):
            yield s, output(names, outs, cref)[0], output(names, outs, rref)[0].reshape(-1, 4, bins)


def decode_gfl(d, names, outs, nc, W, H, thr):
    bins = d["reg_max"] + 1
    offset = d.get("cell_offset", 0.5)
    out = []
    for s, cls, reg in gfl_levels(d, names, outs, nc, W, H):
        gw = -(-W // s)
        best = cls.max(axis=1)
        locs = [i for i in range(len(cls)) if best[i] >= thr]
        k = d.get("top_k_per_level", 1000)
        if len(locs) > k:
            locs = sorted(sorted(locs, key=lambda i: (-best[i], i))[:k])
        for i in locs:
            cx, cy = (i % gw + offset) * s, (i // gw + offset) * s
            logits = reg[i] - reg[i].max(axis=1, keepdims=True)
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            dist = (p * np.arange(bins)).sum(axis=1) * s
            box = clip([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]], W, H)
            for c in range(nc):
                if cls[i, c] >= thr:
                    out.append((c, float(cls[i, c]), box))
    return out


def decode_yolox(d, names, outs, nc, W, H, thr):
    o = output(names, outs, d.get("output", 0))[0]
    decoded = d.get("boxes", "grid") == "decoded"
    cands, row = [], 0
    for s in d.get("strides", [8, 16, 32]):
        gw, gh = -(-W // s), -(-H // s)
        for local in range(gw * gh):
            r = o[row]
            c = int(np.argmax(r[5:]))
            score = float(r[4] * r[5 + c])
            if score >= thr:
                if decoded:
                    cx, cy, w, h = r[:4]
                else:
                    cx, cy = (r[0] + local % gw) * s, (r[1] + local // gw) * s
                    w, h = np.exp(r[2]) * s, np.exp(r[3]) * s
                box = clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], W, H)
                if box is not None:
                    cands.append((row, c, score, box))
            row += 1
    return top_k(cands, d.get("top_k", 1000))


def decode_yolov8(d, names, outs, nc, W, H, thr):
    o = output(names, outs, d.get("output", 0))[0]
    if o.shape[0] != 4 + nc:
        o = o.T
    cands = []
    for a in range(o.shape[1]):
        c = int(np.argmax(o[4:, a]))
        score = float(o[4 + c, a])
        if score >= thr:
            cx, cy, w, h = o[:4, a]
            box = clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], W, H)
            if box is not None:
                cands.append((a, c, score, box))
    return top_k(cands, d.get("top_k", 1000))


def decode_boxes_scores(d, names, outs, nc, W, H, thr):
    boxes = output(names, outs, d["boxes"]).reshape(-1, 4).astype(np.float64)
    scores = output(names, outs, d["scores"]).reshape(-1)
    classes = output(names, outs, d["classes"]).reshape(-1)
    rows = min(len(boxes), len(scores), len(classes))
    if "count" in d:
        rows = min(rows, max(0, int(output(names, outs, d["count"]).reshape(-1)[0])))
    sx, sy = (W, H) if d["coordinates"] == "normalized" else (1, 1)
    out = []
    for i in range(rows):
        c = int(np.round(classes[i])) - d.get("class_offset", 0)
        if not (scores[i] >= thr and 0 <= c < nc):
            continue
        b = boxes[i]
        order = d.get("box_order", "yxyx")
        if order == "yxyx":
            b = [b[1], b[0], b[3], b[2]]
        elif order == "cxcywh":
            b = [b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2]
        box = clip([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], W, H)
        if box is not None:
            out.append((c, float(scores[i]), box))
    return out


def decode_detr(d, names, outs, nc, W, H, thr):
    """Every query-class pair at or above thr, with the query's box (cx, cy, w, h as fractions of the
    input); the top_k best."""
    logits = output(names, outs, d["logits"])[0]
    boxes = output(names, outs, d["boxes"])[0]
    scores = logits if d.get("activation", "sigmoid") == "none" else 1 / (1 + np.exp(-logits))
    cands = []
    for q in range(logits.shape[0]):
        cx, cy, w, h = boxes[q] * np.array([W, H, W, H], dtype=np.float32)
        for c in range(nc):
            if scores[q, c] >= thr:
                box = clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], W, H)
                if box is not None:
                    cands.append((q * nc + c, c, float(scores[q, c]), box))
    return top_k(cands, d.get("top_k", 300))


DECODERS = {
    "gfl": decode_gfl,
    "yolox": decode_yolox,
    "yolov8": decode_yolov8,
    "boxes_scores": decode_boxes_scores,
    "detr": decode_detr,
}
# Families that predict a set (one query per object): no suppression, only the ranking and the cap.
SET_PREDICTION = {"detr"}


def detect(sess, manifest, img, score_threshold=None):
    """`img`'s detections with the manifest's defaults (`score_threshold` overrides its threshold)."""
    spec, d = manifest["input"], manifest["decoder"]
    defaults = {"score_threshold": 0.35, "iou_threshold": 0.6, "max_detections": 100}
    defaults.update(manifest.get("defaults", {}))
    if score_threshold is not None:
        defaults["score_threshold"] = score_threshold
    x, (sx, sy, dx, dy) = preprocess(img, spec)
    names, outs = run(sess, manifest, x)
    W, H = spec["width"], spec["height"]
    nc = len(manifest["labels"])
    cands = DECODERS[d["family"]](d, names, outs, nc, W, H, defaults["score_threshold"])
    iou_thr = 1.0 if d["family"] in SET_PREDICTION else defaults["iou_threshold"]
    kept = nms(cands, iou_thr, defaults["max_detections"])
    w, h = img.size

    def to_image(x, y):
        return min(max((x - dx) / sx, 0.0), w), min(max((y - dy) / sy, 0.0), h)

    detections = []
    for c, score, b in kept:
        x0, y0 = to_image(b[0], b[1])
        x1, y1 = to_image(b[2], b[3])
        detections.append({
            "label": manifest["labels"][c], "class_id": c, "score": score,
            "box": {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1},
        })
    return detections


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    model, manifest, images = argv[0], load_manifest(argv[1]), argv[2:]
    sess = session(model)
    for path in images:
        print(json.dumps({"file": path, "detections": detect(sess, manifest, load_rgb(path))}))


if __name__ == "__main__":
    main(sys.argv[1:])
