"""COCO mAP of a detector (ONNX via onnxruntime, or a torch model) on a `zsq synth` dir.

  PYTHONPATH=/work/main/.ortlib python3 tools/evaluate.py --model models/det_thermal_ft.onnx \
      --data /tmp/synth-val --modality thermal [--json out.json]

Protocol: the pre-processing contract (preprocess.letterbox), output (1, 4+nc, A) decoded as
cx,cy,w,h + per-class scores; each anchor keeps its best class (as thermaldetect does);
score threshold 0.001; class-aware greedy NMS at IoU 0.7; at most 100 detections per image;
boxes mapped back to frame pixels; pycocotools COCOeval (bbox). `--multi-label` lets every
class above the threshold through instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import MODALITY_DIR, read_png  # noqa: E402
from preprocess import IMGSZ, boxes_to_frame, letterbox  # noqa: E402

CONF = 0.001
IOU = 0.7
MAX_DET = 100
MAX_NMS = 3000


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float, max_det: int) -> np.ndarray:
    """Greedy NMS; boxes (n,4) x1y1x2y2, returns kept indices in descending score."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
        iw = (np.minimum(x2[i], x2[i + 1:]) - np.maximum(x1[i], x1[i + 1:])).clip(0)
        ih = (np.minimum(y2[i], y2[i + 1:]) - np.maximum(y1[i], y1[i + 1:])).clip(0)
        inter = iw * ih
        iou = inter / (area[i] + area[i + 1:] - inter + 1e-9)
        suppressed[i + 1:] |= iou > iou_thr
    return order[np.array(keep, dtype=np.int64)]


def postprocess(out: np.ndarray, conf: float = CONF, iou: float = IOU, max_det: int = MAX_DET,
                multi_label: bool = False):
    """out: (4+nc, A) -> boxes (n,4) x1y1x2y2 input px, scores (n,), classes (n,)."""
    out = np.asarray(out, dtype=np.float32)
    box, cls = out[:4].T, out[4:].T  # (A,4), (A,nc)
    if multi_label:
        ai, ci = np.nonzero(cls > conf)
        sc = cls[ai, ci]
    else:
        ci = cls.argmax(1)
        sc = cls[np.arange(len(ci)), ci]
        ai = np.nonzero(sc > conf)[0]
        ci, sc = ci[ai], sc[ai]
    if len(sc) > MAX_NMS:
        top = np.argsort(-sc, kind="stable")[:MAX_NMS]
        ai, ci, sc = ai[top], ci[top], sc[top]
    b = box[ai]
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    if not len(sc):
        return xyxy, sc, ci
    off = xyxy + (ci.astype(np.float32) * 4096.0)[:, None]  # class-aware
    k = nms(off, sc, iou, max_det)
    return xyxy[k], sc[k], ci[k]


def load_gt(data: Path):
    return json.loads((Path(data) / "annotations.json").read_text())


def detect_dir(run, data: Path, modality: str, limit: int | None = None, multi_label: bool = False,
               imgsz: int = IMGSZ):
    """run(x: float32 1x3ximgszximgsz numpy) -> (4+nc, A). Returns COCO results list."""
    gt = load_gt(data)
    images = sorted(gt["images"], key=lambda im: im["id"])
    if limit:
        images = images[:limit]
    results = []
    for im in images:
        img = read_png(Path(data) / MODALITY_DIR[modality] / im["file_name"])
        x, lb = letterbox(img, imgsz)
        out = run(x.unsqueeze(0).numpy())
        b, s, c = postprocess(out, multi_label=multi_label)
        fb = boxes_to_frame(b, lb)
        for (x1, y1, x2, y2), sc, cl in zip(fb, s, c):
            results.append({"image_id": im["id"], "category_id": int(cl) + 1,
                            "bbox": [round(float(x1), 3), round(float(y1), 3),
                                     round(float(x2 - x1), 3), round(float(y2 - y1), 3)],
                            "score": round(float(sc), 5)})
    return results, [im["id"] for im in images]


def coco_map(gt: dict, results: list, image_ids=None, verbose: bool = False) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        if not results:
            return {"mAP50-95": 0.0, "mAP50": 0.0, "per_class": {}}
        cd = cg.loadRes(results)
        ev = COCOeval(cg, cd, "bbox")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(sink.getvalue())
    per_class = {}
    prec = ev.eval["precision"]  # (T, R, K, A, M)
    for k, cat in enumerate(ev.params.catIds):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        name = cg.cats[cat]["name"]
        per_class[name] = float(p.mean()) if p.size else float("nan")
    return {"mAP50-95": float(ev.stats[0]), "mAP50": float(ev.stats[1]),
            "mAP75": float(ev.stats[2]), "AP_small": float(ev.stats[3]),
            "AP_medium": float(ev.stats[4]), "AP_large": float(ev.stats[5]), "per_class": per_class}


def onnx_runner(path: str, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0][0]


def torch_runner(model):
    import torch

    model.eval()

    dev = next(model.parameters()).device

    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x).to(dev))[0].float().cpu().numpy()

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="an .onnx file (or a .pt checkpoint from train.py)")
    ap.add_argument("--data", required=True, help="a zsq synth output dir")
    ap.add_argument("--modality", choices=["thermal", "rgb"], default=None,
                    help="which images to feed (default: the model's metadata, else thermal)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--multi-label", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is fastest on a shared 2-core box (2 spin-wait under contention)")
    ap.add_argument("--json", default=None, help="write the metrics here")
    ap.add_argument("--dets", default=None, help="write the COCO results (detections) here")
    a = ap.parse_args()

    modality = a.modality
    if a.model.endswith(".onnx"):
        run = onnx_runner(a.model, a.threads)
        if modality is None:
            import onnx

            meta = {p.key: p.value for p in onnx.load(a.model, load_external_data=False).metadata_props}
            modality = meta.get("modality", "thermal")
    else:
        import torch

        from train import load_checkpoint

        torch.set_num_threads(a.threads)
        model, ck = load_checkpoint(a.model)
        run = torch_runner(model)
        modality = modality or ck.get("modality", "thermal")
    t0 = time.time()
    res, ids = detect_dir(run, Path(a.data), modality, a.limit, a.multi_label)
    dt = time.time() - t0
    m = coco_map(load_gt(Path(a.data)), res, ids, verbose=True)
    m.update({"model": a.model, "data": str(a.data), "modality": modality, "images": len(ids),
              "detections": len(res), "seconds": round(dt, 1)})
    print(f"mAP50-95={m['mAP50-95']:.4f} mAP50={m['mAP50']:.4f}  "
          + " ".join(f"{k}={v:.4f}" for k, v in m["per_class"].items())
          + f"  ({len(ids)} images, {dt:.1f} s, modality {modality})")
    if a.json:
        Path(a.json).write_text(json.dumps(m, indent=2))
    if a.dets:
        Path(a.dets).write_text(json.dumps(res))


if __name__ == "__main__":
    main()
