"""Validation on whole chips: segmentation scores, SR error, and the tensors they take.

Shared by training (:mod:`jointseg.model.train`), SR pre-training
(:mod:`jointseg.model.pretrain`) and the benchmarks; under DDP each rank scores its share
of the chips and the sums meet (:func:`jointseg.model.distributed.all_reduce_sum`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.model import distributed as dist_
from jointseg.model.chips import Chip
from jointseg.model.distributed import DistEnv
from jointseg.model.metrics import THRESHOLD_BINS, best_threshold, prob_histograms, psnr


def to_batch(crops: list[tuple[np.ndarray, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack crops ``(s2_10m, s2_20m, hr, label)`` into float32 DN, float32 DN, float32
    reflectance (hr / 10000) and uint8 label tensors."""
    s10 = torch.from_numpy(np.stack([c[0] for c in crops]).astype(np.float32))
    s20 = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.float32))
    hr = torch.from_numpy(np.stack([c[2] for c in crops]).astype(np.float32) / 10000.0)
    label = torch.from_numpy(np.stack([c[3] for c in crops]))
    return s10, s20, hr, label


def chip_tensors(chip: Chip) -> tuple[torch.Tensor, torch.Tensor]:
    """A chip's (1,5,h,w) and (1,6,h/2,w/2) float32 DN inputs."""
    return (torch.from_numpy(chip.s2_10m.astype(np.float32))[None],
            torch.from_numpy(chip.s2_20m.astype(np.float32))[None])



@torch.no_grad()
def evaluate(model: torch.nn.Module, chips: list[Chip], env: DistEnv | None = None
             ) -> dict[str, float]:
    """F1 / precision / recall / IoU at 1 m (logit > 0, p >= 0.5), the F1-maximising
    probability ``threshold`` and its F1 ``f1_cal``
    (:func:`~jointseg.model.metrics.best_threshold`), and SR PSNR over the HR targets
    (hr != 0) of whole chips; under DDP each rank scores its share and the sums meet."""
    env = env or DistEnv()
    model.eval()
    device = next(model.parameters()).device
    counts = BinaryCounts()
    hist = np.zeros((2, THRESHOLD_BINS), dtype=np.int64)
    se, n = 0.0, 0
    for chip in chips[env.rank::env.world_size]:
        logit, sr = (t.cpu() for t in model(*(t.to(device) for t in chip_tensors(chip))))
        counts += binary_counts((logit[0, 0] > 0).numpy(), chip.label)
        hist += prob_histograms(torch.sigmoid(logit[0, 0].double()).numpy(), chip.label)
        hr = chip.hr.astype(np.float64) / 10000.0
        mask = chip.hr_mask
        se += float(np.sum(((sr[0].double().numpy() - hr) ** 2)[mask]))
        n += int(mask.sum())
    tn, fp, fn, tp, se, n, *h = dist_.all_reduce_sum(
        [counts.tn, counts.fp, counts.fn, counts.tp, se, n, *hist.ravel().tolist()], env)
    m = binary_metrics(BinaryCounts(int(tn), int(fp), int(fn), int(tp)))
    out = {k: float(m[k]) for k in ("precision", "recall", "f1", "iou")}
    out["psnr"] = float(psnr(np.zeros(1), np.array([math.sqrt(se / max(n, 1))])))
    out["threshold"], out["f1_cal"] = best_threshold(np.reshape(h, hist.shape))
    return out


@torch.no_grad()
def val_sr_l1(model: torch.nn.Module, chips: list[Chip], env: DistEnv) -> float:
    """Mean |SR - HR| (reflectance) over the HR targets of whole ``chips``."""
    model.eval()
    device = next(model.parameters()).device
    err, n = 0.0, 0
    for chip in chips[env.rank::env.world_size]:
        sr = model(*(t.to(device) for t in chip_tensors(chip)), sr_only=True).cpu()
        hr = torch.from_numpy(chip.hr.astype(np.float32) / 10000.0)[None]
        mask = torch.from_numpy(chip.hr_mask)[None]
        err += float(((sr - hr).abs() * mask).sum())
        n += int(mask.sum())
    err, n = dist_.all_reduce_sum([err, float(n)], env)
    model.train()
    return err / max(n, 1.0)
