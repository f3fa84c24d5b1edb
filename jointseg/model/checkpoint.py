"""Training checkpoints (``last.pt`` / ``best.pt``): writing, loading, summarising.

A checkpoint is a ``torch.save``d dict: ``model`` (state dict, cpu), ``optimizer``,
``disc`` / ``disc_optimizer`` (GAN, or None), ``epoch`` (0-based, last finished),
``arch_version`` (:data:`jointseg.model.jointseg.ARCH_VERSION`), ``config``
(``asdict(TrainConfig)``), ``history`` (per-epoch rows), ``best_f1``, ``torch_rng``,
``world_size`` (processes that trained it) and ``data`` (chip counts, simulated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from jointseg.io import atomic_path
from jointseg.model.jointseg import ARCH_VERSION, build_model


class TrainError(RuntimeError):
    """Training cannot start or continue (missing data, incompatible checkpoint)."""


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def check_arch_version(path: Path, ckpt: dict[str, Any]) -> None:
    """Raise TrainError unless ``ckpt`` was written for this code's network layout."""
    version = ckpt.get("arch_version", 1)
    if version != ARCH_VERSION:
        raise TrainError(f"{path}: checkpoint has network layout version {version}, this code "
                         f"builds version {ARCH_VERSION}; retrain the model")


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Model (eval mode, cpu) and the raw checkpoint dict from a ``.pt`` of ``train``.

    Raises:
        TrainError: if the file is missing, not a JointSeg checkpoint, or of another
            network layout version.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise TrainError(f"{path}: not a jointseg checkpoint (no 'model'/'config' keys)")
    check_arch_version(path, ckpt)
    model = build_model(ckpt["config"]["arch"], ckpt["config"]["preset"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def better(f1: float, best_f1: float) -> float:
    """The higher of two validation F1s; an undefined (NaN) F1 never wins."""
    return f1 if f1 > best_f1 else best_f1


def selection_score(row: dict[str, Any], calibrate: bool) -> float:
    """The validation score ``best.pt`` is chosen by: F1 at the calibrated threshold
    (``val_f1_cal``) with ``calibrate``, else F1 at p >= 0.5 (``val_f1``)."""
    return row["val_f1_cal"] if calibrate and "val_f1_cal" in row else row["val_f1"]


def training_summary(checkpoint: str | Path) -> dict[str, Any]:
    """JSON summary of a run from a checkpoint: data, epochs, world size, best and last
    validation metrics, and ``threshold``: the probability cut of the binary map (the
    best epoch's calibrated ``val_threshold`` with ``calibrate``, else 0.5)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hist = ckpt["history"]
    calibrate = bool(ckpt["config"].get("calibrate", False))
    best = max(hist, key=lambda h: better(selection_score(h, calibrate), -1.0)) if hist else {}
    pick = ("epoch", "val_f1", "val_precision", "val_recall", "val_iou", "val_psnr",
            "val_f1_cal", "val_threshold")
    threshold = best.get("val_threshold") if calibrate else None
    return {"arch": ckpt["config"]["arch"], "preset": ckpt["config"]["preset"],
            "data": ckpt.get("data", {}), "epochs": ckpt["epoch"] + 1,
            "seed": ckpt["config"]["seed"], "world_size": ckpt.get("world_size", 1),
            "threshold": 0.5 if threshold is None else float(threshold),
            "threshold_source": "calibrated" if threshold is not None else "fixed",
            "best": {k: best.get(k) for k in pick},
            "last": {k: hist[-1].get(k) for k in pick} if hist else {}}
