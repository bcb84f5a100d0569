"""A crude stand-in for `zsq synth`, for smoke tests of tools/ only (never for training
the bundled models). Writes the same layout:

  DIR/thermal16/NNNNNN.png  16-bit grey, centikelvin
  DIR/thermal8/NNNNNN.png   8-bit AGC view (1%-99% percentile stretch)
  DIR/rgb/NNNNNN.png        8-bit RGB rendering of the same geometry
  DIR/annotations.json      COCO, categories 1 person, 2 car, 3 bicycle

usage: python3 tools/mock_synth.py --out /tmp/mock --scenes 50 --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}, {"id": 3, "name": "bicycle"}]


def agc8(t16: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(t16, [1, 99])
    return (np.clip((t16.astype(np.float64) - lo) / max(hi - lo, 1), 0, 1) * 255 + 0.5).astype(np.uint8)


def scene(rng: np.random.Generator, w: int, h: int):
    horizon = int(h * rng.uniform(0.3, 0.45))
    amb = rng.uniform(270, 300)  # K
    therm = Image.new("F", (w, h), amb)
    rgb = Image.new("RGB", (w, h), (120, 160, 220))
    dt, dr = ImageDraw.Draw(therm), ImageDraw.Draw(rgb)
    dt.rectangle([0, 0, w, horizon], fill=amb - 20)
    dt.rectangle([0, horizon, w, h], fill=amb + 2)
    dr.rectangle([0, horizon, w, h], fill=(90, 90, 80))
    anns = []
    for _ in range(rng.integers(1, 8)):
        cls = int(rng.integers(1, 4))
        y2 = rng.uniform(horizon + 10, h)
        scale = (y2 - horizon) / (h - horizon)  # perspective: nearer -> bigger
        if cls == 1:
            bh, bw = 180 * scale + 6, (180 * scale + 6) * 0.4
            temp, col = amb + rng.uniform(8, 14), tuple(int(c) for c in rng.integers(0, 255, 3))
        elif cls == 2:
            bh, bw = 120 * scale + 5, (120 * scale + 5) * rng.uniform(1.6, 2.6)
            temp, col = amb + rng.uniform(3, 20), tuple(int(c) for c in rng.integers(0, 255, 3))
        else:
            bh, bw = 100 * scale + 5, (100 * scale + 5) * 1.6
            temp, col = amb + rng.uniform(2, 6), (30, 30, 30)
        x1 = rng.uniform(-bw * 0.2, w - bw * 0.8)
        y1 = y2 - bh
        box = [x1, y1, x1 + bw, y2]
        if cls == 1:
            dt.ellipse(box, fill=temp)
            dr.ellipse(box, fill=col)
        elif cls == 2:
            dt.rectangle(box, fill=temp)
            dr.rectangle(box, fill=col)
            r = bh * 0.2
            for cx in (x1 + bw * 0.2, x1 + bw * 0.8):
                dt.ellipse([cx - r, y2 - 2 * r, cx + r, y2], fill=temp + 15)
                dr.ellipse([cx - r, y2 - 2 * r, cx + r, y2], fill=(10, 10, 10))
        else:
            r = bh * 0.35
            for cx in (x1 + r, x1 + bw - r):
                dt.ellipse([cx - r, y2 - 2 * r, cx + r, y2], outline=temp, width=max(1, int(r / 5)))
                dr.ellipse([cx - r, y2 - 2 * r, cx + r, y2], outline=col, width=max(1, int(r / 5)))
            dt.line([x1 + r, y2 - r, x1 + bw / 2, y1, x1 + bw - r, y2 - r], fill=temp, width=3)
            dr.line([x1 + r, y2 - r, x1 + bw / 2, y1, x1 + bw - r, y2 - r], fill=col, width=3)
        cx1, cy1, cx2, cy2 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        if cx2 - cx1 < 3 or cy2 - cy1 < 3:
            continue
        anns.append((cls, [cx1, cy1, cx2 - cx1, cy2 - cy1]))
    t = np.asarray(therm, dtype=np.float64) + rng.normal(0, 0.3, (h, w))
    t16 = np.clip(t * 100, 0, 65535).astype(np.uint16)
    rgbn = np.clip(np.asarray(rgb, dtype=np.float64) + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    return t16, rgbn, anns


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", default="640x512")
    a = ap.parse_args()
    w, h = map(int, a.size.lower().split("x"))
    out = Path(a.out)
    for d in ("thermal16", "thermal8", "rgb"):
        (out / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    images, annotations = [], []
    for i in range(a.scenes):
        t16, rgb, anns = scene(rng, w, h)
        name = f"{i:06d}.png"
        Image.fromarray(t16).save(out / "thermal16" / name)
        Image.fromarray(agc8(t16)).save(out / "thermal8" / name)
        Image.fromarray(rgb).save(out / "rgb" / name)
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        for cls, bb in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": cls,
                                "bbox": [round(v, 2) for v in bb], "area": round(bb[2] * bb[3], 2),
                                "iscrowd": 0})
    (out / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": CATEGORIES}))
    print(f"{a.scenes} scenes, {len(annotations)} objects -> {out}")


if __name__ == "__main__":
    main()
