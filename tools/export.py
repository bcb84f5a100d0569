"""Export a train.py checkpoint to ONNX, the way the quantizer expects it.

  python3 tools/export.py --ckpt runs/thermal_ft/best.pt --out models/det_thermal_ft.onnx \
      --modality thermal --description "..."

Contract: opset 17, input `images` float32 1x3x320x320 (preprocess.py), output `output0`
(1, 4+nc, 2100) = cx, cy, w, h (input px) + per-class sigmoid scores; exported from the model
in eval mode with TrainingMode.PRESERVE and no constant folding, so the BatchNormalization
nodes stay in the graph (zero-shot quantization reads their statistics).
Metadata: names, modality, imgsz, stride, description (+ task, version, params).
Checks: BN count > 0, onnx.checker, and (with onnxruntime importable) ORT vs torch output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model import NAMES, count_flops, count_params  # noqa: E402
from preprocess import IMGSZ  # noqa: E402
from train import load_checkpoint  # noqa: E402


def _inline_identity_initializers(m: onnx.ModelProto):
    """The TorchScript exporter shares byte-identical initializers (e.g. untouched BN
    statistics) through Identity nodes; give every such Identity output its own copy so each
    BatchNormalization reads plain initializers."""
    inits = {t.name: t for t in m.graph.initializer}
    keep = []
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)


def export(model: torch.nn.Module, out: Path, modality: str, description: str, extra_meta: dict | None = None):
    model = model.eval()
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    shapes = [(IMGSZ // s, IMGSZ // s) for s in (8, 16, 32)]
    model.detect.fixed_shapes = (1, shapes)  # constant reshape targets in the graph
    with torch.no_grad():
        model(x)  # build the anchor constants for this size
    torch.onnx.export(model, (x,), str(out), opset_version=17, dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      input_names=["images"], output_names=["output0"])
    model.detect.fixed_shapes = None
    m = onnx.load(str(out))
    names = {k: v for k, v in NAMES.items() if k < model.cfg["nc"]}
    meta = {
        "names": str(names),
        "modality": modality,
        "imgsz": str([IMGSZ, IMGSZ]),
        "stride": "32",
        "description": description,
        "task": "detect",
        "author": "thermalzsq",
        "license": "same as thermalzsq",
        "params": str(count_params(model)),
        "gflops": f"{count_flops(model):.3f}",
        "preprocess": "8-bit image/255, grey->3ch, letterbox to 320 (bilinear, centred, pad 114/255), see tools/preprocess.py",
        "output": "(1, 4+nc, A): cx, cy, w, h in input pixels, then per-class sigmoid scores",
    }
    meta.update(extra_meta or {})
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    _inline_identity_initializers(m)
    m.producer_name = "thermalzsq-tools"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    return m, x


def check(path: Path, model: torch.nn.Module, x: torch.Tensor) -> dict:
    m = onnx.load(str(path))
    ops = [n.op_type for n in m.graph.node]
    n_bn = ops.count("BatchNormalization")
    assert n_bn > 0, "no BatchNormalization node in the exported graph"
    assert "Identity" not in ops and "Shape" not in ops, "unexpected Identity/Shape nodes"
    inits = {t.name for t in m.graph.initializer}
    assert all(all(i in inits for i in n.input[1:]) for n in m.graph.node if n.op_type == "BatchNormalization")
    info = {"bn_nodes": n_bn, "nodes": len(ops), "opset": m.opset_import[0].version,
            "size_mb": round(path.stat().st_size / 2 ** 20, 2),
            "input": [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim],
            "output": [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]}
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not importable (PYTHONPATH=/work/main/.ortlib?): skipped the ORT check")
        return info
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = [x, torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))]
    diff_box, diff_cls = 0.0, 0.0
    for xi in xs:
        with torch.no_grad():
            ref = model.eval()(xi).numpy()
        got = sess.run(None, {"images": xi.numpy()})[0]
        assert got.shape == ref.shape, (got.shape, ref.shape)
        diff_box = max(diff_box, float(np.abs(got[:, :4] - ref[:, :4]).max()))
        diff_cls = max(diff_cls, float(np.abs(got[:, 4:] - ref[:, 4:]).max()))
    info.update({"ort_max_abs_diff_box_px": diff_box, "ort_max_abs_diff_scores": diff_cls})
    assert diff_box < 1e-2 and diff_cls < 1e-4, info
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--modality", choices=["thermal", "rgb"], default=None)
    ap.add_argument("--description", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, ck = load_checkpoint(a.ckpt)
    modality = a.modality or ck.get("modality", "thermal")
    desc = a.description or f"thermalzsq demo detector ZsqDet ({modality}), person/car/bicycle, trained on zsq synth"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _, x = export(model, out, modality, desc)
    info = check(out, model, x)
    print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in info.items()))


if __name__ == "__main__":
    main()
