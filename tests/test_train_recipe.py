"""Tests for the training recipe (jointseg.model.schedule) and the SR loss weighting."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from jointseg.config import ConfigError, schema_default
from jointseg.model.chips import load_chips, random_crop
from jointseg.model.distributed import DistEnv, shard
from jointseg.model.jointseg import build_model
from jointseg.model.losses import LossConfig, joint_loss
from jointseg.model.schedule import (
    LRSchedule,
    amp_dtype,
    autocast,
    bf16_supported,
    clip_gradients,
    grad_scaler,
    param_groups,
    set_lr,
    to_channels_last,
)
from jointseg.model.settings import TrainConfig, config_from_dict
from jointseg.model.train import _Run, _step, _to_batch

CHIPS = Path(__file__).parent / "data" / "chips"


def test_warmup_then_cosine() -> None:
    s = LRSchedule(total_steps=110, warmup_steps=10, kind="cosine", min_lr_ratio=0.1)
    assert s.factor(0) == pytest.approx(0.1) and s.factor(9) == pytest.approx(1.0)
    assert s.factor(10) == pytest.approx(1.0)
    assert s.factor(109) == pytest.approx(0.1)
    mid = s.factor(10 + 99 // 2)
    assert 0.1 < mid < 1.0 and mid == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(
        math.pi * 49 / 99)))
    f = [s.factor(i) for i in range(10, 110)]
    assert all(a >= b for a, b in zip(f, f[1:], strict=False))  # monotone decay
    assert LRSchedule(50, 0, "constant").factor(30) == 1.0


def test_trunk_gets_its_own_learning_rate() -> None:
    model = build_model("jointseg", "tiny")
    groups = param_groups(model, 2e-3, 2e-4)
    assert [g["name"] for g in groups] == ["rest", "trunk"]
    trunk_ids = {id(p) for p in groups[1]["params"]}
    expect = {id(p) for n, p in model.named_parameters()
              if n.startswith(("sr.trunk_10m.", "sr.trunk_5m."))}
    assert trunk_ids == expect and trunk_ids
    opt = torch.optim.Adam(groups)
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])
    assert len(param_groups(build_model("bilinear", "tiny"), 1e-3, 1e-4)) == 1


def test_gradient_clipping() -> None:
    lin = torch.nn.Linear(4, 1)
    (lin(torch.full((1, 4), 100.0)).sum() * 100).backward()
    before = clip_gradients(lin, 1.0)
    after = torch.sqrt(sum((p.grad**2).sum() for p in lin.parameters()))
    assert before > 1.0 and float(after) == pytest.approx(1.0, rel=1e-4)
    assert math.isnan(clip_gradients(lin, 0.0))


def test_amp_is_a_cpu_noop_and_channels_last_is_not() -> None:
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("bf16", cpu) is None
    assert amp_dtype("fp16", cpu) is None
    assert amp_dtype("off", torch.device("cuda")) is None
    # a matmul is an op autocast lowers (a factory like torch.ones is not): float32 with
    # dtype None (what amp_dtype gives on CPU), bfloat16 when autocast is really on
    a = torch.ones(4, 4)
    with autocast(None, cpu):
        assert (a @ a).dtype == torch.float32
        assert torch.nn.functional.conv2d(a[None, None], a[None, None]).dtype == torch.float32
    with autocast(torch.bfloat16, cpu):
        assert (a @ a).dtype == torch.bfloat16
    assert (a @ a).dtype == torch.float32  # and off again on leaving
    with autocast(amp_dtype("auto", cpu), cpu):  # the recipe's CPU setting: full precision
        assert (a @ a).dtype == torch.float32
    m = to_channels_last(torch.nn.Conv2d(2, 8, 3), cpu, True)  # faster on the CPU too
    assert m.weight.is_contiguous(memory_format=torch.channels_last)
    assert to_channels_last(torch.nn.Conv2d(2, 8, 3), cpu, False).weight.is_contiguous()


class _Gpu:
    """A CUDA device of compute capability ``cap`` for the amp choice (no GPU here):
    ``torch.cuda.is_bf16_supported()`` says True on a V100 by default (emulation)."""

    def __init__(self, monkeypatch, cap: tuple[int, int], name: str) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True: cap >= (8, 0) or including_emulation)


@pytest.mark.parametrize(("cap", "name", "auto"), [
    ((9, 0), "NVIDIA H100", torch.bfloat16), ((8, 0), "NVIDIA A100", torch.bfloat16),
    ((7, 5), "Tesla T4", torch.float16), ((7, 0), "Tesla V100", torch.float16),
    ((6, 0), "Tesla P100", None)])
def test_amp_bf16_only_where_the_gpu_has_it(monkeypatch, cap, name, auto) -> None:
    _Gpu(monkeypatch, cap, name)
    cuda = torch.device("cuda", 0)
    assert bf16_supported(cuda) is (cap >= (8, 0))
    assert amp_dtype("auto", cuda) is auto
    assert amp_dtype("fp16", cuda) is torch.float16 and amp_dtype("off", cuda) is None
    if cap >= (8, 0):
        assert amp_dtype("bf16", cuda) is torch.bfloat16
    else:
        with pytest.raises(ConfigError, match=rf"{name}, compute capability {cap[0]}\.{cap[1]}"
                                              r"\) has no native bf16; use amp: auto"):
            amp_dtype("bf16", cuda)
    assert not bf16_supported(torch.device("cpu"))


def test_fp16_trains_with_loss_scaling_and_bf16_without() -> None:
    """fp16 autocast runs with an enabled GradScaler (its state in the checkpoint); bf16
    and fp32 get a disabled one, which leaves the step exactly as it was."""
    cpu = torch.device("cpu")
    assert grad_scaler(torch.float16, cpu).is_enabled()
    assert not grad_scaler(torch.bfloat16, cpu).is_enabled()
    assert not grad_scaler(None, cpu).is_enabled()
    cfg = TrainConfig(preset="tiny", batch_size=2, threads=1, grad_clip=1.0)
    chips = load_chips(CHIPS, "train")[:2]
    batch = _to_batch([random_crop(c, cfg.crop_10m, np.random.default_rng(0), False)
                       for c in chips])
    results = {}
    for amp in (None, torch.float16):
        run = _Run.build(cfg, DistEnv(), steps=1)
        run = dataclasses.replace(run, amp=amp, scaler=grad_scaler(amp, cpu))
        losses = _step(run, cfg, cfg.loss.sr_warmup_epochs, batch)  # a joint step
        assert np.isfinite(losses).all()
        results[amp] = [p.detach().clone() for p in run.model.parameters()]
        state = run.checkpoint(cfg, 0, [], 0.0, {}, {})["scaler"]
        assert (state["scale"] == 65536.0) if amp else state == {}
    # Adam's first step is about lr x sign(gradient): the fp16 step (not skipped as an
    # overflow) moves nearly every weight the way the fp32 step does
    fresh = [p.detach() for p in _Run.build(cfg, DistEnv(), steps=1).model.parameters()]
    d32 = torch.cat([(a - f).ravel() for a, f in zip(results[None], fresh, strict=True)])
    d16 = torch.cat([(b - f).ravel() for b, f in zip(results[torch.float16], fresh,
                                                     strict=True)])
    moved = d32 != 0
    assert moved.float().mean() > 0.9
    assert (torch.sign(d32[moved]) == torch.sign(d16[moved])).float().mean() > 0.95


def test_balanced_weighting_matches_scales() -> None:
    l_sr, l_seg = torch.tensor(0.01, requires_grad=True), torch.tensor(0.8, requires_grad=True)
    fixed = joint_loss(LossConfig(), l_sr, l_seg)
    assert float(fixed) == pytest.approx(0.81)
    bal = joint_loss(LossConfig(sr_weighting="balanced", w_sr=0.5), l_sr, l_seg)
    assert float(bal) == pytest.approx(0.5 * 0.8 + 0.8)
    bal.backward()
    assert float(l_sr.grad) == pytest.approx(0.5 * 0.8 / 0.01)  # weight has no gradient
    with pytest.raises(ConfigError, match="sr_weighting"):
        LossConfig(sr_weighting="magic")


def test_new_keys_default_from_the_schema() -> None:
    cfg = TrainConfig()
    for key in ("lr", "lr_trunk", "lr_warmup_epochs", "lr_schedule", "min_lr_ratio",
                "grad_clip", "amp", "channels_last", "gpus", "epochs", "batch_size"):
        assert getattr(cfg, key) == schema_default(f"model.train.{key}"), key
    with pytest.raises(ConfigError, match="amp"):
        config_from_dict({"amp": "fp8"})
    with pytest.raises(ConfigError, match="lr_schedule"):
        config_from_dict({"lr_schedule": "step"})


def test_shard_splits_the_epoch_across_ranks() -> None:
    order = np.random.default_rng(0).permutation(10)
    one, steps1 = shard(order, DistEnv(), 4)
    assert steps1 == 3 and one.tolist() == order.tolist()
    parts = [shard(order, DistEnv(rank=r, world_size=2), 4) for r in range(2)]
    assert all(steps == 2 for _, steps in parts)
    a, b = (p[0] for p in parts)
    assert len(a) == len(b) == 8
    assert set(a[:5]) | set(b[:5]) == set(order)  # every sample once before the padding
    assert not set(a[:5]) & set(b[:5])
