"""Quick self-checks of tools/ (no dataset needed; ~1 min on 2 cores):

  PYTHONPATH=/work/main/.ortlib python3 tools/selftest.py

- the letterbox contract: geometry for 640x512, round trip of boxes, identity when the
  batcher's augmentations are off;
- the geometric augmentation moves boxes with the pixels;
- the loss decreases on one batch;
- export keeps BatchNormalization nodes and ORT agrees with torch (if ORT is importable);
- train.py resumes exactly: a run stopped and resumed (twice, once at an epoch boundary)
  ends bit-for-bit where the uninterrupted run does (weights, EMA, optimizer state, RNG
  states, curves), and leaving out any part of the restored state breaks that.
"""

from __future__ import annotations

import dataclasses
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


def test_batcher_stream_is_epochs_and_resumes_from_its_state():
    rng = np.random.default_rng(2)
    samples = []
    for i in range(5):
        img, boxes, labels = _frame(rng)
        samples.append(Sample(i, f"{i:06d}.png", img, None, boxes, labels))
    ds = _FakeSet(samples, "thermal")
    aug = AugConfig(agc_jitter=0)
    ref = Batcher(ds, 2, aug, 9)
    want = [b for _ in range(3) for b in ref.epoch()]  # 2 batches an epoch (the 5th image dropped)
    st = Batcher(ds, 2, aug, 9).stream()
    got = [next(st) for _ in range(6)]
    assert [e for e, _, _ in got] == [0, 0, 1, 1, 2, 2]
    for (x, t), (_, (y, u), _) in zip(want, got):
        assert torch.equal(x, y) and torch.equal(t, u)
    for k in (1, 2):  # after an epoch's last batch, and mid-epoch
        b = Batcher(ds, 2, aug, 0)
        b.load_state_dict(got[k][2])
        rest = [nb for nb, _ in zip(b.stream(), range(5 - k))]
        assert len(rest) == 5 - k
        for (x, t), (_, (y, u), _) in zip(want[k + 1:], rest):
            assert torch.equal(x, y) and torch.equal(t, u)


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


def test_an_exported_model_loads_back_for_fine_tuning():
    """train.py --init MODEL.onnx: the weights of an export (BN kept) back in torch, the same
    outputs; a model of another --cfg is refused by name."""
    import train as T
    from export import export

    torch.manual_seed(3)
    model = build_model("t").eval()
    for mod in model.modules():  # non-trivial BN statistics, so that a lost one shows
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        export(model, p, "thermal", "selftest")
        back, meta = T.load_checkpoint(p, "t")
        assert meta["modality"] == "thermal" and back.cfg == model.cfg
        x = torch.rand(1, 3, 320, 320)
        with torch.no_grad():
            assert torch.equal(model(x)[0], back(x)[0])
        try:
            T.load_checkpoint(p, "s0")
            raise AssertionError("a t model loaded as s0")
        except SystemExit as e:
            assert "does not hold a --cfg s0 model" in str(e)


def test_batcher_trains_at_640_on_the_frames_own_rows():
    """--imgsz 640 --rect: a 640x512 frame is trained at its own resolution (640x512, no
    resampling), boxes unscaled."""
    rng = np.random.default_rng(4)
    img, boxes, labels = _frame(rng)
    ds = _FakeSet([Sample(0, "0.png", img, None, boxes, labels)], "thermal")
    x, t = Batcher(ds, 1, dataclasses.replace(NO_AUG, rect=True), 0, 640).make(ds.samples)
    assert tuple(x.shape) == (1, 3, 512, 640), x.shape
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
    assert np.allclose(t[:, 2:].numpy(), xyxy), (t, xyxy)
    assert torch.allclose(x[0, 0], torch.from_numpy(img).float() / 255)


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


def _ckpt_diff(p: Path, q: Path) -> list[str]:
    """What differs between two train.py checkpoints (timings aside): [] when they match."""
    a = torch.load(p, map_location="cpu", weights_only=False)
    b = torch.load(q, map_location="cpu", weights_only=False)
    sa, sb = a["train_state"], b["train_state"]
    bad = []

    def same(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, np.ndarray):
            return isinstance(y, np.ndarray) and np.array_equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y

    def untimed(rows):
        return [{k: v for k, v in r.items() if k not in ("wall_s", "sec_per_it", "val_s")} for r in rows]

    checks = {"ema weights": (a["state_dict"], b["state_dict"]), "model": (sa["model"], sb["model"]),
              "optimizer": (sa["opt"], sb["opt"]), "ema updates": (sa["ema_updates"], sb["ema_updates"]),
              "batcher": (sa["batcher"], sb["batcher"]), "rng": (sa["rng"], sb["rng"]),
              "iteration": ((sa["iter"], sa["total"], sa["done"]), (sb["iter"], sb["total"], sb["done"])),
              "curves": (untimed(sa["rows"]), untimed(sb["rows"])),
              "evaluations": (untimed([r for r in sa["records"] if "loss" in r]),
                              untimed([r for r in sb["records"] if "loss" in r]))}
    for name, (x, y) in checks.items():
        if not same(x, y):
            bad.append(name)
    return bad


def test_resume_is_exact():
    """K = 8 iterations straight vs stopped after 3 (an epoch boundary: 12 images, batch 4),
    resumed and stopped after 5 (mid-epoch), resumed to 8; then each part of the training
    state left unrestored in turn must make the end differ."""
    import random
    import subprocess

    import train as T

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "mock_synth.py"), "--out",
                        str(d / "data"), "--scenes", "12", "--seed", "5", "--size", "320x256"],
                       check=True, stdout=subprocess.DEVNULL)

        def args(out, *extra, val=True):
            v = ["--val", str(d / "data"), "--val-limit", "4", "--val-every", "4"] if val else []
            return T.parse_args(["--data", str(d / "data"), "--modality", "thermal", "--cfg", "t", "--batch", "4",
                                 "--iters", "8", "--warmup", "3", "--ema-tau", "5", "--weak-aug-frac", "0.25",
                                 "--log-every", "2", "--save-every", "2", "--seed", "7", "--threads", "1",
                                 "--out", str(d / out), *v, *extra])

        def scramble():  # a resumed process starts from other global RNG states
            torch.manual_seed(12345)
            np.random.seed(12345)
            random.seed(12345)

        T.train(args("straight"))
        T.train(args("resumed", "--stop-after", "3"))
        ck3 = torch.load(d / "resumed" / "last.pt", map_location="cpu", weights_only=False)
        assert ck3["train_state"]["iter"] == 3 and not ck3["train_state"]["done"]
        scramble()
        T.train(args("resumed", "--stop-after", "5"))
        scramble()
        T.train(args("resumed"))
        diff = _ckpt_diff(d / "straight" / "last.pt", d / "resumed" / "last.pt")
        assert diff == [], f"resumed run differs from the straight one in: {diff}"
        strip = lambda p: [ln.rsplit(",", 1)[0] for ln in p.read_text().splitlines()]  # noqa: E731  (wall_s)
        assert strip(d / "straight" / "curves.csv") == strip(d / "resumed" / "curves.csv")
        assert len(strip(d / "straight" / "curves.csv")) == 1 + 4
        # the final checkpoint still loads as a plain model (--init, export.py, evaluate.py)
        model, _ = T.load_checkpoint(d / "resumed" / "last.pt")
        assert sum(p.numel() for p in model.parameters()) > 0
        # a finished run is not trained again; other schedule arguments are refused
        assert T.train(args("resumed"))["done"] is True
        try:
            T.train(args("resumed", "--lr", "1e-3"))
            raise AssertionError("a resume with another --lr was accepted")
        except SystemExit as e:
            assert "lr" in str(e)
        # each part of the state matters: leave it out and the end differs
        for part, expect in [("opt", "optimizer"), ("ema", "ema weights"), ("batcher", "model"),
                             ("rng", "rng"), ("accum", "curves")]:
            out = d / f"broken_{part}"
            out.mkdir()
            torch.save(ck3, out / "last.pt")
            scramble()
            T.train(args(out.name), _skip_restore=frozenset({part}))
            diff = _ckpt_diff(d / "straight" / "last.pt", out / "last.pt")
            assert expect in diff, f"not restoring {part} went unnoticed: {diff}"
            print(f"  without {part}: differs in {diff}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print("ok", name)
