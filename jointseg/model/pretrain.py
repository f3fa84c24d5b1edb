"""SR pre-training (ESRGAN's PSNR-oriented stage) before JointSeg's joint phase."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from jointseg.model.chips import Chip, random_crop
from jointseg.model.distributed import average_gradients
from jointseg.model.losses import masked_l1
from jointseg.model.schedule import autocast, batch_to_device, clip_gradients
from jointseg.model.settings import TrainConfig
from jointseg.model.validation import to_batch, val_sr_l1

if TYPE_CHECKING:
    from jointseg.model.train import _Run

log = logging.getLogger(__name__)


def pretrain_sr(run: _Run, cfg: TrainConfig, train_chips: list[Chip], val_chips: list[Chip]
                ) -> dict[str, Any]:
    """SR pre-training (ESRGAN's PSNR-oriented stage): masked L1 only, the segmentation
    branch not run, every other parameter at ``cfg.lr`` (constant, own Adam), on random
    crops from their own stream ``(seed, "sr-pretrain", rank)``; validates the SR L1
    every ``sr_pretrain_val_every`` steps, stops after ``sr_pretrain_patience``
    validations without a relative improvement > ``sr_pretrain_min_delta`` or at
    ``sr_pretrain_steps``, and leaves the best validation's weights in ``run.model``.

    Returns:
        ``{"steps_run", "best_val_l1", "val_l1": [[step, L1], ...], "stopped": "patience"
        | "cap"}``.
    """
    model, env = run.model, run.env
    params = [p for n, p in model.named_parameters() if not n.startswith("seg.")]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng([cfg.seed, 0x5E, env.rank])
    best, best_state, wait, steps, log_ = math.inf, None, 0, 0, []
    stopped = "cap"
    model.train()
    while steps < cfg.sr_pretrain_steps:
        idx = rng.integers(0, len(train_chips), cfg.batch_size)
        crops = [random_crop(train_chips[i], cfg.crop_10m, rng, cfg.augment) for i in idx]
        s10, s20, hr, _ = (batch_to_device(t, run.device, run.channels_last)
                           for t in to_batch(crops))
        with autocast(run.amp, run.device):
            sr = model(s10, s20, sr_only=True).float()
        loss = cfg.loss.sr_l1 * masked_l1(sr, hr, hr != 0)
        opt.zero_grad()
        loss.backward()
        average_gradients(model, env)
        clip_gradients(model, cfg.grad_clip)
        opt.step()
        steps += 1
        if steps % cfg.sr_pretrain_val_every and steps < cfg.sr_pretrain_steps:
            continue
        l1 = val_sr_l1(model, val_chips, env)
        log_.append([steps, round(l1, 6)])
        wait = 0 if l1 < best * (1 - cfg.sr_pretrain_min_delta) else wait + 1
        if l1 < best:
            best = l1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if env.is_main:
            log.info("SR pre-training step %d: val L1 %.5f (best %.5f)", steps, l1, best)
        if wait >= cfg.sr_pretrain_patience:
            stopped = "patience"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"steps_run": steps, "best_val_l1": best if math.isfinite(best) else None,
            "val_l1": log_, "stopped": stopped}
