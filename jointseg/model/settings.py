"""Training settings: :class:`TrainConfig` (the workflow config's ``model.train:``) and
its readers. Defaults mirror ``model.train`` in ``jointseg/schemas/config.schema.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jointseg.config import ConfigError
from jointseg.model.jointseg import ARCHS, PRESETS
from jointseg.model.losses import LossConfig
from jointseg.model.schedule import AMP_MODES

LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Training settings (the workflow config's ``model.train:`` section).

    Attributes:
        arch: jointseg | bilinear | bilinear-wide (the baseline widened to JointSeg's
            parameter count).  preset: tiny | paper.
        epochs: total epochs (ignored when ``max_steps`` > 0).
        batch_size: crops per step *per process*.
        max_steps: > 0: train exactly this many (joint / segmentation) optimiser steps
            instead of ``epochs``, validating every ``val_every`` steps (and after the
            last); ``loss.sr_warmup_epochs`` is then ignored (SR-only training is
            ``sr_pretrain_steps``'s). 0: ``epochs`` govern.
        val_every: optimiser steps between validations with ``max_steps`` (0 = one pass
            over the crops, ``n_train x crops_per_chip / batch_size`` steps).
        sr_pretrain_steps: jointseg only: at most this many steps of SR pre-training (SR
            loss only, the segmentation branch not run, every SR parameter at ``lr``)
            before the joint phase; 0 = none. Not counted in ``max_steps`` (summary.json:
            ``sr_pretrain_steps_run``). Skipped when ``loss.w_sr`` is 0.
        sr_pretrain_patience: pre-training stops after this many validations (every
            ``sr_pretrain_val_every`` steps) without the val SR L1 improving by more than
            ``sr_pretrain_min_delta`` (relative) on the best so far; the best weights stay.
        sr_target_match: correct each chip's HR target to the composite's season and
            radiometry first (:func:`jointseg.model.target.match_target`).
        lr: Adam learning rate of every parameter outside the RRDB trunk.
        lr_trunk: Adam learning rate of the SR branch's RRDB trunk (ESRGAN: 2e-4).
        lr_warmup_epochs: linear warm-up of both rates over this many epochs of steps.
        lr_schedule: cosine (decay to ``min_lr_ratio`` at the last step) | constant.
        min_lr_ratio: final / base rate of the cosine.
        grad_clip: max global gradient L2 norm (0 = no clipping).
        amp: auto | bf16 | fp16 | off: autocast on CUDA, never on the CPU; auto = bf16
            where the GPU has it natively, fp16 with loss scaling on V100/T4-class GPUs,
            fp32 on older ones (:func:`jointseg.model.schedule.amp_dtype`).
        channels_last: channels_last memory layout of weights and batches (CUDA and CPU).
        gpus: DDP processes (one per GPU) ``jointseg train`` launches under torchrun when
            it is not already running under a launcher; the workflow's ``train_model``
            asks the scheduler for this many GPUs. ``train()`` itself ignores it.
        seed: seeds weights and augmentation.  threads: torch CPU threads per process.
        crop_10m: crop side in 10 m pixels (even; 16 = 160 m).
        crops_per_chip: random crops drawn per training chip per epoch.
        augment: random flips / 90-degree rotations.
        device: torch device for training (``auto``: cuda when available, else cpu).
        calibrate: choose ``best.pt`` by F1 at the probability threshold that maximises it
            on the validation reference, and record that threshold as the model's cut
            for the binary map (``infer.threshold: null``); False = F1 at 0.5, cut 0.5.
        loss: loss weights and schedule (:class:`LossConfig`).
    """

    arch: str = "jointseg"
    preset: str = "tiny"
    epochs: int = 10
    batch_size: int = 8
    max_steps: int = 0
    val_every: int = 0
    sr_pretrain_steps: int = 0
    sr_pretrain_patience: int = 4
    sr_pretrain_min_delta: float = 0.01
    sr_pretrain_val_every: int = 25
    sr_target_match: bool = False
    lr: float = 2e-3
    lr_trunk: float = 2e-4
    lr_warmup_epochs: float = 1.0
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    amp: str = "auto"
    channels_last: bool = True
    gpus: int = 1
    seed: int = 0
    threads: int = 2
    crop_10m: int = 16
    crops_per_chip: int = 1
    augment: bool = True
    device: str = "auto"
    calibrate: bool = True
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"model.arch: {self.arch!r} is not one of {ARCHS}")
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset: {self.preset!r} is not one of {sorted(PRESETS)}")
        if self.crop_10m <= 0 or self.crop_10m % 2:
            raise ConfigError(f"model.crop_10m: {self.crop_10m} must be a positive even number")
        for name in ("epochs", "batch_size", "threads", "crops_per_chip", "gpus"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"model.lr_schedule: {self.lr_schedule!r} is not one of "
                              f"{LR_SCHEDULES}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"model.amp: {self.amp!r} is not one of {AMP_MODES}")
        for name in ("max_steps", "val_every", "sr_pretrain_steps", "sr_pretrain_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name}: must be >= 0, got {getattr(self, name)}")
        if self.sr_pretrain_val_every < 1 or self.sr_pretrain_min_delta < 0:
            raise ConfigError("model: sr_pretrain_val_every must be >= 1, "
                              "sr_pretrain_min_delta >= 0")
        for name in ("lr", "lr_trunk"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name}: must be > 0, got {getattr(self, name)}")
        if self.lr_warmup_epochs < 0 or self.grad_clip < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("model: lr_warmup_epochs and grad_clip must be >= 0, "
                              "min_lr_ratio in [0, 1]")


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a dict (a ``model:`` section or the whole config).

    Raises:
        ConfigError: on an unknown key (named) or a bad value.
    """
    d = dict(d.get("model", d)) if isinstance(d, dict) else {}
    loss_d = d.pop("loss", None) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"loss"}
    extra = set(d) - known
    if extra:
        raise ConfigError(f"model: unknown keys {sorted(extra)}; known: {sorted(known)}")
    loss_known = {f.name for f in dataclasses.fields(LossConfig)}
    extra = set(loss_d) - loss_known
    if extra:
        raise ConfigError(f"model.loss: unknown keys {sorted(extra)}; known: {sorted(loss_known)}")
    return TrainConfig(**d, loss=LossConfig(**loss_d))


def load_train_settings(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; returns its ``model.train:`` or ``model:`` section.

    A workflow config (``model: {name, chips, train: {...}}``) gives ``model.train``;
    a plain file may hold the training keys directly under ``model:`` or at top level.

    Raises:
        ConfigError: if the file is not YAML, or it or its ``model:`` is not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    section = data.get("model", data) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: model: expected a mapping of training settings")
    if isinstance(section.get("train"), dict):
        section = section["train"]
    return dict(section)
