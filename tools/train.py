"""Train a ZsqDet on `zsq synth` output (CPU by default; CUDA if asked and present).

  python3 tools/train.py --data /tmp/synth-train --val /tmp/synth-val --modality thermal \
      --epochs 30 --seed 0 --out runs/thermal_scratch
  python3 tools/train.py ... --modality thermal --init runs/rgb/best.pt --epochs 10  # fine-tune

Writes OUT/last.pt, OUT/best.pt (EMA weights; best by held-out mAP50-95) and OUT/log.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
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
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate")
    ap.add_argument("--lrf", type=float, default=0.05, help="final lr = lr * lrf (cosine)")
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=300, help="warm-up iterations")
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--ema-tau", type=float, default=300.0)
    ap.add_argument("--no-aug-epochs", type=int, default=1, help="last epochs with weak augmentation")
    ap.add_argument("--init", default=None, help="checkpoint (.pt) to start from (fine-tuning)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--val-limit", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=1, help="validate every N epochs (and at the end)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop early after this wall time")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    aug = AugConfig()
    sets = [SynthSet(d, a.modality, load_t16=aug.agc_jitter > 0, limit=a.limit) for d in a.data]
    ds = sets[0]
    for s in sets[1:]:
        ds.samples.extend(s.samples)
    n_obj = sum(len(s.labels) for s in ds.samples)
    print(f"train: {len(ds)} images, {n_obj} objects ({a.modality}), loaded in {time.time() - t_start:.1f} s",
          flush=True)

    if a.init:
        model, ck0 = load_checkpoint(a.init)
        print(f"init from {a.init} ({ck0.get('modality')} model, epoch {ck0.get('epoch')})")
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
    total = spe * a.epochs
    warm = min(a.warmup, total // 3)

    def lr_at(it):
        if it < warm:
            return a.lr * (0.1 + 0.9 * it / warm)
        p = (it - warm) / max(1, total - warm)
        return a.lr * (a.lrf + (1 - a.lrf) * 0.5 * (1 + math.cos(math.pi * p)))

    log = open(out / "log.jsonl", "a")
    best, it, stopped = -1.0, 0, False
    meta = dict(modality=a.modality, args=vars(a), params=params, gflops=flops,
                train_images=len(ds), train_objects=n_obj)
    for ep in range(a.epochs):
        if a.epochs - ep <= a.no_aug_epochs:
            batcher.aug = weak
        t_ep = time.time()
        run = torch.zeros(3)
        for bi, (x, tg) in enumerate(batcher.epoch()):
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
            it += 1
            if bi % 50 == 0:
                print(f"ep {ep} it {bi}/{spe} loss {loss.item():.3f} box/cls/dfl {(parts).tolist()} "
                      f"lr {lr_at(it):.2e} {(time.time() - t_ep) / (bi + 1):.2f} s/it", flush=True)
            if a.max_minutes and (time.time() - t_start) / 60 > a.max_minutes:
                stopped = True
                break
        rec = {"epoch": ep, "iters": it, "loss": (run / max(1, bi + 1)).tolist(),
               "epoch_s": round(time.time() - t_ep, 1), "wall_s": round(time.time() - t_start, 1)}
        last = ep == a.epochs - 1 or stopped
        if a.val and ((ep + 1) % a.val_every == 0 or last):
            t_v = time.time()
            m = validate(ema.ema, Path(a.val), a.modality, a.val_limit)
            rec.update({"val_mAP50-95": m["mAP50-95"], "val_mAP50": m["mAP50"], "val_per_class": m["per_class"],
                        "val_s": round(time.time() - t_v, 1)})
            if m["mAP50-95"] > best:
                best = m["mAP50-95"]
                save_checkpoint(out / "best.pt", ema.ema, {**meta, "epoch": ep, "val": m})
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        save_checkpoint(out / "last.pt", ema.ema, {**meta, "epoch": ep, "wall_s": time.time() - t_start})
        if stopped:
            print(f"stopped early at --max-minutes {a.max_minutes}")
            break
    if not a.val:
        save_checkpoint(out / "best.pt", ema.ema, {**meta, "epoch": ep})
    wall = time.time() - t_start
    summary = {"done": True, "wall_s": round(wall, 1), "best_val_mAP50-95": best, "epochs_run": ep + 1,
               "stopped_early": stopped}
    print(json.dumps(summary))
    log.write(json.dumps(summary) + "\n")
    log.close()


if __name__ == "__main__":
    main()
