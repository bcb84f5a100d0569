"""ZsqDet: a small anchor-free YOLO-style detector (our own code, MIT/Apache like the project).

Layout (YOLOv8-like, written from the published design, not from ultralytics code):

  backbone  Conv-BN-SiLU stem, strided 3x3 convs, C2f split blocks, SPPF (MaxPool 5x5 x3)
  neck      FPN (nearest Upsample x2 + Concat + C2f) then PAN (strided conv + Concat + C2f)
  head      decoupled per level (strides 8/16/32): box branch -> 4*reg_max DFL logits,
            class branch -> nc logits. Decoding happens inside the graph:
            DFL softmax expectation -> (l,t,r,b) distances -> (cx,cy,w,h) * stride.

Export output: (1, 4+nc, A) float32, rows 0-3 = cx, cy, w, h in input pixels,
rows 4.. = per-class sigmoid scores; A = sum over levels of (320/s)^2 = 2100 at 320.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NAMES = {0: "person", 1: "car", 2: "bicycle"}


def _make_div(x: float, d: int = 8) -> int:
    return max(d, int(math.ceil(x / d) * d))


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU (or no activation with act=False)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """1x1 conv, split in two halves, n bottlenecks on the second half, each output kept,
    concat of everything, 1x1 conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        y3 = self.m(y2)
        return self.cv2(torch.cat((x, y1, y2, y3), 1))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map (the YOLO11 C2PSA
    design): one 1x1 conv gives q, k (key_dim = head_dim/2 each) and v per head,
    attn = softmax(q^T k * key_dim^-0.5), out = v attn^T + depthwise 3x3 conv of v
    (positional term), then a 1x1 projection. In ONNX this is Reshape/Split, MatMul, Mul,
    Softmax, MatMul, which is what the int8 study of the attention path needs."""

    def __init__(self, dim: int, num_heads: int = 1, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x):
        # python ints and -1 for the batch: the exported graph gets constant reshape targets
        # (no Shape nodes) and still runs any batch size
        _, c, h, w = (int(v) for v in x.shape)
        q, k, v = self.qkv(x).view(-1, self.num_heads, 2 * self.key_dim + self.head_dim, h * w).split(
            (self.key_dim, self.key_dim, self.head_dim), 2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(-1)
        y = (v @ attn.transpose(-2, -1)).view(-1, c, h, w) + self.pe(v.reshape(-1, c, h, w))
        return self.proj(y)


class PSABlock(nn.Module):
    """Residual attention, then a residual 1x1 FFN (c -> 2c -> c)."""

    def __init__(self, c: int, num_heads: int):
        super().__init__()
        self.attn = Attention(c, num_heads)
        self.ffn = nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act=False))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """1x1 conv, split in two halves, n PSA blocks on the second half, concat, 1x1 conv."""

    def __init__(self, c: int, n: int = 1, num_heads: int = 1):
        super().__init__()
        self.c = c // 2
        self.cv1 = Conv(c, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, num_heads) for _ in range(n)))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), 1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


def make_anchors(shapes, strides, dtype=torch.float32, device="cpu", offset=0.5):
    """Anchor centres (in grid units of each level) and their stride, concatenated over levels."""
    pts, st = [], []
    for (h, w), s in zip(shapes, strides):
        sy, sx = torch.meshgrid(
            torch.arange(h, dtype=dtype, device=device) + offset,
            torch.arange(w, dtype=dtype, device=device) + offset,
            indexing="ij",
        )
        pts.append(torch.stack((sx, sy), -1).view(-1, 2))
        st.append(torch.full((h * w, 1), float(s), dtype=dtype, device=device))
    return torch.cat(pts), torch.cat(st)


class DFL(nn.Module):
    """Distribution focal loss decoding: expectation of a softmax over reg_max bins.
    Implemented as a fixed 1x1 conv (weights 0..reg_max-1), like YOLOv8 exports it."""

    def __init__(self, reg_max: int = 16):
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x, b=None, a=None):  # x: (b, 4*reg_max, a)
        if b is None:
            b, _, a = x.shape
        x = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)  # (b, reg_max, 4, a)
        return self.conv(x).view(b, 4, a)


class Detect(nn.Module):
    def __init__(self, nc: int, ch: tuple[int, ...], strides=(8, 16, 32), reg_max: int = 16,
                 c_box: int | None = None, c_cls: int | None = None):
        super().__init__()
        self.nc = nc
        self.reg_max = reg_max
        self.no = nc + 4 * reg_max
        self.register_buffer("stride", torch.tensor(strides, dtype=torch.float32), persistent=False)
        c2 = c_box or max(16, ch[0] // 4, reg_max * 4)
        c3 = c_cls or max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
        )
        self.dfl = DFL(reg_max)
        self._anchor_cache = None
        # (batch, [(h, w) per level]) set by export.py so that the traced graph has constant
        # reshape targets instead of Shape/Gather chains
        self.fixed_shapes = None

    def bias_init(self, imgsz: int = 320):
        """Prior for the class logits (about 5 objects per 320x320 image) and flat box bins."""
        for a, b, s in zip(self.cv2, self.cv3, self.stride.tolist()):
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[: self.nc] = math.log(5 / self.nc / (imgsz / s) ** 2)

    def forward(self, xs):
        feats = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        if self.training:
            return feats
        return self.decode(feats)

    def anchors_for(self, feats):
        if self.fixed_shapes is not None:
            shapes = list(self.fixed_shapes[1])
        else:
            shapes = [tuple(int(v) for v in f.shape[2:]) for f in feats]
        key = (tuple(shapes), feats[0].dtype, feats[0].device)
        if self._anchor_cache is None or self._anchor_cache[0] != key:
            a, s = make_anchors(shapes, self.stride.tolist(), feats[0].dtype, feats[0].device)
            self._anchor_cache = (key, a.t().contiguous(), s.t().contiguous())
        return self._anchor_cache[1], self._anchor_cache[2]

    def decode(self, feats):
        if self.fixed_shapes is not None:
            b, shapes = self.fixed_shapes
            sizes = [h * w for h, w in shapes]
        else:
            b, sizes = feats[0].shape[0], [-1] * len(feats)
        x = torch.cat([f.view(b, self.no, n) for f, n in zip(feats, sizes)], 2)  # (b, no, A)
        box, cls = x.split((4 * self.reg_max, self.nc), 1)
        anchors, strides = self.anchors_for(feats)  # (2, A), (1, A) -> graph constants
        a = sum(sizes) if self.fixed_shapes is not None else None
        lt, rb = self.dfl(box, b if a else None, a).split((2, 2), 1)
        x1y1 = anchors.unsqueeze(0) - lt
        x2y2 = anchors.unsqueeze(0) + rb
        cxy = (x1y1 + x2y2) / 2
        wh = x2y2 - x1y1
        dbox = torch.cat((cxy, wh), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class ZsqDet(nn.Module):
    """width: channels of the 5 backbone stages; depth: bottlenecks per C2f stage;
    psa: PSA blocks of a C2PSA after SPPF (0: none, the bundled models), psa_heads their heads."""

    def __init__(self, nc: int = 3, width=(16, 32, 64, 128, 256), depth=(1, 2, 2, 1),
                 neck_depth: int = 1, reg_max: int = 16, c_box: int | None = None,
                 c_cls: int | None = None, psa: int = 0, psa_heads: int = 1):
        super().__init__()
        w0, w1, w2, w3, w4 = width
        d1, d2, d3, d4 = depth
        self.cfg = dict(nc=nc, width=tuple(width), depth=tuple(depth), neck_depth=neck_depth,
                        reg_max=reg_max, c_box=c_box, c_cls=c_cls)
        if psa:  # only then, so that the checkpoints of the plain configs keep their cfg
            self.cfg.update(psa=psa, psa_heads=psa_heads)
        # backbone
        self.stem = Conv(3, w0, 3, 2)  # /2
        self.s1 = nn.Sequential(Conv(w0, w1, 3, 2), C2f(w1, w1, d1, True))  # /4
        self.s2 = nn.Sequential(Conv(w1, w2, 3, 2), C2f(w2, w2, d2, True))  # /8  -> P3
        self.s3 = nn.Sequential(Conv(w2, w3, 3, 2), C2f(w3, w3, d3, True))  # /16 -> P4
        s4 = [Conv(w3, w4, 3, 2), C2f(w4, w4, d4, True), SPPF(w4, w4)]
        if psa:
            s4.append(C2PSA(w4, psa, psa_heads))
        self.s4 = nn.Sequential(*s4)  # /32 -> P5
        # neck: FPN top-down
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C2f(w4 + w3, w3, neck_depth)
        self.td3 = C2f(w3 + w2, w2, neck_depth)
        # PAN bottom-up
        self.down3 = Conv(w2, w2, 3, 2)
        self.bu4 = C2f(w2 + w3, w3, neck_depth)
        self.down4 = Conv(w3, w3, 3, 2)
        self.bu5 = C2f(w3 + w4, w4, neck_depth)
        self.detect = Detect(nc, (w2, w3, w4), (8, 16, 32), reg_max, c_box, c_cls)
        self.detect.bias_init()

    def forward(self, x):
        x = self.s1(self.stem(x))
        p3 = self.s2(x)
        p4 = self.s3(p3)
        p5 = self.s4(p4)
        t4 = self.td4(torch.cat((self.up(p5), p4), 1))
        n3 = self.td3(torch.cat((self.up(t4), p3), 1))
        n4 = self.bu4(torch.cat((self.down3(n3), t4), 1))
        n5 = self.bu5(torch.cat((self.down4(n4), p5), 1))
        return self.detect([n3, n4, n5])


# Named sizes. "n" is about YOLOv8n's width/depth; "s0" is the smaller default for 2 CPU cores.
CONFIGS = {
    "n": dict(width=(16, 32, 64, 128, 256), depth=(1, 2, 2, 1)),
    "s0": dict(width=(16, 32, 48, 96, 192), depth=(1, 1, 1, 1), c_box=48, c_cls=48),
    # s0 plus a YOLO11-style C2PSA (attention over the 10x10 P5 positions at 320, 96 channels,
    # 2 heads) after SPPF: the model of the int8 attention study (docs/quantize.md)
    "s0-psa": dict(width=(16, 32, 48, 96, 192), depth=(1, 1, 1, 1), c_box=48, c_cls=48, psa=1,
                   psa_heads=2),
    "t": dict(width=(16, 24, 32, 64, 128), depth=(1, 1, 1, 1), c_box=32, c_cls=32),
}


def build_model(cfg: str | dict = "s0", nc: int = 3) -> ZsqDet:
    if isinstance(cfg, str):
        cfg = CONFIGS[cfg]
    cfg = dict(cfg)
    cfg.pop("nc", None)
    return ZsqDet(nc=nc, **cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, imgsz: int = 320) -> float:
    """Multiply-accumulates of Conv2d layers x2 (i.e. FLOPs as YOLO papers quote them),
    for one 3 x imgsz x imgsz image, in GFLOPs."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * k * out.numel()

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, imgsz, imgsz))
    model.train(was)
    for h in hs:
        h.remove()
    return total / 1e9
