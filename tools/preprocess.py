"""THE pre-processing contract of the bundled detectors.

The Rust element `thermaldetect` (and `zsq eval --model`) reproduce exactly this; training,
export checks and evaluation in tools/ all call `letterbox()` below. Do not deviate.

  input   an 8-bit image, H x W (grey) or H x W x 3 (RGB order)
  model   float32 tensor `images`, 1 x 3 x 320 x 320, RGB order, values in [0, 1]
  steps   1. x = pixel / 255 (float32); a grey image is replicated to 3 channels
             (thermal models are fed the 8-bit AGC view, `thermal8/`, replicated)
          2. r = min(320 / h, 320 / w); new_w = round(w * r); new_h = round(h * r)
             (Python round(): halves go to even; irrelevant for 640x512 -> 320x256)
          3. resize to (new_h, new_w) with
             torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear",
                                             align_corners=False, antialias=False)
             (when the size is unchanged this is the identity)
          4. place centred on a 320 x 320 canvas filled with 114 / 255:
             pad_x = (320 - new_w) // 2, pad_y = (320 - new_h) // 2
  back    a box (x1, y1, x2, y2) in model-input pixels maps to the frame as
          ((x1 - pad_x) / r, (y1 - pad_y) / r, (x2 - pad_x) / r, (y2 - pad_y) / r),
          then clipped to [0, w] x [0, h].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMGSZ = 320
PAD_VALUE = 114.0 / 255.0


@dataclass(frozen=True)
class Letterbox:
    r: float
    pad_x: int
    pad_y: int
    new_w: int
    new_h: int
    w: int  # original frame size
    h: int


def letterbox_params(h: int, w: int, imgsz: int = IMGSZ) -> Letterbox:
    r = min(imgsz / h, imgsz / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    return Letterbox(r, (imgsz - new_w) // 2, (imgsz - new_h) // 2, new_w, new_h, w, h)


def to_float_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 H x W or H x W x 3 (RGB) -> float32 3 x H x W in [0, 1]; grey replicated."""
    if img.dtype != np.uint8:
        raise TypeError(f"expected an 8-bit image, got {img.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(img)).float().div_(255.0)
    if t.ndim == 2:
        t = t.unsqueeze(0).expand(3, -1, -1)
    elif t.ndim == 3 and t.shape[2] == 3:
        t = t.permute(2, 0, 1)
    elif t.ndim == 3 and t.shape[2] == 1:
        t = t.permute(2, 0, 1).expand(3, -1, -1)
    else:
        raise ValueError(f"unsupported image shape {img.shape}")
    return t.contiguous()


def letterbox_tensor(x: torch.Tensor, imgsz: int = IMGSZ) -> tuple[torch.Tensor, Letterbox]:
    """x: float32 (N,) 3 x H x W in [0,1] -> (N,) 3 x imgsz x imgsz, and the mapping."""
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(0)
    n, c, h, w = x.shape
    lb = letterbox_params(h, w, imgsz)
    if (lb.new_h, lb.new_w) != (h, w):
        x = F.interpolate(x, size=(lb.new_h, lb.new_w), mode="bilinear", align_corners=False,
                          antialias=False)
    out = torch.full((n, c, imgsz, imgsz), PAD_VALUE, dtype=torch.float32)
    out[:, :, lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w] = x
    return (out[0] if squeeze else out), lb


def letterbox(img: np.ndarray, imgsz: int = IMGSZ) -> tuple[torch.Tensor, Letterbox]:
    """The contract: 8-bit image (grey or RGB) -> float32 3 x 320 x 320 model input."""
    return letterbox_tensor(to_float_chw(img), imgsz)


def boxes_to_frame(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Model-input pixel boxes (n, 4) x1y1x2y2 -> frame pixels, clipped."""
    b = np.asarray(xyxy, dtype=np.float64).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - lb.pad_x) / lb.r
    b[:, [1, 3]] = (b[:, [1, 3]] - lb.pad_y) / lb.r
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, lb.w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, lb.h)
    return b


def boxes_to_input(xywh: np.ndarray, lb: Letterbox) -> np.ndarray:
    """COCO frame boxes (n, 4) x,y,w,h -> model-input pixels x1y1x2y2."""
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = b[:, 0] * lb.r + lb.pad_x
    out[:, 1] = b[:, 1] * lb.r + lb.pad_y
    out[:, 2] = (b[:, 0] + b[:, 2]) * lb.r + lb.pad_x
    out[:, 3] = (b[:, 1] + b[:, 3]) * lb.r + lb.pad_y
    return out
