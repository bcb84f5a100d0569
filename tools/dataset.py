"""`zsq synth` directories as training batches.

A synth dir holds thermal16/ thermal8/ rgb/ PNGs and a COCO annotations.json
(category_id 1 person, 2 car, 3 bicycle; model class = category_id - 1).

Batches are built in torch: the originals are kept in RAM as uint8, each batch goes through
the contract (`preprocess.letterbox_tensor`), then photometric jitter on the image content
and a random affine (scale/translate/flip) on the 320x320 canvas, whose uncovered parts get
the letterbox pad value. With every augmentation off, a batch is exactly the contract.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from preprocess import IMGSZ, PAD_VALUE, boxes_to_input, letterbox_params, letterbox_tensor

MODALITY_DIR = {"thermal": "thermal8", "rgb": "rgb"}


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.array(im)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    return a


@dataclass
class Sample:
    image_id: int
    file_name: str
    img: np.ndarray  # uint8 HxW (thermal8) or HxWx3 (rgb)
    t16: np.ndarray | None  # uint16 HxW centikelvin (for AGC jitter), thermal only
    boxes: np.ndarray  # (n, 4) COCO x,y,w,h frame pixels
    labels: np.ndarray  # (n,) int64 class index


class SynthSet:
    def __init__(self, root: str | Path, modality: str, load_t16: bool = False,
                 limit: int | None = None):
        self.root = Path(root)
        self.modality = modality
        self.coco = json.loads((self.root / "annotations.json").read_text())
        by_img: dict[int, list] = {}
        for a in self.coco["annotations"]:
            if a.get("iscrowd", 0):
                continue
            by_img.setdefault(a["image_id"], []).append(a)
        images = sorted(self.coco["images"], key=lambda im: im["id"])
        if limit:
            images = images[:limit]
        sub = MODALITY_DIR[modality]
        self.samples: list[Sample] = []
        for im in images:
            anns = by_img.get(im["id"], [])
            boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
            labels = np.array([a["category_id"] - 1 for a in anns], dtype=np.int64)
            img = read_png(self.root / sub / im["file_name"])
            t16 = None
            if load_t16 and modality == "thermal":
                t16 = read_png(self.root / "thermal16" / im["file_name"])
            self.samples.append(Sample(im["id"], im["file_name"], img, t16, boxes, labels))

    def __len__(self):
        return len(self.samples)


@dataclass
class AugConfig:
    scale: tuple[float, float] = (0.6, 1.6)  # zoom factor on the 320 canvas
    translate: float = 0.15  # fraction of 320
    fliplr: float = 0.5
    contrast: tuple[float, float] = (0.65, 1.35)
    brightness: float = 0.12
    gamma: tuple[float, float] = (0.7, 1.4)
    noise: float = 0.025  # max sigma of additive Gaussian noise
    agc_jitter: float = 0.3  # thermal: probability of a re-AGC from the 16-bit frame
    blur: float = 0.2  # probability of a light 3x3 blur
    color: float = 0.1  # rgb: per-channel gain jitter
    saturation: tuple[float, float] = (0.5, 1.5)  # rgb
    rect: bool = False  # crop the canvas to the content rows (see Batcher._rect)


NO_AUG = AugConfig(scale=(1.0, 1.0), translate=0.0, fliplr=0.0, contrast=(1.0, 1.0), brightness=0.0,
                   gamma=(1.0, 1.0), noise=0.0, agc_jitter=0.0, blur=0.0, color=0.0,
                   saturation=(1.0, 1.0))


def _u(g: torch.Generator, lo: float, hi: float, n: int = 1) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _agc(t16: np.ndarray, lo_pct: float, hi_pct: float) -> np.ndarray:
    lo, hi = np.percentile(t16, [lo_pct, hi_pct])
    x = (t16.astype(np.float32) - lo) / max(float(hi - lo), 1.0)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


class Batcher:
    """Deterministic (by seed) stream of augmented batches over a SynthSet."""

    def __init__(self, ds: SynthSet, batch: int, aug: AugConfig, seed: int, imgsz: int = IMGSZ):
        self.ds, self.batch, self.aug, self.imgsz = ds, batch, aug, imgsz
        self.g = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.made = 0  # batches made so far
        self.aug_schedule = None  # optional: batch index -> AugConfig
        self.ep, self.order, self.pos = -1, None, 0  # stream(): current epoch, its order, next batch

    def epoch(self):
        order = torch.randperm(len(self.ds), generator=self.g).tolist()
        n = len(order) // self.batch  # drop the last partial batch (BN statistics)
        for i in range(n):
            yield self.make([self.ds.samples[j] for j in order[i * self.batch:(i + 1) * self.batch]])

    def stream(self):
        """Endless (epoch, batch, state) over epochs: the same batches as `epoch()` called
        again and again (the same draws in the same order), with `state` the stream's
        `state_dict()` just after that batch, so a run can resume after any batch."""
        n = self.steps_per_epoch()
        while True:
            if self.order is None or self.pos >= n:
                self.ep += 1
                self.order, self.pos = torch.randperm(len(self.ds), generator=self.g).tolist(), 0
            i = self.pos
            b = self.make([self.ds.samples[j] for j in self.order[i * self.batch:(i + 1) * self.batch]])
            self.pos += 1
            yield self.ep, b, self.state_dict()

    def state_dict(self) -> dict:
        """The generators, the batch count and the position in the current epoch."""
        return {"g": self.g.get_state(), "rng": self.rng.bit_generator.state, "made": self.made,
                "ep": self.ep, "order": self.order, "pos": self.pos}

    def load_state_dict(self, st: dict):
        self.g.set_state(st["g"])
        self.rng.bit_generator.state = st["rng"]
        self.made, self.ep, self.order, self.pos = st["made"], st["ep"], st["order"], st["pos"]

    def steps_per_epoch(self) -> int:
        return len(self.ds) // self.batch

    def _content(self, s: Sample) -> torch.Tensor:
        """uint8 original -> float 3xHxW in [0,1] (with the thermal AGC jitter)."""
        a, img = self.aug, s.img
        if s.t16 is not None and a.agc_jitter > 0 and self.rng.random() < a.agc_jitter:
            img = _agc(s.t16, self.rng.uniform(0.0, 3.0), self.rng.uniform(97.0, 100.0))
        t = torch.from_numpy(np.ascontiguousarray(img)).float().div_(255.0)
        if t.ndim == 2:
            t = t.unsqueeze(0).expand(3, -1, -1)
        else:
            t = t.permute(2, 0, 1)
        return t

    def make(self, samples: list[Sample]):
        if self.aug_schedule is not None:
            self.aug = self.aug_schedule(self.made)
        self.made += 1
        S = self.imgsz
        imgs, targets, lbs = [], [], []
        for k, s in enumerate(samples):
            x, lb = letterbox_tensor(self._content(s), S)  # 3xSxS, content at pad offsets
            boxes = boxes_to_input(s.boxes, lb)  # x1y1x2y2 input px
            x = self._photometric(x, lb)
            imgs.append(x)
            lbs.append(lb)
            targets.append((boxes, s.labels))
        x = torch.stack(imgs)
        if self.aug.rect:
            x, targets = self._rect(x, targets, lbs)
        x, targets = self._geometric(x, targets)
        # targets -> (n, 6) [batch_idx, cls, x1, y1, x2, y2]
        rows = []
        for k, (b, l) in enumerate(targets):
            if len(b):
                rows.append(np.concatenate([np.full((len(b), 1), k), l[:, None], b], 1))
        t = torch.from_numpy(np.concatenate(rows, 0)).float() if rows else torch.zeros(0, 6)
        return x.contiguous(), t

    def _photometric(self, x: torch.Tensor, lb) -> torch.Tensor:
        a, g = self.aug, self.g
        ys, xs = slice(lb.pad_y, lb.pad_y + lb.new_h), slice(lb.pad_x, lb.pad_x + lb.new_w)
        c = x[:, ys, xs]
        if self.ds.modality == "rgb":
            gains = 1 + _u(g, -a.color, a.color, 3).view(3, 1, 1)
            c = c * gains
            sat = float(_u(g, *a.saturation))
            grey = c.mean(0, keepdim=True)
            c = grey + (c - grey) * sat
        con = float(_u(g, *a.contrast))
        bri = float(_u(g, -a.brightness, a.brightness))
        c = (c - 0.5) * con + 0.5 + bri
        c = c.clamp(0, 1)
        gam = float(torch.exp(_u(g, np.log(a.gamma[0]), np.log(a.gamma[1]))))
        c = c.pow(gam)
        if a.blur > 0 and float(torch.rand(1, generator=g)) < a.blur:
            k = torch.tensor([1.0, 2.0, 1.0])
            k = (k[:, None] * k[None, :]) / 16
            c = F.conv2d(F.pad(c.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3)).squeeze(1)
        if a.noise > 0:
            sigma = float(_u(g, 0, a.noise))
            n = torch.randn(c.shape[1:], generator=g) * sigma
            c = c + (n if self.ds.modality == "thermal" else torch.randn(c.shape, generator=g) * sigma)
        if self.ds.modality == "thermal":
            c = c[:1].expand(3, -1, -1)  # keep the three channels identical
        x = x.clone()
        x[:, ys, xs] = c.clamp(0, 1)
        return x

    @staticmethod
    def _rect(x: torch.Tensor, targets, lbs):
        """Crop the canvas to the rows that hold content (rounded up to a multiple of 32,
        centred like the letterbox): 320x256 for 640x512 frames, 20 % less compute."""
        top = min(lb.pad_y for lb in lbs)
        bottom = max(lb.pad_y + lb.new_h for lb in lbs)
        S = x.shape[2]
        h = min(S, int(math.ceil((bottom - top) / 32)) * 32)
        y0 = (S - h) // 2
        if h == S or top < y0 or bottom > y0 + h:
            return x, targets
        out = []
        for b, l in targets:
            nb = b.copy()
            nb[:, [1, 3]] -= y0
            out.append((nb, l))
        return x[:, :, y0:y0 + h], out

    def _geometric(self, x: torch.Tensor, targets):
        a, g = self.aug, self.g
        n, _, H, W = x.shape
        if a.scale == (1.0, 1.0) and a.translate == 0 and a.fliplr == 0:
            return x, targets
        s = torch.exp(_u(g, np.log(a.scale[0]), np.log(a.scale[1]), n))
        t = _u(g, -a.translate, a.translate, 2 * n).view(n, 2) * torch.tensor([W, H], dtype=torch.float32)
        flip = torch.rand(n, generator=g) < a.fliplr
        # output pixel p maps to input pixel q = (p - c - t) / s + c   (c = centre), with x mirrored if flip
        # grid_sample's normalised coords (align_corners=False): u = (2p + 1)/W - 1
        sx = torch.where(flip, -s, s)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = 1 / sx
        theta[:, 1, 1] = 1 / s
        theta[:, 0, 2] = -(2 * t[:, 0] / W) / sx
        theta[:, 1, 2] = -(2 * t[:, 1] / H) / s
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x - PAD_VALUE, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + PAD_VALUE
        out = []
        cx, cy = W / 2, H / 2
        for k, (b, l) in enumerate(targets):
            if not len(b):
                out.append((b, l))
                continue
            sk, tk, fk = float(s[k]), t[k].numpy().astype(np.float64), bool(flip[k])
            nb = b.copy()
            if fk:
                nb[:, [0, 2]] = 2 * cx - b[:, [2, 0]]
            nb[:, [0, 2]] = (nb[:, [0, 2]] - cx) * sk + cx + tk[0]
            nb[:, [1, 3]] = (nb[:, [1, 3]] - cy) * sk + cy + tk[1]
            area0 = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
            nb[:, [0, 2]] = nb[:, [0, 2]].clip(0, W)
            nb[:, [1, 3]] = nb[:, [1, 3]].clip(0, H)
            w, h = nb[:, 2] - nb[:, 0], nb[:, 3] - nb[:, 1]
            keep = (w > 1.5) & (h > 1.5) & (w * h > 0.35 * area0)
            out.append((nb[keep], l[keep]))
        return x, out
