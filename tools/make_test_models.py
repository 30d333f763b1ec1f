#!/usr/bin/env python3
"""Small ONNX detectors with random weights, one per decoder family, and what the numpy reference
(tools/manifest_ref.py) detects with them; tests/it/heads.rs checks the Rust detection heads against it.

    make_test_models.py generate DIR   write the models, manifests, input image and expected.json
    make_test_models.py check DIR      rerun the reference on DIR's models; fail if expected.json differs

Each model maps a 64x64 image through strided convolutions (seeded random weights) to the output layout
of its family. The weights are random, the layouts are not: GFL (NanoDet/PicoDet: per-level class scores
and DFL bins; NanoDet-Plus: one combined output, no half-cell offset), YOLOX (one [1, N, 5 + C] grid output), YOLOv8 ([1, 4 + C, N]), TF Object Detection API
boxes/scores/classes/num_detections (NHWC input, normalised y/x boxes, 1-based float classes), an ONNX
NonMaxSuppression export (boxes/scores/classes with a data-dependent row count, int64 classes) and a DETR
set-prediction head (query logits and normalised centre boxes, no suppression). The input
image is 64x64, the models' input size, so no resampling stands between the two pipelines.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_ref  # noqa: E402

SIZE = 64
OPSET = 13
ROOT = Path(__file__).resolve().parent.parent


class Graph:
    """A tiny ONNX graph builder: every node gets a unique output name."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, dtype=np.float32):
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, stride, gain=1.0):
        """A stride x stride patch projection; weights scaled for unit-range outputs on unit inputs."""
        w = self.rng.normal(0, gain / np.sqrt(cin * stride * stride), (cout, cin, stride, stride))
        b = self.rng.normal(0, 0.5, cout)
        return self.op("Conv", [x, self.const(w), self.const(b)], kernel_shape=[stride, stride],
                       strides=[stride, stride])

    def rows(self, x, channels):
        """[1, C, h, w] -> [1, h*w, C] (row-major cells)."""
        flat = self.op("Reshape", [x, self.const([1, channels, -1], np.int64)])
        return self.op("Transpose", [flat], perm=[0, 2, 1])

    def slice_last(self, x, start, end):
        return self.op("Slice", [x, self.const([start], np.int64), self.const([end], np.int64),
                                 self.const([-1], np.int64)])

    def finish(self, path, inputs, outputs):
        """Outputs are names; their types and shapes come from ONNX shape inference."""
        graph = helper.make_graph(self.nodes, path.stem, inputs, [], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tools/make_test_models.py")
        model.ir_version = 8
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.value_info}
        model.graph.output.extend(inferred[name] for name in outputs)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))

    def rename(self, x, name):
        self.nodes.append(helper.make_node("Identity", [x], [name]))
        return name


def nchw_input(name="images"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, SIZE, SIZE])


def gfl(path):
    g, nc, bins = Graph(1), 3, 4
    outs = []
    for s in (8, 16):
        cls = g.rows(g.op("Sigmoid", [g.conv("input", 3, nc, s)]), nc)
        reg = g.rows(g.conv("input", 3, 4 * bins, s, gain=3.0), 4 * bins)
        outs += [g.rename(cls, f"cls_{s}"), g.rename(reg, f"reg_{s}")]
    g.finish(path, [nchw_input("input")], outs)
    return {
        "labels": ["red", "green", "blue"],
        "input": {"name": "input", "width": SIZE, "height": SIZE, "layout": "nchw", "color": "rgb",
                  "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                  "resize": "letterbox_center", "filter": "bilinear"},
        "decoder": {"family": "gfl", "strides": [8, 16], "reg_max": bins - 1,
                    "cls": ["cls_8", "cls_16"], "reg": ["reg_8", "reg_16"]},
        "defaults": {"score_threshold": 0.5, "iou_threshold": 0.5, "max_detections": 20},
    }


def nanodet_plus(path):
    """NanoDet-Plus export layout: one [1, cells, C + 4 * bins] output, class scores first, centres at
    col * stride (no half-cell offset)."""
    g, nc, bins = Graph(6), 4, 8
    levels = []
    for s in (8, 16, 32):
        cls = g.op("Sigmoid", [g.conv("data", 3, nc, s)])
        reg = g.conv("data", 3, 4 * bins, s, gain=3.0)
        levels.append(g.rows(g.op("Concat", [cls, reg], axis=1), nc + 4 * bins))
    g.rename(g.op("Concat", levels, axis=1), "output")
    g.finish(path, [nchw_input("data")], ["output"])
    return {
        "labels": ["w", "x", "y", "z"],
        "input": {"name": "data", "width": SIZE, "height": SIZE, "layout": "nchw", "color": "bgr",
                  "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395],
                  "resize": "stretch", "filter": "bilinear"},
        "decoder": {"family": "gfl", "strides": [8, 16, 32], "reg_max": bins - 1, "output": "output",
                    "cell_offset": 0.0},
        "defaults": {"score_threshold": 0.55, "iou_threshold": 0.6, "max_detections": 100},
    }


def yolox(path):
    g, nc = Graph(2), 4
    levels = [g.rows(g.conv("images", 3, 5 + nc, s, gain=1 / 128), 5 + nc) for s in (8, 16, 32)]
    raw = g.op("Concat", levels, axis=1)
    box = g.op("Tanh", [g.slice_last(raw, 0, 4)])
    scores = g.op("Sigmoid", [g.slice_last(raw, 4, 5 + nc)])
    g.rename(g.op("Concat", [box, scores], axis=2), "output")
    g.finish(path, [nchw_input()], ["output"])
    return {
        "labels": ["a", "b", "c", "d"],
        "input": {"name": "images", "width": SIZE, "height": SIZE, "layout": "nchw", "color": "bgr",
                  "scale": 1.0, "resize": "letterbox_top_left", "pad_value": 114, "filter": "bilinear"},
        "decoder": {"family": "yolox", "output": "output", "strides": [8, 16, 32]},
        "defaults": {"score_threshold": 0.3, "iou_threshold": 0.45, "max_detections": 20},
    }


def yolov8(path):
    g, nc = Graph(3), 5
    levels = []
    for s in (8, 16, 32):
        f = g.conv("images", 3, 4 + nc, s)
        levels.append(g.op("Reshape", [f, g.const([1, 4 + nc, -1], np.int64)]))
    raw = g.op("Concat", levels, axis=2)  # [1, 4 + nc, 84]
    first = lambda start, end: g.op("Slice", [raw, g.const([start], np.int64), g.const([end], np.int64),
                                              g.const([1], np.int64)])
    box = g.op("Mul", [g.op("Sigmoid", [first(0, 4)]), g.const(float(SIZE))])
    g.rename(g.op("Concat", [box, g.op("Sigmoid", [first(4, 4 + nc)])], axis=1), "output0")
    g.finish(path, [nchw_input()], ["output0"])
    return {
        "labels": ["one", "two", "three", "four", "five"],
        "input": {"name": "images", "width": SIZE, "height": SIZE, "layout": "nchw", "color": "rgb",
                  "scale": 1 / 255, "resize": "letterbox_center", "pad_value": 114, "filter": "bilinear"},
        "decoder": {"family": "yolov8", "output": 0},
        "defaults": {"score_threshold": 0.6, "iou_threshold": 0.7, "max_detections": 30},
    }


def tf_od_api(path):
    """NHWC input, 16 rows: normalised [y_min, x_min, y_max, x_max], 1-based float classes, a count."""
    g, nc = Graph(4), 3
    x = g.op("Transpose", ["input_tensor"], perm=[0, 3, 1, 2])
    f = g.rows(g.conv(x, 3, 4 + nc, 16), 4 + nc)  # [1, 16, 7]
    g.rename(g.op("Sigmoid", [g.slice_last(f, 0, 4)]), "detection_boxes")
    logits = g.slice_last(f, 4, 4 + nc)
    g.rename(g.op("ReduceMax", [g.op("Sigmoid", [logits])], axes=[2], keepdims=0), "detection_scores")
    one_based = g.op("Add", [g.op("ArgMax", [logits], axis=2, keepdims=0), g.const(1, np.int64)])
    g.rename(g.op("Cast", [one_based], to=TensorProto.FLOAT), "detection_classes")
    g.rename(g.const([12.0]), "num_detections")
    inp = helper.make_tensor_value_info("input_tensor", TensorProto.FLOAT, [1, SIZE, SIZE, 3])
    g.finish(path, [inp], ["detection_boxes", "detection_scores", "detection_classes", "num_detections"])
    return {
        "labels": ["cat", "dog", "bird"],
        "input": {"width": SIZE, "height": SIZE, "layout": "nhwc", "color": "rgb", "scale": 1 / 127.5,
                  "mean": [1.0, 1.0, 1.0], "resize": "stretch", "filter": "bilinear"},
        "decoder": {"family": "boxes_scores", "boxes": "detection_boxes", "scores": "detection_scores",
                    "classes": "detection_classes", "count": "num_detections", "box_order": "yxyx",
                    "coordinates": "normalized", "class_offset": 1},
        "defaults": {"score_threshold": 0.4, "iou_threshold": 1.0, "max_detections": 100},
    }


def onnx_nms(path):
    """ONNX NonMaxSuppression in the graph: pixel [x_min, y_min, x_max, y_max], int64 classes, no count."""
    g, nc = Graph(5), 2
    f = g.rows(g.conv("images", 3, 4 + nc, 8), 4 + nc)  # [1, 64, 6]
    corners = g.op("Mul", [g.op("Sigmoid", [g.slice_last(f, 0, 4)]), g.const(float(SIZE))])
    a, b = g.slice_last(corners, 0, 2), g.slice_last(corners, 2, 4)
    boxes = g.op("Concat", [g.op("Min", [a, b]), g.op("Max", [a, b])], axis=2)  # [1, 64, 4] xyxy
    scores = g.op("Transpose", [g.op("Sigmoid", [g.slice_last(f, 4, 4 + nc)])], perm=[0, 2, 1])
    # center_point_box=0 takes any diagonal corners: x/y order does not change the IoU.
    sel = g.op("NonMaxSuppression", [boxes, scores, g.const([5], np.int64), g.const([0.5]),
                                     g.const([0.2])])  # [K, 3]: batch, class, box
    col = lambda i: g.op("Squeeze", [g.slice_last(sel, i, i + 1), g.const([1], np.int64)])
    cls, idx = col(1), col(2)
    picked = g.op("Gather", [g.op("Squeeze", [boxes, g.const([0], np.int64)]), idx], axis=0)
    g.rename(g.op("Unsqueeze", [picked, g.const([0], np.int64)]), "boxes")
    batch_class_box = g.op("Concat", [g.slice_last(sel, 1, 2), g.slice_last(sel, 2, 3)], axis=1)
    picked_scores = g.op("GatherND", [g.op("Squeeze", [scores, g.const([0], np.int64)]), batch_class_box])
    g.rename(g.op("Unsqueeze", [picked_scores, g.const([0], np.int64)]), "scores")
    g.rename(g.op("Unsqueeze", [cls, g.const([0], np.int64)]), "classes")
    g.finish(path, [nchw_input()], ["boxes", "scores", "classes"])
    return {
        "labels": ["left", "right"],
        "input": {"width": SIZE, "height": SIZE, "layout": "nchw", "color": "rgb", "scale": 1 / 255,
                  "resize": "stretch", "filter": "bilinear"},
        "decoder": {"family": "boxes_scores", "boxes": "boxes", "scores": "scores", "classes": "classes",
                    "box_order": "xyxy", "coordinates": "pixels"},
        "defaults": {"score_threshold": 0.3, "iou_threshold": 1.0, "max_detections": 100},
    }


def detr(path):
    """A set-prediction head as D-FINE, DEIM and RT-DETR export it: 64 queries (here the cells of a stride-8
    grid), class logits [1, Q, C] and boxes [1, Q, 4] (cx, cy, w, h as fractions of the input)."""
    g, nc = Graph(7), 5
    rows = g.rows(g.conv("images", 3, nc + 4, 8, gain=0.5), nc + 4)  # [1, 64, nc + 4]
    g.rename(g.slice_last(rows, 0, nc), "pred_logits")
    g.rename(g.op("Sigmoid", [g.slice_last(rows, nc, nc + 4)]), "pred_boxes")
    g.finish(path, [nchw_input()], ["pred_logits", "pred_boxes"])
    return {
        "labels": ["north", "east", "south", "west", "centre"],
        "input": {"name": "images", "width": SIZE, "height": SIZE, "layout": "nchw", "color": "rgb",
                  "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                  "resize": "stretch", "filter": "bilinear"},
        "decoder": {"family": "detr", "logits": "pred_logits", "boxes": "pred_boxes", "top_k": 20},
        "defaults": {"score_threshold": 0.7, "iou_threshold": 0.5, "max_detections": 30},
    }


MODELS = {"gfl": gfl, "nanodet_plus": nanodet_plus, "yolox": yolox, "yolov8": yolov8, "tf_od_api": tf_od_api,
          "onnx_nms": onnx_nms, "detr": detr}


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


def write_manifest(path, name, m):
    lines = [f"# Generated by tools/make_test_models.py: random weights, for decoder tests only.",
             f'name = "test-{name}"', 'version = "1"', f'file = "{name}.onnx"',
             f"labels = {toml_value(m['labels'])}"]
    for table in ("input", "decoder", "defaults"):
        lines.append(f"\n[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in m[table].items()]
    path.write_text("\n".join(lines) + "\n")


def expected(out_dir):
    img = manifest_ref.load_rgb(out_dir / "input.png")
    result = {}
    for name in MODELS:
        manifest = manifest_ref.load_manifest(out_dir / f"{name}.toml")
        sess = manifest_ref.session(out_dir / f"{name}.onnx")
        result[name] = manifest_ref.detect(sess, manifest, img)
    return result


def generate(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    # A 64x64 crop of a real photo (skimage's chelsea, committed in tests/images), so scores vary.
    photo = manifest_ref.load_rgb(ROOT / "tests/images/chelsea.png")
    photo.crop((100, 20, 356, 276)).resize((SIZE, SIZE), manifest_ref.Image.BILINEAR).save(out_dir / "input.png")
    for name, build in MODELS.items():
        write_manifest(out_dir / f"{name}.toml", name, build(out_dir / f"{name}.onnx"))
    (out_dir / "expected.json").write_text(json.dumps(expected(out_dir), indent=1) + "\n")


def check(out_dir):
    want = json.loads((out_dir / "expected.json").read_text())
    got = expected(out_dir)
    bad = []
    for name in MODELS:
        a, b = want.get(name, []), got[name]
        if len(a) != len(b):
            bad.append(f"{name}: {len(a)} detections committed, {len(b)} now")
            continue
        for x, y in zip(a, b):
            if (x["class_id"] != y["class_id"] or abs(x["score"] - y["score"]) > 1e-5
                    or any(abs(x["box"][k] - y["box"][k]) > 1e-3 for k in x["box"])):
                bad.append(f"{name}: {x} != {y}")
    for line in bad:
        print(line, file=sys.stderr)
    counts = ", ".join(f"{n} {len(got[n])}" for n in MODELS)
    print(f"decoder references: {'MISMATCH' if bad else 'match'} ({counts} detections)")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "check"):
        sys.exit(__doc__)
    target = Path(sys.argv[2])
    sys.exit(generate(target) if sys.argv[1] == "generate" else check(target))
