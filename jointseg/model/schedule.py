"""Optimiser, learning-rate schedule, gradient clipping and mixed precision of a run.

The recipe that trains the ``paper`` preset stably (issue "model fidelity"):

* two parameter groups: the RRDB trunk of the SR branch at ``lr_trunk`` (ESRGAN
  trained its RRDBs at 2e-4) and everything else at ``lr``;
* a linear warm-up over the first ``warmup_epochs`` of optimiser steps, then a
  cosine decay to ``min_lr_ratio`` of each group's rate at the last step;
* gradient clipping to a global L2 norm of ``grad_clip`` (0 = off);
* mixed precision on CUDA only (:func:`amp_dtype`): bf16 autocast where the GPU has
  native bf16 (compute capability >= 8.0: A100, H100, L4, RTX 30xx and later); fp16
  autocast with loss scaling (:func:`grad_scaler`) on 7.x (V100, T4, RTX 20xx), whose
  tensor cores take fp16 but emulate bf16 slowly or not at all; fp32 on older GPUs and
  on the CPU (where bf16 convolutions are slow and the result would differ from fp32);
* channels_last memory layout (CUDA and, since issue 21, the CPU too, where the tiny
  models' training steps ran 8-22 % faster: benchmarks/README.md "Training speed").

The rate is a pure function of the global step, so resuming needs no scheduler
state: bit-exact resume only has to restore the step count.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from jointseg.config import ConfigError

#: ``model.train.amp`` values (:func:`amp_dtype`)
AMP_MODES = ("auto", "bf16", "fp16", "off")

#: Name fragments of the parameters that form the RRDB trunk (``ProgSR.trunk_*``).
TRUNK_PREFIXES = ("sr.trunk_10m.", "sr.trunk_5m.")


@dataclass(frozen=True)
class LRSchedule:
    """Warm-up + cosine schedule over ``total_steps`` optimiser steps.

    Attributes:
        total_steps: steps of the whole run (epochs x steps per epoch), >= 1.
        warmup_steps: linear warm-up steps from ``1 / warmup_steps`` of the rate.
        kind: ``cosine`` (decay to ``min_lr_ratio``) or ``constant`` (after warm-up).
        min_lr_ratio: final rate / base rate of the cosine.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    min_lr_ratio: float = 0.05

    def factor(self, step: int) -> float:
        """Multiplier of the base rates at 0-based optimiser ``step``."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        span = max(self.total_steps - self.warmup_steps - 1, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def param_groups(model: nn.Module, lr: float, lr_trunk: float) -> list[dict]:
    """Adam parameter groups: the RRDB trunk at ``lr_trunk``, the rest at ``lr``.

    A model without a trunk (the bilinear baseline) gets one group.
    """
    trunk, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (trunk if name.startswith(TRUNK_PREFIXES) else rest).append(p)
    groups = [{"params": rest, "lr": lr, "base_lr": lr, "name": "rest"}]
    if trunk:
        groups.append({"params": trunk, "lr": lr_trunk, "base_lr": lr_trunk, "name": "trunk"})
    return groups


def set_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's rate to its ``base_lr`` x ``factor``."""
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * factor


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Clip the global gradient L2 norm to ``max_norm`` (0 = off); returns the norm before."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm <= 0 or not params:
        return float("nan")
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 on CUDA ``device``: compute capability >= 8.0. Not the default of
    ``torch.cuda.is_bf16_supported()``, which also counts emulation (slow on a V100 or T4,
    where some kernels then fail)."""
    if device.type != "cuda":
        return False
    return (torch.cuda.get_device_capability(device) >= (8, 0)
            and torch.cuda.is_bf16_supported(including_emulation=False))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (config ``model.train.amp``) on ``device``.

    ``auto``: bf16 where native (:func:`bf16_supported`), else fp16 on compute capability
    7.x (tensor cores; trained with loss scaling, :func:`grad_scaler`), else None (fp32).
    ``bf16`` / ``fp16``: that dtype. ``off``: None. Always None on the CPU.

    Raises:
        ConfigError: ``bf16`` on a GPU without native bf16 (naming it and what to use).
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "off" or device.type != "cuda":
        return None
    if amp == "fp16":
        return torch.float16
    if bf16_supported(device):
        return torch.bfloat16
    major, minor = torch.cuda.get_device_capability(device)
    if amp == "bf16":
        raise ConfigError(f"model.train.amp: bf16 asked for, but {device} "
                          f"({torch.cuda.get_device_name(device)}, compute capability "
                          f"{major}.{minor}) has no native bf16; use amp: auto (fp16 with loss "
                          "scaling there) or fp16")
    return torch.float16 if major >= 7 else None


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (fp16 gradients underflow without it); a disabled
    scaler, whose calls change nothing, for bf16 and fp32."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


@contextlib.contextmanager
def autocast(dtype: torch.dtype | None, device: torch.device) -> Iterator[None]:
    """``torch.autocast`` with ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def to_channels_last(model: nn.Module, device: torch.device, enabled: bool) -> nn.Module:
    """channels_last weights on CUDA (tensor-core friendly convs) and the CPU (oneDNN's
    native layout); unchanged on other devices or when not ``enabled``."""
    if enabled and device.type in ("cuda", "cpu"):
        return model.to(memory_format=torch.channels_last)
    return model


def batch_to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move a batch tensor to ``device`` (channels_last for 4-D float tensors on CUDA and
    the CPU, see :func:`to_channels_last`)."""
    x = x.to(device, non_blocking=True)
    if (channels_last and device.type in ("cuda", "cpu") and x.ndim == 4
            and x.is_floating_point()):
        x = x.contiguous(memory_format=torch.channels_last)
    return x
