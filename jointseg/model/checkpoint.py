"""Training checkpoints (``last.pt`` / ``best.pt``): writing, loading, summarising.

A checkpoint is a ``torch.save``d dict: ``model`` (state dict, cpu), ``optimizer``,
``disc`` / ``disc_optimizer`` (GAN, or None), ``epoch`` (0-based, last finished),
``arch_version`` (:data:`jointseg.model.jointseg.ARCH_VERSION`), ``config``
(``asdict(TrainConfig)``), ``history`` (per-epoch rows), ``best_f1``, ``torch_rng``,
``world_size`` (processes that trained it), ``data`` (chip directory, counts, validation
reference, ``index_sha256``) and ``training_data`` (``{"id", "simulated"}``, see
:func:`jointseg.model.chips.training_data_record`). ``last.pt`` also holds ``best_model``
(``{"epoch", "model"}``: the best epoch's weights), from which ``best.pt`` is rebuilt.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from jointseg.io import atomic_path
from jointseg.model.chips import index_training_data_id
from jointseg.model.history import write_history
from jointseg.model.jointseg import ARCH_VERSION, build_model

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """Training cannot start or continue (missing data, incompatible checkpoint)."""


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically, with its ``.sha256`` sidecar (export
    verifies ``best.pt`` against it)."""
    with atomic_path(path, checksum=True) as tmp:
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


#: TrainConfig fields a resumed run may change: they do not alter the weights' course.
RESUME_FREE = ("threads", "device", "gpus")


def why_not_resumable(path: Path, ckpt: dict[str, Any], config: dict[str, Any],
                      chips_sha: str, record: dict[str, Any]) -> str | None:
    """Why the checkpoint dict ``ckpt`` (read from ``path``) cannot be resumed by a run of
    ``config`` (``asdict(TrainConfig)``) on chips whose index.csv has sha256 ``chips_sha``
    and whose training-data record is ``record``; None when it can.

    Not resumable: another network layout version; other chips (the index differs, or
    both the checkpoint and the chips declare a training-data id, in ``provenance.json``,
    and the ids differ: same chip grid, other imagery); other settings (any field but
    :data:`RESUME_FREE`); an older format without the best epoch's weights
    (``best_model``) or a history row per epoch, from which ``best.pt`` and
    ``history.csv`` could not be rebuilt.

    Raises:
        TrainError: if the checkpoint's arch/preset differ from ``config``'s (another
            model's folder, most likely: not overwritten).
    """
    version = ckpt.get("arch_version", 1)
    if version != ARCH_VERSION:
        return f"has network layout version {version}, this code builds {ARCH_VERSION}"
    if ckpt.get("data", {}).get("index_sha256") != chips_sha:
        return "was trained on other chips (index.csv differs)"
    old_id = (ckpt.get("training_data") or {}).get("id")
    derived = index_training_data_id(chips_sha)
    if old_id not in (None, derived) and record["id"] not in (old_id, derived):
        return f"was trained on training data {old_id!r}, the chips are {record['id']!r}"
    arch = (ckpt["config"]["arch"], ckpt["config"]["preset"])
    if arch != (config["arch"], config["preset"]):
        raise TrainError(f"{path}: checkpoint is {arch[0]}/{arch[1]}, asked for "
                         f"{config['arch']}/{config['preset']}")
    changed = sorted(k for k, v in ckpt["config"].items()
                     if k not in RESUME_FREE and config.get(k) != v)
    if changed:
        return f"was trained with other settings ({', '.join(changed)})"
    history = ckpt.get("history")
    if "best_model" not in ckpt or not isinstance(history, list) \
            or len(history) != ckpt["epoch"] + 1:
        return "is of an older format (no copy of its best epoch or no full history)"
    return None


def best_checkpoint(last_ckpt: dict[str, Any], best: dict) -> dict[str, Any]:
    """``best.pt``'s content rebuilt from ``last.pt``'s dict and its copy of the best
    epoch's weights: that epoch's weights, number and history (no optimiser state)."""
    rest = {k: v for k, v in last_ckpt.items() if k != "best_model"}
    return {**rest, "model": best["model"], "epoch": best["epoch"], "optimizer": None,
            "history": [h for h in last_ckpt["history"] if h["epoch"] <= best["epoch"]]}


def complete_outputs(out_dir: Path, last_ckpt: dict[str, Any], data: dict[str, Any],
                      record: dict[str, Any]) -> None:
    """On resuming from ``out_dir/last.pt`` (its dict ``last_ckpt``), rebuild what the
    workflow removed before the rerun: ``best.pt`` from ``last.pt``'s copy of the best
    epoch (:func:`best_checkpoint`) and ``history.csv`` / ``loss.png`` from its history,
    so that a finished run, which trains nothing more, still has every output.

    When the chips' description changed since ``last.pt`` was written (``data`` and
    ``record``: same ``index.csv``, but a ``provenance.json`` added, the folder moved),
    ``last.pt`` and ``best.pt`` are rewritten with the new one; the weights stay.
    """
    best_path = out_dir / "best.pt"
    stale = last_ckpt.get("data") != data or last_ckpt.get("training_data") != record
    if stale:
        log.info("%s: recording the chips' current description %s", out_dir / "last.pt",
                 record)
        last_ckpt = {**last_ckpt, "data": data, "training_data": record}
        save_checkpoint(out_dir / "last.pt", last_ckpt)
    if stale or not best_path.is_file():
        if not best_path.is_file():
            log.warning("%s missing (removed by the workflow?); rewritten from last.pt's copy "
                        "of epoch %d", best_path, last_ckpt["best_model"]["epoch"])
        save_checkpoint(best_path, best_checkpoint(last_ckpt, last_ckpt["best_model"]))
    write_history(out_dir, last_ckpt["history"])


def better(f1: float, best_f1: float) -> float:
    """The higher of two validation F1s; an undefined (NaN) F1 never wins."""
    return f1 if f1 > best_f1 else best_f1


def selection_score(row: dict[str, Any], calibrate: bool) -> float:
    """The validation score ``best.pt`` is chosen by: F1 at the calibrated threshold
    (``val_f1_cal``) with ``calibrate``, else F1 at p >= 0.5 (``val_f1``)."""
    return row["val_f1_cal"] if calibrate and "val_f1_cal" in row else row["val_f1"]


def training_summary(checkpoint: str | Path) -> dict[str, Any]:
    """JSON summary of a run from a checkpoint: data, ``training_data`` (``{"id",
    "simulated"}``), epochs (validation rounds), ``steps`` (joint / segmentation optimiser
    steps), ``sr_pretrain_steps_run`` (and the ``sr_pretrain`` record), world size, best
    and last validation metrics, and
    ``threshold``: the probability cut of the binary map (the best epoch's calibrated
    ``val_threshold`` with ``calibrate``, else 0.5)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hist = ckpt["history"]
    calibrate = bool(ckpt["config"].get("calibrate", False))
    best = max(hist, key=lambda h: better(selection_score(h, calibrate), -1.0)) if hist else {}
    pick = ("epoch", "val_f1", "val_precision", "val_recall", "val_iou", "val_psnr",
            "val_f1_cal", "val_threshold")
    threshold = best.get("val_threshold") if calibrate else None
    return {"arch": ckpt["config"]["arch"], "preset": ckpt["config"]["preset"],
            "data": ckpt.get("data", {}), "training_data": checkpoint_training_data(ckpt),
            "epochs": ckpt["epoch"] + 1, "steps": ckpt.get("steps"),
            "sr_pretrain_steps_run": (ckpt.get("sr_pretrain") or {}).get("steps_run", 0),
            "sr_pretrain": ckpt.get("sr_pretrain"),
            "seed": ckpt["config"]["seed"], "world_size": ckpt.get("world_size", 1),
            "threshold": 0.5 if threshold is None else float(threshold),
            "threshold_source": "calibrated" if threshold is not None else "fixed",
            "best": {k: best.get(k) for k in pick},
            "last": {k: hist[-1].get(k) for k in pick} if hist else {}}


def checkpoint_training_data(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``training_data`` record; for a checkpoint written before it
    existed, the record its chips would have given without ``provenance.json``: the id
    from ``data.index_sha256`` (None if that is missing too) and ``simulated`` True
    where ``data.simulated`` (the chips' simulator tag) said so, else None (unknown)."""
    if ckpt.get("training_data"):
        return dict(ckpt["training_data"])
    data = ckpt.get("data") or {}
    sha = data.get("index_sha256")
    return {"id": index_training_data_id(sha) if sha else None,
            "simulated": True if data.get("simulated") else None}
