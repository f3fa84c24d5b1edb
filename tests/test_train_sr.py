"""SR training recipe of issue 21: SR pre-training, exact step counts, gradient-norm
balancing of the SR loss, season-matched targets, the widened bilinear control and
the task score of SR output."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from jointseg.model.chips import load_chips
from jointseg.model.distributed import DistEnv
from jointseg.model.jointseg import build_model, count_params
from jointseg.model.losses import LossConfig, gradnorm_scale, joint_loss
from jointseg.model.schedule import TRUNK_PREFIXES
from jointseg.model.settings import TrainConfig
from jointseg.model.target import apply_target_fits, fit_target, match_target
from jointseg.model.train import _Run, _step, _to_batch, random_crop, train

CHIPS = Path(__file__).parent / "data" / "chips"
FAST = {"batch_size": 2, "crop_10m": 8, "device": "cpu", "threads": 1}


def test_max_steps_and_pretraining_stop_at_patience(tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=5, val_every=2, sr_pretrain_steps=40, sr_pretrain_val_every=1,
                      sr_pretrain_patience=1, sr_pretrain_min_delta=0.5, **FAST)
    s = train(CHIPS, tmp_path, cfg, progress=False)
    assert s["steps"] == 5 and s["epochs"] == 3  # validations after steps 2, 4, 5
    # a 50 % gain per validation is out of reach: stops at the first validation after the
    # first (patience 1), far below the cap
    assert s["sr_pretrain_steps_run"] == 2 and s["sr_pretrain"]["stopped"] == "patience"
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 5]
    assert all(r["phase"] == "joint" for r in rows)
    assert (tmp_path / "best.pt").is_file()


def test_pretraining_stops_at_the_cap_and_skips_the_segmentation(tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=1, sr_pretrain_steps=3, sr_pretrain_val_every=10,
                      sr_pretrain_patience=5, **FAST)
    s = train(CHIPS, tmp_path, cfg, progress=False)
    assert s["sr_pretrain_steps_run"] == 3 and s["sr_pretrain"]["stopped"] == "cap"
    assert s["steps"] == 1
    # bilinear: no SR branch, no pre-training; the same number of steps
    b = train(CHIPS, tmp_path / "b", dataclasses.replace(cfg, arch="bilinear"), progress=False)
    assert b["steps"] == 1 and b["sr_pretrain_steps_run"] == 0


def test_w_sr_zero_gives_no_sr_term() -> None:
    l_sr = torch.tensor(0.3, requires_grad=True)
    l_seg = torch.tensor(1.2, requires_grad=True)
    for mode in ("gradnorm", "fixed", "balanced"):
        loss = joint_loss(LossConfig(w_sr=0.0, sr_weighting=mode), l_sr, l_seg, 5.0)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(1.2) and l_sr.grad is None
    # and in a training step: the SR loss is not even computed
    chips = load_chips(CHIPS, "train")
    cfg = TrainConfig(loss=LossConfig(w_sr=0.0), **FAST)
    run = _Run.build(cfg, DistEnv(), steps=1)
    rng = np.random.default_rng(0)
    losses = _step(run, cfg, 0, _to_batch([random_crop(c, 8, rng) for c in chips[:2]]))
    assert losses[1] == 0.0 and losses[0] == pytest.approx(losses[2])


def test_gradnorm_scale_is_finite_positive_and_balances() -> None:
    chips = load_chips(CHIPS, "train")
    cfg = TrainConfig(**FAST)
    run = _Run.build(cfg, DistEnv(), steps=1)
    rng = np.random.default_rng(0)
    batch = _to_batch([random_crop(c, 8, rng) for c in chips[:2]])
    # epoch 1: joint (epoch 0 is the SR warm-up); a fresh SR head is zero, so the SR
    # loss has no trunk gradient at the first step: the scale is measured at the next
    losses = _step(run, cfg, 1, batch, step=0)
    assert np.isfinite(losses).all() and not np.isfinite(run.sr_scale)
    _step(run, cfg, 1, batch, step=1)
    assert np.isfinite(run.sr_scale) and run.sr_scale > 0
    # the scaled SR loss has the segmentation loss's gradient norm on the trunk
    model = run.model
    shared = [p for n, p in model.named_parameters() if n.startswith(TRUNK_PREFIXES)]
    s10, s20, hr, label = batch
    logit, sr = model(s10, s20)
    from jointseg.model.losses import bce_dice_loss, masked_l1

    l_sr, l_seg = masked_l1(sr, hr, hr != 0), bce_dice_loss(logit, label)
    k = gradnorm_scale(l_sr, l_seg, shared)

    def norm(loss: torch.Tensor) -> float:
        g = torch.autograd.grad(loss, shared, retain_graph=True)
        return float(torch.sqrt(sum((x**2).sum() for x in g)))

    assert norm(k * l_sr) == pytest.approx(norm(l_seg), rel=1e-4)


def test_target_matching_recovers_a_known_gain_and_offset() -> None:
    chip = load_chips(CHIPS, "train")[0]
    # make the composite a known line of the HR's block mean: composite = 1.2 x HR - 150
    from jointseg.model import target
    from jointseg.trainingdata.harmonise import match_psf

    # Sentinel-2 sees the scene through its PSF: the composite is the blurred 10 m mean
    mean = match_psf(target.block_mean(chip.hr, chip.hr_mask)[0].astype(np.float32))
    s2 = chip.s2_10m.copy()
    for b, ch in enumerate(target._S2_OF_HR):
        s2[ch] = np.clip(np.rint(1.2 * mean[b] - 150), 0, 65535).astype(np.uint16)
    chip = dataclasses.replace(chip, s2_10m=s2)
    fits = fit_target(chip)
    for fit in fits:  # back up to the uint16 rounding
        assert fit is not None and fit.gain == pytest.approx(1.2, rel=1e-3)
        assert fit.offset == pytest.approx(-150, abs=2.0)
    matched = match_target(chip)
    assert matched.hr.dtype == np.uint16 and (matched.hr_mask == chip.hr_mask).all()
    out = apply_target_fits(chip.hr, chip.hr_mask, [None] * 4)
    assert (out == chip.hr).all()


def test_bilinear_wide_matches_jointseg_params() -> None:
    j = count_params(build_model("jointseg", "tiny"))
    w = count_params(build_model("bilinear-wide", "tiny"))
    assert abs(w - j) / j < 0.10
    assert count_params(build_model("bilinear", "tiny")) < 0.6 * j


def test_sr_task_score_runs_the_frozen_classifier_on_sr_and_bilinear() -> None:
    from jointseg.model.sr_task import fit_pixel_classifier, sr_task_score

    chips = load_chips(CHIPS, "train")
    clf = fit_pixel_classifier(chips)
    model = build_model("jointseg", "tiny")
    s = sr_task_score(model, chips, clf)
    # a fresh SR head is zero: the SR output is the bilinear upsampling
    assert s["f1_sr"] == pytest.approx(s["f1_bilinear"])
    assert 0.0 <= s["f1_bilinear"] <= 1.0 and 0.0 <= s["f1_hr"] <= 1.0
    assert np.isnan(sr_task_score(build_model("bilinear", "tiny"), chips, clf)["f1_sr"])
