"""Training: paired chips -> JointSeg / bilinear-baseline checkpoints.

``train(chips_dir, out_dir, cfg)`` fits normalisation statistics on the training
chips, then runs the staged schedule (jointseg arch: ``sr_warmup_epochs`` of SR
loss only, then joint ``w_sr * L_sr + w_seg * L_seg``, see
:func:`jointseg.model.losses.joint_loss`; bilinear arch: segmentation loss
throughout) with the optimiser recipe of :mod:`jointseg.model.schedule` (trunk
learning rate, warm-up + cosine, gradient clipping, mixed precision and channels_last on
CUDA: bf16 where the GPU has it, fp16 with loss scaling on V100/T4-class GPUs).
Every epoch it validates on the ``val`` chips (F1/IoU at 1 m, SR PSNR over the HR
targets; F1 against the clean ``truth.tif`` where every val chip has one, as simulated
chips do, else against ``label.tif``; ``summary.json`` names which), writes ``last.pt``,
keeps ``best.pt`` (highest val F1; with ``calibrate``, F1 at the threshold that maximises it,
which the summary records for inference), and rewrites ``history.csv`` and ``loss.png``. Runs
are reproducible: the weights come from ``seed`` and each epoch's crops/flips from
``(seed, epoch)``, so ``resume`` from ``last.pt`` continues exactly as an uninterrupted run would.

Every path writes every output (``best.pt``, ``history.csv``, ``loss.png``,
``summary.json``; each atomically: temporary file + rename), because Snakemake deletes a
job's declared outputs before it reruns ``train_model`` and fails the job on any that is
missing. ``last.pt`` keeps the best epoch's weights and the per-epoch history, so a
resumed run that finds ``last.pt`` finished trains nothing and rebuilds ``best.pt`` (that
epoch's exact weights), ``history.csv`` and ``loss.png`` from it
(:func:`~jointseg.model.checkpoint.complete_outputs`). A ``last.pt`` that cannot be
resumed starts a fresh run, which writes everything again: trained on other chips
(``index.csv`` or the declared training data differ), with other settings, for another
network layout, or of an older format without the best epoch's weights or a full
history (:func:`~jointseg.model.checkpoint.why_not_resumable`). Such an old ``last.pt``
is retrained rather than given a history made up from what it holds: past epochs'
validation scores need those epochs' weights, and training again reproduces them.

The chips' ``provenance.json`` (:func:`jointseg.model.chips.training_data_record`) is
copied into the checkpoints and the summary as ``training_data``.

Under ``torchrun`` (:mod:`jointseg.model.distributed`) every process trains a
DistributedDataParallel replica on its shard of the crops; rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from jointseg.io import sha256_file, write_json
from jointseg.model import distributed as dist_
from jointseg.model.checkpoint import (
    TrainError,
    better,
    complete_outputs,
    load_checkpoint,
    save_checkpoint,
    selection_score,
    training_summary,
    why_not_resumable,
)
from jointseg.model.chips import (
    Chip,
    band_stats,
    load_chips,
    random_crop,
    training_data_record,
    with_truth_labels,
)
from jointseg.model.distributed import DistEnv
from jointseg.model.history import write_history
from jointseg.model.jointseg import ARCH_VERSION, build_model
from jointseg.model.losses import (
    SRLoss,
    UNetDiscriminatorSN,
    bce_dice_loss,
    gradnorm_scale,
    joint_loss,
    relativistic_d_loss,
)
from jointseg.model.pretrain import pretrain_sr
from jointseg.model.schedule import (
    TRUNK_PREFIXES,
    LRSchedule,
    amp_dtype,
    autocast,
    batch_to_device,
    clip_gradients,
    grad_scaler,
    param_groups,
    set_lr,
    to_channels_last,
)
from jointseg.model.settings import TrainConfig, config_from_dict, load_train_settings
from jointseg.model.target import match_target
from jointseg.model.validation import chip_tensors, evaluate
from jointseg.model.validation import to_batch as _to_batch

__all__ = ["TrainConfig", "TrainError", "chip_tensors", "config_from_dict", "evaluate",
           "load_checkpoint", "load_train_settings", "pretrain_sr", "resolve_device", "train",
           "training_summary"]
log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; other names as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _phase(cfg: TrainConfig, epoch: int) -> str:
    """sr_warmup | joint | seg: epochs below ``loss.sr_warmup_epochs`` train SR only,
    unless steps are counted (``max_steps``), SR is pre-trained, or ``w_sr`` is 0."""
    warmup = (cfg.max_steps == 0 and cfg.sr_pretrain_steps == 0 and cfg.loss.w_sr > 0
              and epoch < cfg.loss.sr_warmup_epochs)
    if cfg.arch == "jointseg" and warmup:
        return "sr_warmup"
    return "joint" if cfg.arch == "jointseg" else "seg"


@dataclass(frozen=True)
class _Plan:
    """Validation rounds ("epochs" in the history) of a run: ``rounds`` of ``steps``
    optimiser steps (the last one possibly shorter), ``total`` steps in all; ``per_pass``:
    steps of one pass over the crops (what an epoch is without ``max_steps``)."""

    rounds: int
    steps: int
    total: int
    per_pass: int

    @classmethod
    def of(cls, cfg: TrainConfig, per_pass: int) -> _Plan:
        if cfg.max_steps == 0:
            return cls(cfg.epochs, per_pass, cfg.epochs * per_pass, per_pass)
        every = min(cfg.val_every or per_pass, cfg.max_steps)
        return cls(-(-cfg.max_steps // every), every, cfg.max_steps, per_pass)

    def steps_in(self, rnd: int) -> int:
        """Optimiser steps of round ``rnd`` (0-based)."""
        return max(0, min(self.steps, self.total - rnd * self.steps))

    def done_after(self, rnd: int) -> int:
        """Optimiser steps run when round ``rnd`` (0-based; -1: none yet) ends."""
        return min((rnd + 1) * self.steps, self.total)


def _load_data(chips_dir: Path) -> tuple[list[Chip], list[Chip], str]:
    """(train chips, val chips, the val reference: "truth.tif" or "label.tif")."""
    train_chips = load_chips(chips_dir, "train")
    try:
        val_chips = load_chips(chips_dir, "val")
    except ValueError:
        log.warning("%s: no 'val' chips; validating on the training chips", chips_dir)
        val_chips = train_chips
    val_chips, clean = with_truth_labels(chips_dir, val_chips)
    return train_chips, val_chips, "truth.tif" if clean else "label.tif"


def train(chips_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *,
          resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a model on paired chips; returns the training summary (also in summary.json).

    Under torchrun (``WORLD_SIZE`` > 1) this process joins the group and trains its
    shard; only rank 0 writes files, every rank returns the summary.

    Args:
        chips_dir: chip directory (index.csv + chip folders).
        out_dir: where last.pt, best.pt, history.csv, loss.png, summary.json go.
        cfg: settings; with ``resume`` the checkpoint's config must match arch/preset.
        resume: continue from ``out_dir/last.pt`` if present.
        progress: show a tqdm bar (rank 0 only).

    Raises:
        TrainError: if there are no training chips or the checkpoint is incompatible.
    """
    env = dist_.init_distributed(resolve_device(cfg.device))
    try:
        summary = _train(Path(chips_dir), Path(out_dir), cfg, env, resume, progress)
    except BaseException as exc:  # the other ranks may sit in a collective: no barrier
        dist_.abort(env, exc)
        raise
    dist_.shutdown(env)
    return summary


def _train(chips_dir: Path, out_dir: Path, cfg: TrainConfig, env: DistEnv, resume: bool,
           progress: bool) -> dict[str, Any]:
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    train_chips, val_chips, val_reference = _load_data(chips_dir)
    if cfg.sr_target_match and cfg.arch == "jointseg":
        train_chips = [match_target(c) for c in train_chips]
        val_chips = [match_target(c) for c in val_chips]
    plan = _Plan.of(cfg, dist_.shard(np.arange(len(train_chips) * cfg.crops_per_chip), env,
                                     cfg.batch_size)[1])
    run = _Run.build(cfg, env, plan)
    last = out_dir / "last.pt"
    chips_sha = sha256_file(chips_dir / "index.csv")
    record = training_data_record(chips_dir, chips_sha)
    data = {"chips_dir": str(chips_dir), "n_train": len(train_chips), "n_val": len(val_chips),
            "val_reference": val_reference, "index_sha256": chips_sha}
    history, best_f1, start, best, resumed = (
        _resume(run, cfg, last, chips_sha, record) if resume else ([], -1.0, 0, None, None))
    if env.is_main and resumed is not None:  # what the workflow removed, before training on
        complete_outputs(out_dir, resumed, data, record)
    del resumed
    if start == 0:
        stats = band_stats(train_chips)
        run.model.norm.set_stats(**stats)
        log.info("normalisation from %d training chips: %s", len(train_chips), stats)
        if cfg.arch == "jointseg" and cfg.sr_pretrain_steps > 0 and cfg.loss.w_sr > 0:
            run.sr_pretrain = pretrain_sr(run, cfg, train_chips, val_chips)
    bar = tqdm(total=plan.total, initial=plan.done_after(start - 1),
               disable=not (progress and env.is_main), desc=f"train {cfg.arch}/{cfg.preset}",
               unit="step")
    for epoch in range(start, plan.rounds):
        t0 = time.time()
        train_losses = _train_epoch(run, cfg, epoch, train_chips, bar)
        dist_.broadcast_buffers(run.model, env)
        val = evaluate(run.model, val_chips, env)
        row = {"epoch": epoch, "step": plan.done_after(epoch),
               "phase": _phase(cfg, epoch), **train_losses,
               "sr_scale": run.sr_scale if math.isfinite(run.sr_scale) else None,
               **{f"val_{k}": v for k, v in val.items()},
               "lr": run.opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2)}
        history.append(row)
        score = selection_score(row, cfg.calibrate)
        if env.is_main:
            log.info("epoch %d (%s): loss %.4f val F1 %.3f (%.3f at p >= %.2f) IoU %.3f "
                     "PSNR %.2f dB", epoch, row["phase"], row["train_loss"], val["f1"],
                     val["f1_cal"], val["threshold"], val["iou"], val["psnr"])
            ckpt = run.checkpoint(cfg, epoch, history, better(score, best_f1), data, record)
            if score > best_f1 or best is None:
                save_checkpoint(out_dir / "best.pt", ckpt)
                # a copy: on the CPU ckpt["model"] holds the live parameters
                best = {"epoch": epoch, "model": {k: v.clone() for k, v in ckpt["model"].items()}}
            save_checkpoint(last, {**ckpt, "best_model": best})
            write_history(out_dir, history)
        best_f1 = better(score, best_f1)
        dist_.barrier(env)
    bar.close()
    dist_.barrier(env)
    summary = training_summary(last) if last.is_file() else {}
    if env.is_main:
        write_json(out_dir / "summary.json", summary)
    return summary


@dataclass
class _Run:
    """The model (and its DDP wrapper), optimiser, LR schedule, SR loss, optional GAN
    discriminator, autocast dtype (and the fp16 loss scaler) and process env of a run."""

    model: torch.nn.Module
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    schedule: LRSchedule
    sr_loss: SRLoss
    disc: UNetDiscriminatorSN | None
    d_opt: torch.optim.Optimizer | None
    env: DistEnv
    amp: torch.dtype | None
    channels_last: bool
    plan: _Plan
    scaler: torch.amp.GradScaler
    sr_scale: float = float("nan")  # gradnorm: EMA of the SR loss scale (nan: unmeasured)
    sr_pretrain: dict = dataclasses.field(default_factory=lambda: {"steps_run": 0})

    @property
    def steps(self) -> int:
        """Optimiser steps per round (epoch)."""
        return self.plan.steps

    @property
    def device(self) -> torch.device:
        return self.env.device

    @classmethod
    def build(cls, cfg: TrainConfig, env: DistEnv, steps: int | _Plan) -> _Run:
        """Fresh weights from ``cfg.seed`` on ``env.device``; ``steps``: the rounds and steps
        (a :class:`_Plan`) or the optimiser steps of one pass over the crops."""
        plan = steps if isinstance(steps, _Plan) else _Plan.of(cfg, steps)
        device = env.device
        torch.manual_seed(cfg.seed)
        model = to_channels_last(build_model(cfg.arch, cfg.preset).to(device), device,
                                 cfg.channels_last)
        net = model
        if env.distributed:
            net = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        opt = torch.optim.Adam(param_groups(model, cfg.lr, cfg.lr_trunk))
        schedule = LRSchedule(plan.total, round(cfg.lr_warmup_epochs * plan.per_pass),
                              cfg.lr_schedule, cfg.min_lr_ratio)
        sr_loss = SRLoss(cfg.loss).to(device)
        disc = d_opt = None
        if cfg.arch == "jointseg" and cfg.loss.sr_gan > 0:
            disc = UNetDiscriminatorSN(nf=cfg.loss.d_nf).to(device)
            d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.loss.d_lr, betas=(0.9, 0.99))
        amp = amp_dtype(cfg.amp, device)
        if amp is not None and env.is_main:
            log.info("mixed precision on %s: %s autocast%s (model.train.amp: %s)", device,
                     str(amp).removeprefix("torch."),
                     " with loss scaling" if amp == torch.float16 else "", cfg.amp)
        return cls(model, net, opt, schedule, sr_loss, disc, d_opt, env, amp,
                   cfg.channels_last, plan, grad_scaler(amp, device))

    def checkpoint(self, cfg: TrainConfig, epoch: int, history: list[dict], best_f1: float,
                   data: dict[str, Any], training_data: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint dict after ``epoch`` (weights on cpu, optimisers, torch RNG)."""
        return {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(),
                "disc": self.disc.state_dict() if self.disc is not None else None,
                "disc_optimizer": self.d_opt.state_dict() if self.d_opt is not None else None,
                "epoch": epoch, "arch_version": ARCH_VERSION, "config": asdict(cfg),
                "history": history, "best_f1": best_f1, "torch_rng": torch.get_rng_state(),
                "world_size": self.env.world_size, "data": data,
                "training_data": training_data, "scaler": self.scaler.state_dict(),
                "sr_scale": self.sr_scale, "sr_pretrain": self.sr_pretrain,
                "steps": self.plan.done_after(epoch)}


def _resume(run: _Run, cfg: TrainConfig, last: Path, chips_sha: str, record: dict[str, Any]
            ) -> tuple[list[dict], float, int, dict | None, dict | None]:
    """Load ``last`` into ``run``; returns (history, best val score, next epoch, the best
    epoch's {"epoch", "model"} copy, the loaded checkpoint dict), or a fresh start when
    ``last`` does not exist or cannot be resumed (:func:`why_not_resumable`: other chips,
    ``chips_sha`` being the sha256 of their index.csv and ``record`` their training-data
    record, other settings, another network layout, an older format).

    Raises:
        TrainError: if the checkpoint's arch/preset differ from ``cfg``'s.
    """
    fresh: tuple[list[dict], float, int, dict | None, dict | None] = ([], -1.0, 0, None, None)
    if not last.is_file():
        log.warning("%s not found; starting a fresh run", last)
        return fresh
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    reason = why_not_resumable(last, ckpt, asdict(cfg), chips_sha, record)
    if reason:
        log.warning("%s %s; starting a fresh run", last, reason)
        return fresh
    if ckpt.get("world_size", 1) != run.env.world_size:
        log.warning("%s: trained by %d processes, resumed by %d: crops differ from an "
                    "uninterrupted run", last, ckpt.get("world_size", 1), run.env.world_size)
    run.model.load_state_dict(ckpt["model"])
    run.opt.load_state_dict(ckpt["optimizer"])
    if run.disc is not None and ckpt.get("disc"):
        run.disc.load_state_dict(ckpt["disc"])
        run.d_opt.load_state_dict(ckpt["disc_optimizer"])
    if run.scaler.is_enabled() and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    run.sr_scale = float(ckpt.get("sr_scale", float("nan")))
    run.sr_pretrain = ckpt.get("sr_pretrain") or {"steps_run": 0}
    log.info("resuming from %s at round %d of %d", last, ckpt["epoch"] + 1, run.plan.rounds)
    best = {"epoch": ckpt["best_model"]["epoch"],
            "model": {k: v.cpu() for k, v in ckpt["best_model"]["model"].items()}}
    ckpt["best_model"] = best
    return ckpt["history"], ckpt["best_f1"], ckpt["epoch"] + 1, best, ckpt


def _train_epoch(run: _Run, cfg: TrainConfig, epoch: int, chips: list[Chip],
                 bar: tqdm) -> dict[str, float]:
    """One epoch (round) of ``run.plan.steps_in(epoch)`` batches of random crops (drawn
    from ``(seed, epoch)``, this rank's shard; a round longer than one pass over the crops
    takes further permutations); returns the mean ``train_loss``, ``train_sr`` and
    ``train_seg`` over all ranks."""
    n_steps = run.plan.steps_in(epoch)
    rng = np.random.default_rng([cfg.seed, epoch])
    pool = np.repeat(np.arange(len(chips)), cfg.crops_per_chip)
    order = rng.permutation(pool)
    need = n_steps * cfg.batch_size * run.env.world_size
    while len(order) < need:
        order = np.concatenate([order, rng.permutation(pool)])
    mine, _ = dist_.shard(order, run.env, cfg.batch_size)
    crop_rng = rng if not run.env.distributed else np.random.default_rng(
        [cfg.seed, epoch, 1 + run.env.rank])
    run.net.train()
    sums = np.zeros(3)
    for s in range(n_steps):
        step = epoch * run.steps + s
        set_lr(run.opt, run.schedule.factor(step))
        idx = mine[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        crops = [random_crop(chips[i], cfg.crop_10m, crop_rng, cfg.augment) for i in idx]
        losses = _step(run, cfg, epoch, _to_batch(crops), step)
        sums += losses
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{losses[0]:.4f}")
    total = dist_.all_reduce_sum([*sums, float(max(n_steps, 1))], run.env)
    return {k: v / total[3] for k, v in zip(("train_loss", "train_sr", "train_seg"), total[:3],
                                            strict=True)}


def _step(run: _Run, cfg: TrainConfig, epoch: int, batch: tuple[torch.Tensor, ...],
          step: int = 0) -> np.ndarray:
    """One optimiser step (and one discriminator step with the GAN on) on ``batch``, the
    run's ``step``-th (0-based: when the gradnorm scale is re-measured); returns (loss,
    SR loss, segmentation loss) as floats."""
    phase = _phase(cfg, epoch)
    gan_on = run.disc is not None and epoch >= cfg.loss.gan_start_epoch
    s10, s20, hr, label = (batch_to_device(t, run.device, run.channels_last) for t in batch)
    mask = hr != 0
    with autocast(run.amp, run.device):
        logit, sr = run.net(s10, s20)
        logit, sr = logit.float(), sr.float()
        l_sr = run.sr_loss(sr, hr, run.disc if gan_on else None, mask) \
            if cfg.arch == "jointseg" and cfg.loss.w_sr > 0 \
            else torch.zeros((), device=run.device)
        l_seg = bce_dice_loss(logit, label, cfg.loss.seg_bce, cfg.loss.seg_dice)
    if phase == "sr_warmup":
        loss = cfg.loss.w_sr * l_sr
        if run.env.distributed:  # DDP needs a gradient (here 0) for every parameter
            loss = loss + 0.0 * logit.sum()
    elif phase == "joint":
        if cfg.loss.sr_weighting == "gradnorm" and cfg.loss.w_sr > 0:
            _update_sr_scale(run, cfg, l_sr, l_seg, step)
        loss = joint_loss(cfg.loss, l_sr, l_seg, run.sr_scale)
    else:
        loss = cfg.loss.w_seg * l_seg
    # the scaler multiplies fp16 losses so small gradients survive, divides them back
    # before clipping, and skips a step whose gradients overflowed; off, it does nothing
    run.opt.zero_grad()
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.opt)
    clip_gradients(run.model, cfg.grad_clip)
    run.scaler.step(run.opt)
    if gan_on:
        run.d_opt.zero_grad()
        with autocast(run.amp, run.device):
            d_loss = relativistic_d_loss(run.disc(torch.where(mask, hr, sr.detach())),
                                         run.disc(sr.detach()))
        run.scaler.scale(d_loss).backward()
        dist_.average_gradients(run.disc, run.env)
        run.scaler.step(run.d_opt)
    run.scaler.update()
    return np.array([float(loss.detach()), float(l_sr.detach()), float(l_seg.detach())])


def _update_sr_scale(run: _Run, cfg: TrainConfig, l_sr: torch.Tensor, l_seg: torch.Tensor,
                     step: int) -> None:
    """Re-measure the gradnorm SR scale every ``loss.gradnorm_every`` steps (and while it
    is unmeasured) on the RRDB trunk; EMA ``loss.gradnorm_ema``, averaged over ranks."""
    if math.isfinite(run.sr_scale) and step % cfg.loss.gradnorm_every:
        return
    shared = [p for n, p in run.model.named_parameters()
              if n.startswith(TRUNK_PREFIXES) and p.requires_grad]
    ratio = gradnorm_scale(l_sr, l_seg, shared, cfg.loss.w_seg)
    ok, val = dist_.all_reduce_sum([float(math.isfinite(ratio)),
                                    ratio if math.isfinite(ratio) else 0.0], run.env)
    if ok == 0:
        return
    ratio = val / ok
    ema = cfg.loss.gradnorm_ema
    run.sr_scale = ratio if not math.isfinite(run.sr_scale) else \
        ema * run.sr_scale + (1 - ema) * ratio
