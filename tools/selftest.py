"""Quick self-checks of tools/ (no dataset needed; ~1 min on 2 cores):

  PYTHONPATH=/work/main/.ortlib python3 tools/selftest.py

- the letterbox contract: geometry for 640x512, round trip of boxes, identity when the
  batcher's augmentations are off;
- the geometric augmentation moves boxes with the pixels;
- the loss decreases on one batch;
- export keeps BatchNormalization nodes and ORT agrees with torch (if ORT is importable).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import NO_AUG, AugConfig, Batcher, Sample  # noqa: E402
from loss import DetLoss  # noqa: E402
from model import build_model  # noqa: E402
from preprocess import PAD_VALUE, boxes_to_frame, boxes_to_input, letterbox, letterbox_params  # noqa: E402


class _FakeSet:
    def __init__(self, samples, modality):
        self.samples, self.modality = samples, modality

    def __len__(self):
        return len(self.samples)


def _frame(rng, w=640, h=512):
    img = np.full((h, w), 40, np.uint8)
    boxes, labels = [], []
    for k in range(3):
        x, y = rng.integers(20, w - 120), rng.integers(20, h - 120)
        bw, bh = rng.integers(20, 100), rng.integers(20, 100)
        img[y:y + bh, x:x + bw] = 200 + 20 * k
        boxes.append([x, y, bw, bh])
        labels.append(k)
    return img, np.array(boxes, float), np.array(labels)


def test_contract():
    lb = letterbox_params(512, 640)
    assert (lb.new_w, lb.new_h, lb.pad_x, lb.pad_y, lb.r) == (320, 256, 0, 32, 0.5), lb
    img = (np.arange(512 * 640) % 251).astype(np.uint8).reshape(512, 640)
    x, lb = letterbox(img)
    assert x.shape == (3, 320, 320) and x.dtype == torch.float32
    assert torch.all(x[:, :32] == PAD_VALUE) and torch.all(x[:, 288:] == PAD_VALUE)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    # 2x bilinear downscale with align_corners=False = mean of each 2x2 block
    ref = torch.from_numpy(img.astype(np.float32) / 255).view(256, 2, 320, 2).mean((1, 3))
    assert torch.allclose(x[0, 32:288], ref, atol=1e-6)
    b = np.array([[10.0, 20.0, 30.0, 40.0]])
    back = boxes_to_frame(boxes_to_input(b, lb), lb)
    assert np.allclose(back, [[10, 20, 40, 60]])
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[..., 0] = 255
    x, lb = letterbox(rgb)
    assert lb.pad_y == 40 and float(x[0, 100, 100]) == 1.0 and float(x[1, 100, 100]) == 0.0


def test_batcher_identity_and_geometry():
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        img, boxes, labels = _frame(rng)
        samples.append(Sample(i, f"{i:06d}.png", img, None, boxes, labels))
    ds = _FakeSet(samples, "thermal")
    x, t = Batcher(ds, 4, NO_AUG, 0).make(samples)
    for k, s in enumerate(samples):
        ref, lb = letterbox(s.img)
        assert torch.allclose(x[k], ref, atol=1e-6)
        tb = t[t[:, 0] == k][:, 2:].numpy()
        assert np.allclose(tb, boxes_to_input(s.boxes, lb), atol=1e-4)
    # with geometry on, each box still frames its bright rectangle
    aug = AugConfig(contrast=(1, 1), brightness=0, gamma=(1, 1), noise=0, blur=0, agc_jitter=0)
    x, t = Batcher(ds, 4, aug, 3).make(samples)
    _check_boxes_on_rectangles(x, t)
    aug.rect = True
    x, t = Batcher(ds, 4, aug, 4).make(samples)
    assert x.shape[2:] == (256, 320), x.shape
    _check_boxes_on_rectangles(x, t)


def _check_boxes_on_rectangles(x, t):
    assert len(t) > 4
    for row in t.numpy():
        k, x1, y1, x2, y2 = int(row[0]), *row[2:]
        if x2 - x1 < 8 or y2 - y1 < 8:
            continue
        inner = x[k, 0, int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
        assert float(inner.mean()) > 150 / 255, (row, float(inner.mean()))


def test_loss_decreases():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    samples = []
    for i in range(4):
        img, boxes, labels = _frame(rng)
        samples.append(Sample(i, f"{i:06d}.png", img, None, boxes, labels))
    x, t = Batcher(_FakeSet(samples, "thermal"), 4, NO_AUG, 0).make(samples)
    model = build_model("t").train()
    crit = DetLoss(model)
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    first = None
    for _ in range(15):
        loss, _ = crit(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert float(loss) < 0.7 * first, (first, float(loss))


def test_export():
    import onnx

    from export import check, export

    model = build_model("t").eval()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        _, x = export(model, p, "thermal", "selftest")
        info = check(p, model, x)
        m = onnx.load(str(p))
        meta = {q.key: q.value for q in m.metadata_props}
        assert meta["names"] == "{0: 'person', 1: 'car', 2: 'bicycle'}"
        assert meta["imgsz"] == "[320, 320]" and meta["stride"] == "32" and meta["modality"] == "thermal"
        assert info["bn_nodes"] > 0 and info["output"] == [1, 7, 2100], info
        assert not any(n.op_type == "Shape" for n in m.graph.node)
        print("  export:", info)


def test_attention_config_exports_softmax_and_matmuls_without_shape_nodes():
    import onnx

    from export import check, export

    torch.manual_seed(0)
    model = build_model("s0-psa").eval()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        _, x = export(model, p, "thermal", "selftest")
        info = check(p, model, x)  # ORT agrees with torch
        ops = [n.op_type for n in onnx.load(str(p)).graph.node]
        # the attention's two MatMuls (q^T k and v attn^T) and its Softmax (plus DFL's)
        assert ops.count("MatMul") == 2 and ops.count("Softmax") == 2, ops
        assert info["output"] == [1, 7, 2100], info
        out = model(torch.rand(2, 3, 320, 320))  # batch size stays free in the graph's reshapes
        assert out.shape == (2, 7, 2100)


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
