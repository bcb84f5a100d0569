"""Train a ZsqDet on `zsq synth` output (CPU by default; CUDA if asked and present).

  python3 tools/train.py --data /tmp/synth-train --val /tmp/synth-mon --modality thermal \
      --minutes 60 --seed 0 --out runs/thermal_scratch
  python3 tools/train.py ... --modality thermal --init runs/rgb/last.pt --minutes 30  # fine-tune

Writes OUT/last.pt (EMA weights at the end: the one to export), OUT/best.pt (best EMA
weights by --val mAP50-95, for monitoring) and OUT/log.jsonl. Schedule: linear warm-up, then
cosine to lr*lrf; weak augmentation for the last --weak-aug-frac of the iterations.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import AugConfig, Batcher, SynthSet  # noqa: E402
from loss import DetLoss  # noqa: E402
from model import CONFIGS, build_model, count_flops, count_params  # noqa: E402


class EMA:
    """Exponential moving average of weights and BN buffers; decay ramps up from 0."""

    def __init__(self, model: nn.Module, decay: float = 0.999, tau: float = 300.0):
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    @torch.no_grad()
    def update(self, model: nn.Module):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, wd: float):
    decay, no_decay = [], []
    for m in model.modules():
        for n, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(m, nn.BatchNorm2d) or n == "bias":
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def save_checkpoint(path: Path, model: nn.Module, extra: dict):
    torch.save({"cfg": model.cfg, "state_dict": model.state_dict(), **extra}, path)


def load_checkpoint(path: str | Path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = dict(ck["cfg"])
    model = build_model(cfg, nc=cfg["nc"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def validate(model, val_dir: Path, modality: str, limit: int | None):
    from evaluate import coco_map, detect_dir, load_gt, torch_runner

    res, ids = detect_dir(torch_runner(model), val_dir, modality, limit)
    return coco_map(load_gt(val_dir), res, ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, action="append", help="zsq synth dir (repeatable)")
    ap.add_argument("--val", default=None, help="held-out zsq synth dir")
    ap.add_argument("--modality", choices=["thermal", "rgb"], required=True)
    ap.add_argument("--cfg", default="s0", choices=sorted(CONFIGS))
    ap.add_argument("--epochs", type=int, default=30, help="training length in epochs ...")
    ap.add_argument("--iters", type=int, default=None, help="... or in iterations (batches)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="... or fitted to a wall-time budget: the speed of iterations 10-40 fixes the "
                         "iteration count (printed and logged; rerun with --iters N to replay exactly)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    ap.add_argument("--lrf", type=float, default=0.05, help="final lr = lr * lrf (cosine)")
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=300, help="warm-up iterations")
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--ema-tau", type=float, default=300.0)
    ap.add_argument("--weak-aug-frac", type=float, default=0.08,
                    help="final fraction of the iterations with weak augmentation")
    ap.add_argument("--scale", type=float, nargs=2, default=(0.6, 1.6), help="zoom range (augmentation)")
    ap.add_argument("--translate", type=float, default=0.15, help="max shift, fraction of the canvas")
    ap.add_argument("--rect", action="store_true",
                    help="train on the content rows only (320x256 for 640x512 frames; 20%% less compute) "
                         "except in the weak-augmentation phase, which uses the full contract canvas")
    ap.add_argument("--init", default=None, help="checkpoint (.pt) to start from (fine-tuning)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is fastest on a shared 2-core box (2 spin-wait under contention)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--val-limit", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=500, help="validate every N iterations (and at the end)")
    ap.add_argument("--max-minutes", type=float, default=None, help="hard stop after this wall time")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    aug = AugConfig(scale=tuple(a.scale), translate=a.translate, rect=a.rect)
    sets = [SynthSet(d, a.modality, load_t16=aug.agc_jitter > 0, limit=a.limit) for d in a.data]
    ds = sets[0]
    for s in sets[1:]:
        ds.samples.extend(s.samples)
    n_obj = sum(len(s.labels) for s in ds.samples)
    print(f"train: {len(ds)} images, {n_obj} objects ({a.modality}), loaded in {time.time() - t_start:.1f} s",
          flush=True)

    if a.init:
        model, ck0 = load_checkpoint(a.init)
        print(f"init from {a.init} ({ck0.get('modality')} model, iteration {ck0.get('iter')})")
    else:
        model = build_model(a.cfg)
    model.train()
    params, flops = count_params(model), count_flops(model)
    print(f"model {model.cfg}: {params / 1e6:.3f} M params, {flops:.3f} GFLOPs at 320", flush=True)

    crit = DetLoss(model)
    opt = torch.optim.AdamW(param_groups(model, a.wd), lr=a.lr, betas=(0.937, 0.999))
    ema = EMA(model, a.ema_decay, a.ema_tau)
    batcher = Batcher(ds, a.batch, aug, a.seed)
    weak = AugConfig(scale=(0.8, 1.25), translate=0.05, agc_jitter=0.0, blur=0.0, noise=0.01)
    spe = batcher.steps_per_epoch()
    total = a.iters or spe * a.epochs
    probe = (10, 40) if a.minutes and not a.iters else None
    warm = min(a.warmup, total // 3)

    def lr_at(it):
        if it < warm:
            return a.lr * (0.1 + 0.9 * it / warm)
        p = min(1.0, (it - warm) / max(1, total - warm))
        return a.lr * (a.lrf + (1 - a.lrf) * 0.5 * (1 + math.cos(math.pi * p)))

    # by batch index, so the prefetching thread applies it at the same batch every run
    batcher.aug_schedule = lambda k: weak if k >= total * (1 - a.weak_aug_frac) else aug

    def produce(q: queue.Queue, stop: threading.Event):
        ep = 0
        while not stop.is_set():
            for b in batcher.epoch():
                if stop.is_set():
                    return
                q.put((ep, b))
            ep += 1

    def batches():
        """Batches made on a helper thread (torch ops release the GIL), two ahead; the
        sequence is the same as without the thread."""
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        th = threading.Thread(target=produce, args=(q, stop), daemon=True)
        th.start()
        try:
            while True:
                yield q.get()
        finally:
            stop.set()

    log = open(out / "log.jsonl", "a")
    best, it, stopped, t_val = -1.0, 0, False, 0.0
    meta = dict(modality=a.modality, args=vars(a), params=params, gflops=flops,
                train_images=len(ds), train_objects=n_obj)
    run, n_run, t_blk, t_probe = torch.zeros(3), 0, time.time(), None
    for ep, (x, tg) in batches():
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        feats = model(x)
        loss, parts = crit(feats, tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        run += parts
        n_run += 1
        it += 1
        if probe and it == probe[0]:
            t_probe = time.time()
        if probe and it == probe[1]:
            sec_it = (time.time() - t_probe) / (probe[1] - probe[0])
            left = max(0.0, a.minutes * 60 - (time.time() - t_start))
            # keep ~8 % of the budget for validation passes and the final save
            total = max(it + 50, int(left * 0.92 / sec_it) + it)
            total = int(round(total / 50.0)) * 50
            warm = min(a.warmup, total // 3)
            print(f"budget {a.minutes} min at {sec_it:.2f} s/it -> {total} iterations "
                  f"({total / spe:.2f} epochs); replay with --iters {total}", flush=True)
            log.write(json.dumps({"fitted_iters": total, "sec_per_it": round(sec_it, 3)}) + "\n")
        if it % 50 == 0:
            print(f"it {it}/{total} ep {ep} loss {loss.item():.3f} box/cls/dfl "
                  f"{[round(v, 3) for v in (run / n_run).tolist()]} lr {lr_at(it):.2e} "
                  f"{(time.time() - t_blk) / n_run:.2f} s/it", flush=True)
        if a.max_minutes and (time.time() - t_start) / 60 > a.max_minutes:
            stopped = True
        last = it >= total or stopped
        if (a.val and it % a.val_every == 0) or last:
            rec = {"iter": it, "epoch": round(it / spe, 2), "loss": (run / n_run).tolist(),
                   "sec_per_it": round((time.time() - t_blk) / n_run, 3), "wall_s": round(time.time() - t_start, 1)}
            if a.val:
                t_v = time.time()
                m = validate(ema.ema, Path(a.val), a.modality, a.val_limit)
                t_val += time.time() - t_v
                rec.update({"val_mAP50-95": m["mAP50-95"], "val_mAP50": m["mAP50"],
                            "val_per_class": m["per_class"], "val_s": round(time.time() - t_v, 1)})
                if m["mAP50-95"] > best:
                    best = m["mAP50-95"]
                    save_checkpoint(out / "best.pt", ema.ema, {**meta, "iter": it, "val": m})
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            save_checkpoint(out / "last.pt", ema.ema, {**meta, "iter": it, "total_iters": total,
                                                       "wall_s": time.time() - t_start})
            run, n_run, t_blk = torch.zeros(3), 0, time.time()
        if last:
            break
    if stopped:
        print(f"stopped early at --max-minutes {a.max_minutes} (iteration {it} of {total})")
    if not a.val:
        save_checkpoint(out / "best.pt", ema.ema, {**meta, "iter": it})
    wall = time.time() - t_start
    summary = {"done": True, "wall_s": round(wall, 1), "val_s": round(t_val, 1), "iters": it,
               "total_iters": total, "epochs": round(it / spe, 2), "best_val_mAP50-95": best,
               "stopped_early": stopped}
    print(json.dumps(summary))
    log.write(json.dumps(summary) + "\n")
    log.close()


if __name__ == "__main__":
    main()
