"""A training run's per-epoch history: ``history.csv`` and the ``loss.png`` plot."""

from __future__ import annotations

import csv
from pathlib import Path

from jointseg.io import atomic_path

#: Columns of ``history.csv``, one row per epoch (losses unitless, PSNR in dB, F1 at the
#: calibrated probability threshold and that threshold, lr of the non-trunk parameters
#: at the epoch's last step; ``step``: optimiser steps done by the row's validation,
#: ``sr_scale``: the gradnorm scale of the SR loss, empty when unused).
HISTORY_COLUMNS = ("epoch", "step", "phase", "train_loss", "train_sr", "train_seg",
                   "sr_scale", "val_f1", "val_precision", "val_recall", "val_iou", "val_psnr",
                   "val_f1_cal", "val_threshold", "lr", "seconds")


def write_history(out_dir: Path, history: list[dict]) -> None:
    """Rewrite ``out_dir/history.csv`` and ``out_dir/loss.png`` from ``history`` rows."""
    with atomic_path(out_dir / "history.csv") as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})
    plot_history(history, out_dir / "loss.png")


def plot_history(history: list[dict], path: Path) -> None:
    """Loss curves and validation metrics to a PNG (matplotlib Agg), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "train_sr", "train_seg"):
        a.plot(ep, [h[key] for h in history], marker=".", label=key)
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.set_yscale("log")
    a.legend()
    for key in ("val_f1", "val_f1_cal", "val_iou"):
        if all(key in h for h in history):
            b.plot(ep, [h[key] for h in history], marker=".", label=key)
    b.set_xlabel("epoch")
    b.set_ylabel("score")
    b.set_ylim(0, 1)
    b2 = b.twinx()
    b2.plot(ep, [h["val_psnr"] for h in history], "k--", label="val_psnr (dB)")
    b2.set_ylabel("PSNR (dB)")
    b.legend(loc="lower left")
    b2.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
