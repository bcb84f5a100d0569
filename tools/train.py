"""Train a ZsqDet on `zsq synth` output (CPU by default; `--device auto` takes CUDA when present).

  python3 tools/train.py --data /tmp/synth-train --val /tmp/synth-mon --modality thermal \
      --minutes 60 --seed 0 --out runs/thermal_scratch
  python3 tools/train.py ... --modality thermal --init runs/rgb/last.pt --minutes 30  # fine-tune

Writes OUT/last.pt (EMA weights: the one to export; also the whole training state, so the
run can resume), OUT/best.pt (best EMA weights by --val mAP50-95, for monitoring),
OUT/log.jsonl and OUT/curves.csv (loss every --log-every iterations, --val mAP50-95 at each
evaluation; `tools/curves.py` draws it). Schedule: linear warm-up, then cosine to lr*lrf;
weak augmentation for the last --weak-aug-frac of the iterations.

Resumption: last.pt is rewritten (atomically) every --save-every iterations, at every
evaluation, at the end, at --stop-after / --max-minutes and on SIGINT/SIGTERM (at the end of
the iteration under way). Rerunning the same command continues from OUT/last.pt to the same
schedule (`--resume auto`, the default; a finished run just prints so); `--resume PATH`
continues from another checkpoint, `--resume never` starts over. On the CPU a resumed run
ends bit-for-bit where an uninterrupted one does (tools/selftest.py checks it).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import math
import os
import queue
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import AugConfig, Batcher, SynthSet  # noqa: E402
from preprocess import IMGSZ  # noqa: E402
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
    """Atomic: written to PATH.tmp, synced, then renamed over PATH (an interruption leaves
    the previous checkpoint whole)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"cfg": model.cfg, "state_dict": model.state_dict(), **extra}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_onnx_weights(path: Path, cfg: str) -> tuple[nn.Module, dict]:
    """A model exported by tools/export.py (BN kept, initializers named after the state_dict)
    back as a torch model of config `cfg`: how a bundled detector is fine-tuned further when
    only its .onnx was committed. Every tensor must match by name and shape."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    meta = {p.key: p.value for p in m.metadata_props}
    model = build_model(cfg, nc=len(ast.literal_eval(meta["names"])))
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    sd = model.state_dict()
    wanted = {k for k in sd if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in wanted if k not in inits or inits[k].shape != sd[k].shape)
    if missing:
        raise SystemExit(f"{path} does not hold a --cfg {cfg} model: {len(missing)} tensors missing or "
                         f"of another shape, e.g. {missing[:3]}")
    model.load_state_dict({k: inits.get(k, v) for k, v in sd.items()})
    return model.eval(), {"cfg": model.cfg, "modality": meta.get("modality")}


def load_checkpoint(path: str | Path, cfg: str = "s0"):
    """The model in a checkpoint (its `state_dict`: the EMA weights) in eval mode, and the
    checkpoint. Works for every checkpoint train.py ever wrote (for --init, export, eval),
    and for an exported .onnx (then `cfg` names its architecture)."""
    if str(path).endswith(".onnx"):
        return load_onnx_weights(Path(path), cfg)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = dict(ck["cfg"])
    model = build_model(cfg, nc=cfg["nc"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck


def validate(model, val_dir: Path, modality: str, limit: int | None, imgsz: int = IMGSZ):
    from evaluate import coco_map, detect_dir, load_gt, torch_runner

    res, ids = detect_dir(torch_runner(model), val_dir, modality, limit, imgsz=imgsz)
    return coco_map(load_gt(val_dir), res, ids)


# Arguments that may differ between an interrupted run and its resumption (they change where
# files are, how fast it goes or what is logged, not the weights); every other argument fixes
# the schedule and must be the same (a resumed run refuses otherwise).
OPERATIONAL = {"data", "val", "val_limit", "val_every", "out", "resume", "init", "threads", "device", "amp",
               "save_every", "log_every", "max_minutes", "stop_after"}
CURVE_COLS = ["iter", "epoch", "lr", "loss", "box", "cls", "dfl", "val_mAP50-95", "val_mAP50", "wall_s"]


def _plain(v):
    return json.loads(json.dumps(v))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return torch.device(name)


def rng_state(dev: torch.device) -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if dev.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict, dev: torch.device):
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if dev.type == "cuda" and len(st.get("cuda", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def find_resume(a, out: Path) -> tuple[Path | None, dict | None]:
    """The checkpoint to continue from (None: start afresh) per --resume."""
    if a.resume == "never":
        return None, None
    path = out / "last.pt" if a.resume == "auto" else Path(a.resume)
    if not path.exists():
        if a.resume == "auto":
            return None, None
        raise SystemExit(f"--resume {path}: no such file")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "train_state" not in ck:
        raise SystemExit(f"{path} holds no training state (written before resumable checkpoints, or by "
                         f"--resume never's predecessor): --init it to fine-tune, or --resume never to start over")
    ts = ck["train_state"]
    old = {k: v for k, v in ts["args"].items() if k not in OPERATIONAL}
    old.setdefault("imgsz", IMGSZ)  # checkpoints from before --imgsz trained at 320
    new = {k: v for k, v in _plain(vars(a)).items() if k not in OPERATIONAL}
    diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    if diff:
        raise SystemExit(f"{path} was trained with other schedule arguments (checkpoint, now): {diff}; "
                         f"rerun with the same ones, or --resume never (or another --out) to start over")
    return path, ck


def parse_args(argv=None):
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
    ap.add_argument("--imgsz", type=int, default=IMGSZ,
                    help="canvas side: frames are letterboxed to imgsz x imgsz (with --rect, 640 trains "
                         "640x512 frames at their own resolution); the exported model keeps the 320 contract "
                         "and runs at other sizes through thermaldetect input-size")
    ap.add_argument("--rect", action="store_true",
                    help="train on the content rows only (320x256 for 640x512 frames; 20%% less compute) "
                         "except in the weak-augmentation phase, which uses the full contract canvas")
    ap.add_argument("--init", default=None, help="checkpoint (.pt), or a model exported by tools/export.py (.onnx, of --cfg), "
                                                     "to start from (fine-tuning)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (the batches are made on the CPU with them, on every device); "
                         "1 is fastest on a shared 2-core box (2 spin-wait under contention)")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"],
                    help="auto: CUDA when torch sees it, else the CPU (default cpu: unchanged CPU runs)")
    ap.add_argument("--amp", action="store_true",
                    help="CUDA only: forward pass under bfloat16 autocast (loss in float32; no loss "
                         "scaler needed); ignored on the CPU")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--val-limit", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=500, help="validate every N iterations (and at the end)")
    ap.add_argument("--log-every", type=int, default=50, help="a curves.csv row every N iterations")
    ap.add_argument("--save-every", type=int, default=250,
                    help="rewrite OUT/last.pt (with the training state) every N iterations")
    ap.add_argument("--resume", default="auto",
                    help="auto: continue from OUT/last.pt if there is one; PATH: from that checkpoint; "
                         "never: start afresh (overwrites OUT's checkpoints and logs)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop (resumably, with a checkpoint) once iteration N is done")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (resumably, with a checkpoint) after this process has run this long")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def _write_atomic(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _csv_row(row: dict) -> str:
    return ",".join("" if row.get(c) is None else str(row[c]) for c in CURVE_COLS) + "\n"


def load_data(a) -> tuple[SynthSet, int, AugConfig]:
    aug = AugConfig(scale=tuple(a.scale), translate=a.translate, rect=a.rect)
    sets = [SynthSet(d, a.modality, load_t16=aug.agc_jitter > 0, limit=a.limit) for d in a.data]
    ds = sets[0]
    for s in sets[1:]:
        ds.samples.extend(s.samples)
    return ds, sum(len(s.labels) for s in ds.samples), aug


def prefetch(batcher: Batcher):
    """The batcher's stream made on a helper thread (torch ops release the GIL), two
    batches ahead; the sequence is the same as without the thread. Each batch comes with
    the batcher's state just after it (what a checkpoint taken after that batch needs).
    Closing the generator stops and joins the thread."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce():
        for item in batcher.stream():
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    pass
            if stop.is_set():
                return

    th = threading.Thread(target=produce, daemon=True)
    th.start()
    try:
        while True:
            yield q.get()
    finally:
        stop.set()
        th.join()


class Progress:
    """Where a run is and what it has logged: with the modules, optimizer and generators,
    the training state a checkpoint holds (saved flat in `train_state`)."""

    KEYS = ("iter", "total", "warm", "fitted", "best", "t_val", "wall_s", "run", "n_run", "c_sum", "c_n",
            "records", "rows")
    ACCUM = ("run", "n_run", "c_sum", "c_n")

    def __init__(self, total: int, warmup: int):
        self.iter, self.total, self.warm, self.fitted = 0, total, min(warmup, total // 3), False
        self.best, self.t_val, self.wall_s = -1.0, 0.0, 0.0  # wall_s: of the processes before this one
        self.run, self.n_run = torch.zeros(3), 0  # loss parts since the last evaluation
        self.c_sum, self.c_n = torch.zeros(3), 0  # loss parts since the last curves row
        self.records, self.rows = [], []  # everything in log.jsonl / curves.csv so far

    def state(self, wall_s: float) -> dict:
        st = {k: getattr(self, k) for k in self.KEYS}
        st.update(wall_s=wall_s, run=self.run.clone(), c_sum=self.c_sum.clone(),
                  records=list(self.records), rows=list(self.rows))
        return st

    def load(self, ts: dict, accum: bool = True):
        for k in self.KEYS:
            if accum or k not in self.ACCUM:
                setattr(self, k, ts[k])
        self.records, self.rows = list(self.records), list(self.rows)

    def add(self, parts: torch.Tensor):
        self.run += parts
        self.n_run += 1
        self.c_sum += parts
        self.c_n += 1
        self.iter += 1


class Logs:
    """OUT/log.jsonl and OUT/curves.csv: first what the checkpoint had (lines written after
    it are dropped: the resumed run writes them again), then appended to as the run goes."""

    def __init__(self, out: Path, pg: Progress):
        self.pg = pg
        _write_atomic(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in pg.records))
        _write_atomic(out / "curves.csv", ",".join(CURVE_COLS) + "\n" + "".join(_csv_row(r) for r in pg.rows))
        self.log, self.curves = open(out / "log.jsonl", "a"), open(out / "curves.csv", "a")

    def record(self, rec: dict):
        self.pg.records.append(rec)
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()

    def row(self, row: dict):
        self.pg.rows.append(row)
        self.curves.write(_csv_row(row))
        self.curves.flush()

    def close(self):
        self.log.close()
        self.curves.close()


class StopRequests:
    """SIGINT/SIGTERM while training: finish the iteration, checkpoint, stop; a second
    signal aborts. Installed only on the main thread; the old handlers come back on exit."""

    def __enter__(self):
        self.signals: list[int] = []
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            self.old = {sig: signal.signal(sig, self._on) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _on(self, signum, frame):
        if self.signals:
            raise KeyboardInterrupt
        self.signals.append(signum)
        print(f"signal {signum}: stopping with a checkpoint after this iteration (again: abort)", flush=True)

    def __exit__(self, *exc):
        for sig, h in self.old.items():
            signal.signal(sig, h)


def make_model(a, ck_path, ck: dict | None, dev: torch.device) -> nn.Module:
    """The raw (training) model, on the CPU: from the checkpoint being resumed, from --init, or new."""
    if ck:
        model = build_model(dict(ck["cfg"]), nc=ck["cfg"]["nc"])
        model.load_state_dict(ck["train_state"]["model"])
        ts = ck["train_state"]
        print(f"resuming {ck_path} at iteration {ts['iter']} of {ts['total']} "
              f"(trained on {ts['device']}, now {dev})", flush=True)
    elif a.init:
        model, ck0 = load_checkpoint(a.init, a.cfg)
        print(f"init from {a.init} ({ck0.get('modality')} model, iteration {ck0.get('iter')})")
    else:
        model = build_model(a.cfg)
    return model.train()


def train_step(model, crit, opt, ema, x, tg, dev: torch.device, amp: bool):
    x = x.to(dev, non_blocking=True)
    if amp:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            feats = model(x)
        feats = [f.float() for f in feats]  # the loss in float32
    else:
        feats = model(x)
    loss, parts = crit(feats, tg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    opt.step()
    ema.update(model)
    return loss, parts.cpu()


def train(a, _skip_restore: frozenset = frozenset()) -> dict:
    """One run (or the rest of one) per the arguments of `parse_args`; returns the last
    log.jsonl record. `_skip_restore` (tests only) leaves parts of the training state
    unrestored on resumption: any of "opt", "ema", "batcher", "rng", "accum"."""
    # 1. where: device, OUT, the checkpoint to resume (if any)
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    amp = a.amp and dev.type == "cuda"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_proc = time.time()
    ck_path, ck = find_resume(a, out)
    ts = ck["train_state"] if ck else None
    if ts and ts["done"]:
        print(f"{ck_path}: finished ({ts['iter']} of {ts['total']} iterations); nothing to do", flush=True)
        return ts["records"][-1]
    if ts is None:
        seed_all(a.seed)

    # 2. data, model, loss, optimizer, EMA, batches
    ds, n_obj, aug = load_data(a)
    print(f"train: {len(ds)} images, {n_obj} objects ({a.modality}), loaded in {time.time() - t_proc:.1f} s",
          flush=True)
    if ts and (ck["train_images"], ck["train_objects"]) != (len(ds), n_obj):
        raise SystemExit(f"{ck_path} was trained on {ck['train_images']} images / {ck['train_objects']} "
                         f"objects, --data now has {len(ds)} / {n_obj}")
    model = make_model(a, ck_path, ck, dev)
    params, flops = count_params(model), count_flops(model)  # on the CPU (count_flops' input is there)
    model.to(dev)
    print(f"model {model.cfg}: {params / 1e6:.3f} M params, {flops:.3f} GFLOPs at 320, on {dev}"
          f"{' (bf16 autocast)' if amp else ''}", flush=True)
    crit = DetLoss(model)
    opt = torch.optim.AdamW(param_groups(model, a.wd), lr=a.lr, betas=(0.937, 0.999))
    ema = EMA(model, a.ema_decay, a.ema_tau)
    batcher = Batcher(ds, a.batch, aug, a.seed, a.imgsz)
    spe = batcher.steps_per_epoch()
    pg = Progress(a.iters or spe * a.epochs, a.warmup)

    # 3. the rest of the training state, when resuming
    if ts:
        if "opt" not in _skip_restore:
            opt.load_state_dict(ts["opt"])
        if "ema" not in _skip_restore:
            ema.ema.load_state_dict(ck["state_dict"])
            ema.updates = ts["ema_updates"]
        if "batcher" not in _skip_restore:
            batcher.load_state_dict(ts["batcher"])
        if "rng" not in _skip_restore:
            set_rng_state(ts["rng"], dev)
        pg.load(ts, accum="accum" not in _skip_restore)

    # 4. schedule: lr by iteration, weak augmentation at the end (by batch index, so the
    # prefetching thread applies it at the same batch every run), the --minutes probe
    # (iterations 10-40 of this process, if an interruption came before the fit)
    def lr_at(k):
        if k < pg.warm:
            return a.lr * (0.1 + 0.9 * k / pg.warm)
        p = min(1.0, (k - pg.warm) / max(1, pg.total - pg.warm))
        return a.lr * (a.lrf + (1 - a.lrf) * 0.5 * (1 + math.cos(math.pi * p)))

    weak = AugConfig(scale=(0.8, 1.25), translate=0.05, agc_jitter=0.0, blur=0.0, noise=0.01)
    batcher.aug_schedule = lambda k: weak if k >= pg.total * (1 - a.weak_aug_frac) else aug
    probe = (pg.iter + 10, pg.iter + 40) if a.minutes and not a.iters and not pg.fitted else None

    # 5. logs and checkpoints
    logs = Logs(out, pg)
    if ts:
        logs.record({"event": "resume", "iter": pg.iter, "from": str(ck_path), "device": str(dev)})
    else:
        logs.record({"event": "start", "device": str(dev), "amp": amp})
    meta = dict(modality=a.modality, args=_plain(vars(a)), params=params, gflops=flops,
                train_images=len(ds), train_objects=n_obj)
    w_loss = torch.tensor([crit.w_box, crit.w_cls, crit.w_dfl])
    wall0 = pg.wall_s
    wall = lambda: wall0 + time.time() - t_proc  # noqa: E731  (over all the run's processes)

    def save_last(done: bool, bstate: dict):
        ts_new = {"version": 1, "args": _plain(vars(a)), "done": done, "device": str(dev), "amp": amp,
                  "model": model.state_dict(), "ema_updates": ema.updates, "opt": opt.state_dict(),
                  "batcher": bstate, "rng": rng_state(dev), **pg.state(wall())}
        save_checkpoint(out / "last.pt", ema.ema, {**meta, "iter": pg.iter, "total_iters": pg.total,
                                                   "wall_s": wall(), "train_state": ts_new})

    def evaluate() -> tuple[dict, dict | None]:
        rec = {"iter": pg.iter, "epoch": round(pg.iter / spe, 2), "loss": (pg.run / max(pg.n_run, 1)).tolist(),
               "sec_per_it": round((time.time() - t_blk) / n_blk, 3), "wall_s": round(wall(), 1)}
        m = None
        if a.val:
            t_v = time.time()
            m = validate(ema.ema, Path(a.val), a.modality, a.val_limit, a.imgsz)
            pg.t_val += time.time() - t_v
            rec.update({"val_mAP50-95": m["mAP50-95"], "val_mAP50": m["mAP50"],
                        "val_per_class": m["per_class"], "val_s": round(time.time() - t_v, 1)})
            if m["mAP50-95"] > pg.best:
                pg.best = m["mAP50-95"]
                save_checkpoint(out / "best.pt", ema.ema, {**meta, "iter": pg.iter, "val": m})
        pg.run, pg.n_run = torch.zeros(3), 0
        return rec, m

    def curve_row(lr: float, m: dict | None) -> dict:
        c = pg.c_sum / max(pg.c_n, 1)
        row = {"iter": pg.iter, "epoch": round(pg.iter / spe, 3), "lr": f"{lr:.4e}",
               "loss": round(float((c * w_loss).sum()), 5), "box": round(float(c[0]), 5),
               "cls": round(float(c[1]), 5), "dfl": round(float(c[2]), 5),
               "val_mAP50-95": None if m is None else round(m["mAP50-95"], 5),
               "val_mAP50": None if m is None else round(m["mAP50"], 5), "wall_s": round(wall(), 1)}
        pg.c_sum, pg.c_n = torch.zeros(3), 0
        return row

    # 6. the loop
    t_blk, n_blk, t_probe, last_rec = time.time(), 0, None, None
    stream = prefetch(batcher)
    try:
        with StopRequests() as stop_req:
            for ep, (x, tg), bstate in stream:
                lr = lr_at(pg.iter)
                for g in opt.param_groups:
                    g["lr"] = lr
                loss, parts = train_step(model, crit, opt, ema, x, tg, dev, amp)
                pg.add(parts)
                n_blk += 1
                it = pg.iter
                if probe and it == probe[0]:
                    t_probe = time.time()
                if probe and it == probe[1]:
                    sec_it = (time.time() - t_probe) / (probe[1] - probe[0])
                    left = max(0.0, a.minutes * 60 - wall())
                    # keep ~8 % of the budget for validation passes and the final save
                    total = max(it + 50, int(left * 0.92 / sec_it) + it)
                    pg.total = int(round(total / 50.0)) * 50
                    pg.warm, pg.fitted = min(a.warmup, pg.total // 3), True
                    print(f"budget {a.minutes} min at {sec_it:.2f} s/it -> {pg.total} iterations "
                          f"({pg.total / spe:.2f} epochs); replay with --iters {pg.total}", flush=True)
                    logs.record({"fitted_iters": pg.total, "sec_per_it": round(sec_it, 3)})
                if it % 50 == 0:
                    print(f"it {it}/{pg.total} ep {ep} loss {loss.item():.3f} box/cls/dfl "
                          f"{[round(v, 3) for v in (pg.run / max(pg.n_run, 1)).tolist()]} lr {lr_at(it):.2e} "
                          f"{(time.time() - t_blk) / n_blk:.2f} s/it", flush=True)
                last = it >= pg.total
                why = (f"--stop-after {a.stop_after}" if a.stop_after is not None and it >= a.stop_after else
                       f"--max-minutes {a.max_minutes}" if a.max_minutes and time.time() - t_proc > 60 * a.max_minutes
                       else f"signal {stop_req.signals[0]}" if stop_req.signals else None)
                m = evaluated = None
                if (a.val and it % a.val_every == 0) or last:
                    rec, m = evaluate()
                    print(json.dumps(rec), flush=True)
                    logs.record(rec)
                    t_blk, n_blk, evaluated = time.time(), 0, True
                if it % a.log_every == 0 or evaluated or last:
                    logs.row(curve_row(lr, m))
                if last:
                    if not a.val:
                        save_checkpoint(out / "best.pt", ema.ema, {**meta, "iter": it})
                    last_rec = {"done": True, "wall_s": round(wall(), 1), "val_s": round(pg.t_val, 1), "iters": it,
                                "total_iters": pg.total, "epochs": round(it / spe, 2),
                                "best_val_mAP50-95": pg.best,
                                "resumes": sum(r.get("event") == "resume" for r in pg.records)}
                    logs.record(last_rec)
                    print(json.dumps(last_rec), flush=True)
                    save_last(True, bstate)
                    break
                if why:
                    last_rec = {"event": "stop", "iter": it, "total_iters": pg.total, "why": why}
                    logs.record(last_rec)
                    save_last(False, bstate)
                    print(f"stopped at iteration {it} of {pg.total} ({why}); rerun the same command to resume",
                          flush=True)
                    break
                if it % a.save_every == 0 or evaluated:
                    save_last(False, bstate)
    finally:
        stream.close()
        logs.close()
    return last_rec


def main():
    """Exit status: 0 when the run is finished, 128+N when signal N stopped it, 75 when
    --stop-after or --max-minutes did (so a pipeline under `set -e` stops there too)."""
    last = train(parse_args())
    if not last.get("done"):
        why = last.get("why", "")
        sys.exit(128 + int(why.split()[1]) if why.startswith("signal") else 75)


if __name__ == "__main__":
    main()
