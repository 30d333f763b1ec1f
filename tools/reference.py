#!/usr/bin/env python3
"""The NanoDet pipeline as a Python user would write it: PIL decode (EXIF transpose), numpy letterbox,
onnxruntime, GFL/DFL decode and per-class NMS. It is the reference the Rust core is checked against.

    reference.py goldens OUT_DIR IMAGE...   write the golden files the Rust parity tests read
    reference.py check GOLDEN_DIR IMAGE...   regenerate the goldens and compare them with GOLDEN_DIR
    reference.py detect MODEL IMAGE...       print detections as JSON Lines

Goldens, per image NAME:
  NAME.letterboxed.png   the 416x416 RGB letterboxed input (so both sides normalise the same pixels)
  NAME.fp32.f32          raw fp32-model outputs on that input: little-endian f32, outputs concatenated in
                         model order (cls_8, reg_8, cls_16, reg_16, cls_32, reg_32)
and detections.json: the whole pipeline's detections per image for the fp32 and the int8 model.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

SIZE = 416
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)
STRIDES = (8, 16, 32)
REG_MAX = 10
OUTPUTS = ["cls_8", "reg_8", "cls_16", "reg_16", "cls_32", "reg_32"]
LABELS = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]


def load_rgb(path):
    """Decode, apply EXIF orientation, flatten alpha onto white, convert to 8-bit RGB."""
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


def letterbox(img):
    """Centred letterbox: returns the 416x416 RGB canvas and (scale_x, scale_y, dx, dy)."""
    w, h = img.size
    scale = min(SIZE / w, SIZE / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    dx, dy = (SIZE - nw) // 2, (SIZE - nh) // 2
    canvas = Image.new("RGB", (SIZE, SIZE), (0, 0, 0))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), (dx, dy))
    return canvas, (nw / w, nh / h, dx, dy)


def normalise(canvas):
    bgr = np.asarray(canvas, dtype=np.float32)[:, :, ::-1]
    return ((bgr - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)[None].astype(np.float32)


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def run(sess, x):
    outs = sess.run(OUTPUTS, {"input": x})
    return dict(zip(OUTPUTS, outs))


def iou(a, b):
    ix = np.maximum(0, np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]))
    iy = np.maximum(0, np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]))
    inter = ix * iy
    area = lambda r: np.maximum(0, r[..., 2] - r[..., 0]) * np.maximum(0, r[..., 3] - r[..., 1])
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0)


def decode(outs, score_thr=0.3, iou_thr=0.6, top_k=1000, keep=100):
    boxes, scores, classes = [], [], []
    for s in STRIDES:
        cls = outs[f"cls_{s}"][0]
        reg = outs[f"reg_{s}"][0]
        grid = SIZE // s
        best = cls.max(axis=1)
        idx = np.argsort(-best, kind="stable")[:top_k]
        for i in idx:
            if best[i] < score_thr:
                continue
            row, col = divmod(int(i), grid)
            cx, cy = (col + 0.5) * s, (row + 0.5) * s
            bins = reg[i].reshape(4, REG_MAX + 1).astype(np.float64)
            p = np.exp(bins - bins.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            d = (p * np.arange(REG_MAX + 1)).sum(axis=1) * s
            box = np.clip([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], 0, SIZE)
            for c in np.nonzero(cls[i] >= score_thr)[0]:
                boxes.append(box)
                scores.append(float(cls[i, c]))
                classes.append(int(c))
    kept = []
    boxes, scores, classes = np.array(boxes).reshape(-1, 4), np.array(scores), np.array(classes)
    for c in np.unique(classes):
        sel = np.nonzero(classes == c)[0]
        sel = sel[np.argsort(-scores[sel], kind="stable")]
        while len(sel):
            kept.append(sel[0])
            if len(sel) == 1:
                break
            sel = sel[1:][iou(boxes[sel[0]], boxes[sel[1:]]) <= iou_thr]
    kept = sorted(kept, key=lambda k: -scores[k])[:keep]
    return [(int(classes[k]), float(scores[k]), boxes[k]) for k in kept]


def to_image(dets, geometry, size):
    sx, sy, dx, dy = geometry
    w, h = size
    out = []
    for c, score, b in dets:
        x0, x1 = [float(np.clip((v - dx) / sx, 0, w)) for v in (b[0], b[2])]
        y0, y1 = [float(np.clip((v - dy) / sy, 0, h)) for v in (b[1], b[3])]
        out.append({"label": LABELS[c], "class_id": c, "score": round(score, 6),
                    "box": {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}})
    return out


def detect(sess, path, score_thr=0.3):
    img = load_rgb(path)
    canvas, geometry = letterbox(img)
    return to_image(decode(run(sess, normalise(canvas)), score_thr), geometry, img.size)


def goldens(out_dir, images):
    root = Path(__file__).resolve().parent.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = session(root / "model" / "nanodet-g-416.fp32.onnx")
    int8 = session(root / "model" / "nanodet-g-416.int8.onnx")
    dets = {}
    for path in map(Path, images):
        name = path.stem
        canvas, _ = letterbox(load_rgb(path))
        canvas.save(out_dir / f"{name}.letterboxed.png")
        outs = run(fp32, normalise(canvas))
        np.concatenate([outs[n].ravel() for n in OUTPUTS]).astype("<f4").tofile(out_dir / f"{name}.fp32.f32")
        dets[name] = {"file": path.name, "fp32": detect(fp32, path), "int8": detect(int8, path)}
        top = [(d["label"], d["score"]) for d in dets[name]["fp32"][:3]]
        print(name, top)
    (out_dir / "detections.json").write_text(json.dumps(
        {"score_threshold": 0.3, "iou_threshold": 0.6, "images": dets}, indent=1) + "\n")


def check(golden_dir, images):
    """The committed goldens are what this script and onnxruntime produce today."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        goldens(fresh, images)
        worst = 0.0
        for path in map(Path, images):
            name = path.stem
            a = np.asarray(Image.open(golden_dir / f"{name}.letterboxed.png"))
            b = np.asarray(Image.open(fresh / f"{name}.letterboxed.png"))
            if not np.array_equal(a, b):
                raise SystemExit(f"{name}: letterboxed input differs from the golden")
            a = np.fromfile(golden_dir / f"{name}.fp32.f32", dtype="<f4")
            b = np.fromfile(fresh / f"{name}.fp32.f32", dtype="<f4")
            worst = max(worst, float(np.abs(a - b).max()))
        if worst > 1e-4:
            raise SystemExit(f"raw outputs differ from the goldens by {worst}")
        old = json.loads((golden_dir / "detections.json").read_text())
        new = json.loads((fresh / "detections.json").read_text())
        for name, sides in old["images"].items():
            for side in ("fp32", "int8"):
                a, b = sides[side], new["images"][name][side]
                if [d["label"] for d in a] != [d["label"] for d in b] or any(
                        abs(x["score"] - y["score"]) > 1e-4 for x, y in zip(a, b)):
                    raise SystemExit(f"{name} {side}: detections differ from the goldens")
        print(f"reference check: goldens reproduced (raw max abs diff {worst:.1e})")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "goldens":
        goldens(Path(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(Path(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "detect":
        sess = session(sys.argv[2])
        for path in sys.argv[3:]:
            print(json.dumps({"file": path, "detections": detect(sess, path)}))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
