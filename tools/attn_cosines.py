"""Where does int8 lose on an attention block? Runs a float32 model and its `zsq quantize`
QDQ version on a few held-out images with the tensors of the C2PSA path exposed, and prints
the cosine and relative error of int8 vs fp32 per tensor (attention input, qkv, q^T k,
scaled logits = Softmax input, Softmax output, v attn^T, positional conv, projection, FFN,
C2PSA output, the model output).

  PYTHONPATH=.ortlib python tools/attn_cosines.py FP32.onnx INT8.onnx --images DIR/thermal8

In the QDQ model a float tensor T reappears as T_dequantized after its QuantizeLinear /
DequantizeLinear pair; the cosine is taken on that (the value the next op reads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from preprocess import letterbox


def path_tensors(m: onnx.ModelProto) -> list[str]:
    """The outputs of the nodes of the C2PSA block (module path s4.3), in graph order."""
    out = []
    for n in m.graph.node:
        if "/s4/s4.3/" in n.name and n.op_type not in ("Constant", "Sigmoid"):
            out.extend(o for o in n.output if o)
    return out


def with_outputs(path: str, names: list[str]) -> ort.InferenceSession:
    m = onnx.load(path)
    have = {o.name for o in m.graph.output}
    for nm in names:
        if nm not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(nm))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fp32")
    ap.add_argument("int8")
    ap.add_argument("--images", required=True, help="directory of 8-bit PNGs (thermal8/)")
    ap.add_argument("--count", type=int, default=8)
    a = ap.parse_args()
    names = path_tensors(onnx.load(a.fp32)) + ["output0"]
    qnames = {n.output[0] for n in onnx.load(a.int8).graph.node}
    qmap = {nm: (nm + "_dequantized" if nm + "_dequantized" in qnames else nm) for nm in names}
    fs = with_outputs(a.fp32, names)
    qs = with_outputs(a.int8, [qmap[n] for n in names if qmap[n] in qnames or n == "output0"])
    files = sorted(Path(a.images).glob("*.png"))[: a.count]
    acc = {n: [] for n in names}
    for f in files:
        x = letterbox(np.array(Image.open(f)))[0][None].numpy()
        fo = dict(zip([o.name for o in fs.get_outputs()], fs.run(None, {"images": x})))
        qo = dict(zip([o.name for o in qs.get_outputs()], qs.run(None, {"images": x})))
        for n in names:
            if qmap[n] not in qo:
                continue
            r, q = fo[n].astype(np.float64).ravel(), qo[qmap[n]].astype(np.float64).ravel()
            cos = float(r @ q / (np.linalg.norm(r) * np.linalg.norm(q) + 1e-30))
            rel = float(np.linalg.norm(q - r) / (np.linalg.norm(r) + 1e-30))
            acc[n].append((cos, rel, float(np.abs(r).max())))
    print(f"{'tensor':60s} {'cosine':>8s} {'rel.err':>8s} {'|fp32|max':>9s}")
    for n in names:
        if acc[n]:
            c, r, mx = np.mean(acc[n], 0)
            short = n.replace("/s4/s4.3/", "").replace("_output_0", "")
            print(f"{short:60s} {c:8.5f} {r:8.4f} {mx:9.3f}")


if __name__ == "__main__":
    main()
