#!/usr/bin/env python3
"""Reproduce model/picodet-s-416-coco.{fp32,int8}.onnx from PaddleDetection's own ONNX export of PP-PicoDet-S-416.

Source: picodet_s_416_coco.onnx (PaddleDetection release/2.3 legacy PicoDet, exported by Paddle2ONNX, opset 11),
as published in GitHub hpc203/picodet-onnxruntime @dfe4d6cd, coco/picodet_s_416_coco.onnx; sha256 checked below.
Steps (model/README.md says why each exists):
  1. The 279 weights the export also lists as graph inputs leave the inputs (a Paddle export habit: a
     runtime must then treat every weight as replaceable, so onnxruntime skips constant folding and
     tract takes 0.8 s to load it). The one real input stays: `image` [1, 3, 416, 416].
  2. The outputs get names that say what they are: cls_8, cls_16, cls_32, cls_64 (class scores, sigmoid
     applied) and reg_8 ... reg_64 (box distributions), in the export's own order.
  3. onnxruntime's basic graph optimizations, offline, fold what is constant (shape arithmetic, constant
     subgraphs) and drop identities; only standard ONNX operators come out.
  4. The opset goes from 11 to 14 (onnx's version converter): per-channel DequantizeLinear needs 13,
     HardSwish 14.
  5. Paddle's hard-swish chains, Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6), become one HardSwish each
     (87 of them): the same function in one element-wise operator, and a graph tract optimizes faster.
  6. Weight-only int8, as the NanoDet-g model: every Conv weight becomes int8 with a symmetric per-output-
     channel scale feeding a DequantizeLinear; activations stay float (tract folds the dequantization at
     load time). The fp32 model of step 5 is written too: parity tests and the reference run it.

Usage: export_picodet.py SOURCE_ONNX OUT_DIR
"""
import hashlib
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper, version_converter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_nanodet import finish, quantize_conv_weights  # noqa: E402

SOURCE_SHA256 = "cdab77bdde16e4f76bec734c4e5791801d1739e4c7ec1995e0e110e04300d0c2"
OUTPUT_NAMES = ["cls_8", "cls_16", "cls_32", "cls_64", "reg_8", "reg_16", "reg_32", "reg_64"]
STEM = "picodet-s-416-coco"


def drop_weight_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    weights = {i.name for i in g.initializer}
    kept = [i for i in g.input if i.name not in weights]
    if [i.name for i in kept] != ["image"]:
        raise SystemExit(f"expected one real input, image; found {[i.name for i in kept]}")
    print(f"dropped {len(g.input) - len(kept)} weights from the graph inputs")
    del g.input[:]
    g.input.extend(kept)
    return model


def rename_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    if len(g.output) != len(OUTPUT_NAMES):
        raise SystemExit(f"expected {len(OUTPUT_NAMES)} outputs, found {len(g.output)}")
    renames = {o.name: new for o, new in zip(g.output, OUTPUT_NAMES)}
    for node in g.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for o in g.output:
        o.name = renames[o.name]
    return model


def fold(model: onnx.ModelProto) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.onnx", Path(tmp) / "folded.onnx"
        onnx.save(model, src)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3  # it lists every unused initializer it drops
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(out)
    domains = {n.domain for n in folded.graph.node} - {"", "ai.onnx"}
    if domains:
        raise SystemExit(f"folding brought in non-standard operators: {domains}")
    # onnxruntime declares every domain it knows (com.microsoft, ai.onnx.ml...); keep the one used.
    kept = [o for o in folded.opset_import if o.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    print(f"folded: {len(model.graph.node)} -> {len(folded.graph.node)} nodes")
    return folded


def same_outputs(source: Path, derived: Path) -> None:
    """The derived fp32 model answers as the source does, on a fixed random image."""
    import numpy as np
    x = np.random.default_rng(0).normal(0.0, 1.0, (1, 3, 416, 416)).astype(np.float32)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # the source's weights-as-inputs warnings, one per weight

    def run(path):
        session = ort.InferenceSession(str(path), quiet, providers=["CPUExecutionProvider"])
        return session.run(None, {"image": x})

    worst = max(float(np.abs(a - b).max()) for a, b in zip(run(source), run(derived)))
    print(f"{derived.name} vs the source, all 8 outputs: max abs diff {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("the derived model does not answer as the source does")


def fuse_hard_swish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Paddle writes hard-swish as Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6): four operators and
    their constants, 87 times. Each chain becomes one HardSwish (opset 14), `x * max(0, min(1, x/6 + 1/2))`,
    the same function: one element-wise pass instead of four, and a graph a third smaller to optimize."""
    g = model.graph
    constant = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    constant.update({i.name: numpy_helper.to_array(i) for i in g.initializer})
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def is_value(name, value):
        return name in constant and constant[name].size == 1 and float(constant[name].reshape(-1)[0]) == value

    def only_use(node):
        return len(consumers.get(node.output[0], [])) == 1 and node.output[0] not in {o.name for o in g.output}

    dropped, fused = set(), []
    for div in (n for n in g.node if n.op_type == "Div" and is_value(n.input[1], 6.0)):
        mul = producer.get(div.input[0])
        if mul is None or mul.op_type != "Mul" or not only_use(mul):
            continue
        for x, other in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            clip = producer.get(other)
            if clip is None or clip.op_type != "Clip" or not only_use(clip):
                continue
            if not (is_value(clip.input[1], 0.0) and is_value(clip.input[2], 6.0)):
                continue
            add = producer.get(clip.input[0])
            if add is None or add.op_type != "Add" or not only_use(add):
                continue
            if sorted([add.input[0] == x, is_value(add.input[1], 3.0)]) != [True, True]:
                continue
            dropped.update(id(n) for n in (add, clip, mul, div))
            fused.append((div, helper.make_node("HardSwish", [x], [div.output[0]], name=div.name + "_hardswish")))
            break
    replacement = {id(div): node for div, node in fused}
    nodes = [replacement.get(id(n), n) for n in g.node if id(n) not in dropped or id(n) in replacement]
    del g.node[:]
    g.node.extend(nodes)
    print(f"fused {len(fused)} hard-swish chains into HardSwish")
    return model


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{source}: sha256 {digest}, expected {SOURCE_SHA256}")
    out.mkdir(parents=True, exist_ok=True)
    model = fold(rename_outputs(drop_weight_inputs(onnx.load(source))))
    fp32 = version_converter.convert_version(model, 14)
    fp32 = fuse_hard_swish(fp32)
    # The converter keeps the producer's name; say who made this file.
    fp32.producer_name, fp32.producer_version = "object-detector tools/export_picodet.py", "1"
    finish(fp32, out / f"{STEM}.fp32.onnx")
    same_outputs(source, out / f"{STEM}.fp32.onnx")
    int8 = onnx.ModelProto()
    int8.CopyFrom(fp32)
    finish(quantize_conv_weights(int8), out / f"{STEM}.int8.onnx")


if __name__ == "__main__":
    main()
