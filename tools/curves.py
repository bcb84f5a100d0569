"""Training curves of train.py runs (OUT/curves.csv): a PNG, and a Markdown table.

  python3 tools/curves.py runs/rgb runs/thermal_scratch runs/thermal_ft --png tools/curves.png
  python3 tools/curves.py runs/thermal_ft --table          # the evaluations as a Markdown table

The figure has two panels: the training loss (box*7.5 + cls*0.5 + dfl*1.5, the mean over each
--log-every block of iterations) and the monitoring mAP50-95 at each evaluation, one line per
run against the iteration. Needs matplotlib (optional: only this script imports it).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_curves(run: Path) -> list[dict]:
    """Rows of RUN/curves.csv (or of the file itself), numbers as floats, blanks as None."""
    path = run / "curves.csv" if run.is_dir() else run
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]


def table(name: str, rows: list[dict]) -> str:
    ev = [r for r in rows if r["val_mAP50-95"] is not None]
    out = [f"| {name}: iteration | epoch | loss | val mAP50-95 | val mAP50 | wall, min |", "|---|---|---|---|---|---|"]
    for r in ev:
        out.append(f"| {int(r['iter'])} | {r['epoch']:.2f} | {r['loss']:.3f} | {r['val_mAP50-95']:.4f} | "
                   f"{r['val_mAP50']:.4f} | {r['wall_s'] / 60:.1f} |")
    return "\n".join(out)


def plot(runs: dict[str, list[dict]], png: Path, title: str | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for name, rows in runs.items():
        it = [r["iter"] for r in rows]
        (line,) = ax_l.plot(it, [r["loss"] for r in rows], lw=1, label=name)
        ev = [r for r in rows if r["val_mAP50-95"] is not None]
        ax_m.plot([r["iter"] for r in ev], [r["val_mAP50-95"] for r in ev], "o-", ms=3, color=line.get_color(),
                  label=name)
    ax_l.set(xlabel="iteration", ylabel="training loss", yscale="log", title="loss (per --log-every block)")
    ax_m.set(xlabel="iteration", ylabel="mAP50-95", title="monitoring mAP50-95 (EMA weights)")
    for ax in (ax_l, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="train.py --out dirs (or curves.csv files)")
    ap.add_argument("--png", default=None, help="write the figure here")
    ap.add_argument("--table", action="store_true", help="print each run's evaluations as a Markdown table")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    runs = {}
    for r in a.runs:
        p = Path(r)
        runs[(p if p.is_dir() else p.parent).name] = read_curves(p)
    if a.table or not a.png:
        for name, rows in runs.items():
            print(table(name, rows) + "\n")
    if a.png:
        plot(runs, Path(a.png), a.title)
        print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
