"""Training: paired chips -> JointSeg / bilinear-baseline checkpoints.

``train(chips_dir, out_dir, cfg)`` fits normalisation statistics on the training
chips, then runs the staged schedule (jointseg arch: ``sr_warmup_epochs`` of SR
loss only, then joint ``w_sr * L_sr + w_seg * L_seg``; bilinear arch: segmentation
loss throughout). Every epoch it validates on the ``val`` chips (F1/IoU at 1 m,
SR PSNR), writes ``last.pt``, keeps ``best.pt`` (highest val F1), and rewrites
``history.csv`` and ``loss.png``. Runs are reproducible: the weights come from
``seed`` and each epoch's crops/flips from ``(seed, epoch)``, so ``resume`` from
``last.pt`` continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jointseg.config import ConfigError
from jointseg.io import atomic_path, write_json
from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.model.chips import Chip, band_stats, load_chips, random_crop
from jointseg.model.history import write_history
from jointseg.model.jointseg import ARCH_VERSION, ARCHS, PRESETS, build_model
from jointseg.model.losses import (
    LossConfig,
    SRLoss,
    UNetDiscriminatorSN,
    bce_dice_loss,
    relativistic_d_loss,
)
from jointseg.model.metrics import psnr

log = logging.getLogger(__name__)

class TrainError(RuntimeError):
    """Training cannot start or continue (missing data, incompatible checkpoint)."""


@dataclass
class TrainConfig:
    """Training settings (the workflow config's ``model:`` section).

    Attributes:
        arch: jointseg | bilinear.  preset: tiny | paper.
        epochs: total epochs.  batch_size: crops per step.  lr: Adam learning rate.
        seed: seeds weights and augmentation.  threads: torch CPU threads.
        crop_10m: crop side in 10 m pixels (even; 16 = 160 m).
        crops_per_chip: random crops drawn per training chip per epoch.
        augment: random flips / 90-degree rotations.
        device: torch device for training (``auto``: cuda when available, else cpu).
        loss: loss weights and schedule (:class:`LossConfig`).
    """

    arch: str = "jointseg"
    preset: str = "tiny"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    crop_10m: int = 16
    crops_per_chip: int = 1
    augment: bool = True
    device: str = "auto"
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"model.arch: {self.arch!r} is not one of {ARCHS}")
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset: {self.preset!r} is not one of {sorted(PRESETS)}")
        if self.crop_10m <= 0 or self.crop_10m % 2:
            raise ConfigError(f"model.crop_10m: {self.crop_10m} must be a positive even number")
        for name in ("epochs", "batch_size", "threads", "crops_per_chip"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: must be >= 1, got {getattr(self, name)}")


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


def _to_batch(crops: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    s10 = torch.from_numpy(np.stack([c[0] for c in crops]).astype(np.float32))
    s20 = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.float32))
    hr = torch.from_numpy(np.stack([c[2] for c in crops]).astype(np.float32) / 10000.0)
    label = torch.from_numpy(np.stack([c[3] for c in crops]))
    return s10, s20, hr, label


def chip_tensors(chip: Chip) -> tuple[torch.Tensor, torch.Tensor]:
    """A chip's (1,5,h,w) and (1,6,h/2,w/2) float32 DN inputs."""
    return (torch.from_numpy(chip.s2_10m.astype(np.float32))[None],
            torch.from_numpy(chip.s2_20m.astype(np.float32))[None])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; other names as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: torch.nn.Module, chips: list[Chip]) -> dict[str, float]:
    """F1 / precision / recall / IoU at 1 m (logit > 0) and SR PSNR over whole chips."""
    model.eval()
    device = next(model.parameters()).device
    counts = BinaryCounts()
    se, n = 0.0, 0
    for chip in chips:
        logit, sr = (t.cpu() for t in model(*(t.to(device) for t in chip_tensors(chip))))
        counts += binary_counts((logit[0, 0] > 0).numpy(), chip.label)
        hr = chip.hr.astype(np.float64) / 10000.0
        se += float(np.sum((sr[0].double().numpy() - hr) ** 2))
        n += hr.size
    m = binary_metrics(counts)
    out = {k: float(m[k]) for k in ("precision", "recall", "f1", "iou")}
    out["psnr"] = float(psnr(np.zeros(1), np.array([math.sqrt(se / max(n, 1))])))
    return out


def _better(f1: float, best_f1: float) -> float:
    """The higher of two validation F1s; an undefined (NaN) F1 never wins."""
    return f1 if f1 > best_f1 else best_f1


def _phase(cfg: TrainConfig, epoch: int) -> str:
    if cfg.arch == "jointseg" and epoch < cfg.loss.sr_warmup_epochs:
        return "sr_warmup"
    return "joint" if cfg.arch == "jointseg" else "seg"


def _save(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Model (eval mode) and the raw checkpoint dict from a ``.pt`` written by :func:`train`.

    Raises:
        TrainError: if the file is missing or not a JointSeg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise TrainError(f"{path}: not a jointseg checkpoint (no 'model'/'config' keys)")
    _check_arch_version(path, ckpt)
    model = build_model(ckpt["config"]["arch"], ckpt["config"]["preset"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def _check_arch_version(path: Path, ckpt: dict) -> None:
    version = ckpt.get("arch_version", 1)
    if version != ARCH_VERSION:
        raise TrainError(f"{path}: checkpoint has network layout version {version}, this code "
                         f"builds version {ARCH_VERSION}; retrain the model")


def train(chips_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *,
          resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a model on paired chips; returns the training summary (also in summary.json).

    Args:
        chips_dir: chip directory (index.csv + chip folders).
        out_dir: where last.pt, best.pt, history.csv, loss.png, summary.json go.
        cfg: settings; with ``resume`` the checkpoint's config must match arch/preset.
        resume: continue from ``out_dir/last.pt`` if present.
        progress: show a tqdm bar.

    Raises:
        TrainError: if there are no training chips or the checkpoint is incompatible.
    """
    chips_dir, out_dir = Path(chips_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    train_chips = load_chips(chips_dir, "train")
    try:
        val_chips = load_chips(chips_dir, "val")
    except ValueError:
        log.warning("%s: no 'val' chips; validating on the training chips", chips_dir)
        val_chips = train_chips
    run = _Run.build(cfg)
    last = out_dir / "last.pt"
    history, best_f1, start = _resume(run, cfg, last) if resume else ([], -1.0, 0)
    if start == 0:
        stats = band_stats(train_chips)
        run.model.norm.set_stats(**stats)
        log.info("normalisation from %d training chips: %s", len(train_chips), stats)
    data = {"chips_dir": str(chips_dir), "n_train": len(train_chips), "n_val": len(val_chips),
            "simulated": _simulated(train_chips[0], chips_dir)}

    steps = math.ceil(len(train_chips) * cfg.crops_per_chip / cfg.batch_size)
    bar = tqdm(total=cfg.epochs * steps, initial=start * steps, disable=not progress,
               desc=f"train {cfg.arch}/{cfg.preset}", unit="step")
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        train_losses = _train_epoch(run, cfg, epoch, train_chips, steps, bar)
        val = evaluate(run.model, val_chips)
        row = {"epoch": epoch, "phase": _phase(cfg, epoch), **train_losses,
               **{f"val_{k}": v for k, v in val.items()},
               "seconds": round(time.time() - t0, 2)}
        history.append(row)
        log.info("epoch %d (%s): loss %.4f val F1 %.3f IoU %.3f PSNR %.2f dB", epoch,
                 row["phase"], row["train_loss"], val["f1"], val["iou"], val["psnr"])
        ckpt = run.checkpoint(cfg, epoch, history, _better(val["f1"], best_f1), data)
        if val["f1"] > best_f1 or not (out_dir / "best.pt").is_file():
            best_f1 = _better(val["f1"], best_f1)
            _save(out_dir / "best.pt", ckpt)
        _save(last, ckpt)
        write_history(out_dir, history)
    bar.close()
    summary = training_summary(out_dir / "last.pt") if last.is_file() else {}
    write_json(out_dir / "summary.json", summary)
    return summary


@dataclass
class _Run:
    """The model, its optimiser, the SR loss and the optional GAN discriminator of a run."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sr_loss: SRLoss
    disc: UNetDiscriminatorSN | None
    d_opt: torch.optim.Optimizer | None
    device: torch.device

    @classmethod
    def build(cls, cfg: TrainConfig) -> _Run:
        """Fresh weights from ``cfg.seed`` on ``cfg.device``."""
        device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.arch, cfg.preset).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sr_loss = SRLoss(cfg.loss).to(device)
        disc = d_opt = None
        if cfg.arch == "jointseg" and cfg.loss.sr_gan > 0:
            disc = UNetDiscriminatorSN(nf=cfg.loss.d_nf).to(device)
            d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.loss.d_lr, betas=(0.9, 0.99))
        return cls(model, opt, sr_loss, disc, d_opt, device)

    def checkpoint(self, cfg: TrainConfig, epoch: int, history: list[dict], best_f1: float,
                   data: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint dict after ``epoch`` (weights on cpu, optimisers, torch RNG)."""
        return {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(),
                "disc": self.disc.state_dict() if self.disc is not None else None,
                "disc_optimizer": self.d_opt.state_dict() if self.d_opt is not None else None,
                "epoch": epoch, "arch_version": ARCH_VERSION, "config": asdict(cfg),
                "history": history,
                "best_f1": best_f1, "torch_rng": torch.get_rng_state(), "data": data}


def _resume(run: _Run, cfg: TrainConfig, last: Path) -> tuple[list[dict], float, int]:
    """Load ``last`` into ``run``; returns (history, best val F1, next epoch), or a fresh
    start when ``last`` does not exist.

    Raises:
        TrainError: if the checkpoint's arch/preset differ from ``cfg``'s.
    """
    if not last.is_file():
        log.warning("%s not found; starting a fresh run", last)
        return [], -1.0, 0
    ckpt = torch.load(last, map_location=run.device, weights_only=False)
    _check_arch_version(last, ckpt)
    if (ckpt["config"]["arch"], ckpt["config"]["preset"]) != (cfg.arch, cfg.preset):
        raise TrainError(f"{last}: checkpoint is {ckpt['config']['arch']}/"
                         f"{ckpt['config']['preset']}, asked for {cfg.arch}/{cfg.preset}")
    run.model.load_state_dict(ckpt["model"])
    run.opt.load_state_dict(ckpt["optimizer"])
    if run.disc is not None and ckpt.get("disc"):
        run.disc.load_state_dict(ckpt["disc"])
        run.d_opt.load_state_dict(ckpt["disc_optimizer"])
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    log.info("resuming from %s at epoch %d", last, ckpt["epoch"] + 1)
    return ckpt["history"], ckpt["best_f1"], ckpt["epoch"] + 1


def _train_epoch(run: _Run, cfg: TrainConfig, epoch: int, chips: list[Chip], steps: int,
                 bar: tqdm) -> dict[str, float]:
    """One epoch of ``steps`` batches of random crops (drawn from ``(seed, epoch)``);
    returns the mean ``train_loss``, ``train_sr`` and ``train_seg``."""
    phase = _phase(cfg, epoch)
    gan_on = run.disc is not None and epoch >= cfg.loss.gan_start_epoch
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(np.repeat(np.arange(len(chips)), cfg.crops_per_chip))
    run.model.train()
    sums = {"train_loss": 0.0, "train_sr": 0.0, "train_seg": 0.0}
    for s in range(steps):
        idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        crops = [random_crop(chips[i], cfg.crop_10m, rng, cfg.augment) for i in idx]
        s10, s20, hr, label = (t.to(run.device) for t in _to_batch(crops))
        logit, sr = run.model(s10, s20)
        l_sr = run.sr_loss(sr, hr, run.disc if gan_on else None) if cfg.arch == "jointseg" \
            else torch.zeros(())
        l_seg = bce_dice_loss(logit, label, cfg.loss.seg_bce, cfg.loss.seg_dice)
        if phase == "sr_warmup":
            loss = cfg.loss.w_sr * l_sr
        elif phase == "joint":
            loss = cfg.loss.w_sr * l_sr + cfg.loss.w_seg * l_seg
        else:
            loss = cfg.loss.w_seg * l_seg
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        if gan_on:
            run.d_opt.zero_grad()
            relativistic_d_loss(run.disc(hr), run.disc(sr.detach())).backward()
            run.d_opt.step()
        for key, value in (("train_loss", loss), ("train_sr", l_sr), ("train_seg", l_seg)):
            sums[key] += float(value.detach())
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.4f}")
    return {k: v / steps for k, v in sums.items()}


def _simulated(chip: Chip, chips_dir: Path) -> bool:
    import rasterio

    with rasterio.open(chips_dir / chip.chip_id / "s2_10m.tif") as ds:
        return ds.tags().get("JOINTSEG_SIMULATED", "").lower() == "true"


def training_summary(checkpoint: str | Path) -> dict[str, Any]:
    """JSON summary of a run from a checkpoint: data, epochs, best and last val metrics."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hist = ckpt["history"]
    best = max(hist, key=lambda h: _better(h["val_f1"], -1.0)) if hist else {}
    pick = ("epoch", "val_f1", "val_precision", "val_recall", "val_iou", "val_psnr")
    return {"arch": ckpt["config"]["arch"], "preset": ckpt["config"]["preset"],
            "data": ckpt.get("data", {}), "epochs": ckpt["epoch"] + 1,
            "seed": ckpt["config"]["seed"], "best": {k: best.get(k) for k in pick},
            "last": {k: hist[-1].get(k) for k in pick} if hist else {}}
