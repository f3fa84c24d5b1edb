"""Losses: SR (L1, feature "perceptual", relativistic GAN) and segmentation (BCE + Dice).

Perceptual loss, honestly: ImageNet VGG weights cannot be downloaded offline, so
:class:`FeatureLoss` compares features of a *fixed, randomly initialised* conv net
(seeded, frozen). Random conv features still measure local structure (edges,
texture) better than per-pixel L1, but they are not the pretrained VGG features
of ESRGAN; treat the term as a texture regulariser.

The GAN follows Real-ESRGAN: a U-Net discriminator with spectral normalisation
(:class:`UNetDiscriminatorSN`, per-pixel real/fake logits) and ESRGAN's
relativistic average loss. All terms are weighted by :class:`LossConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from jointseg.config import ConfigError
from jointseg.products import NODATA_U8


@dataclass
class LossConfig:
    """Loss weights and the staged schedule.

    Attributes:
        sr_l1: weight of the SR L1 loss (reflectance 0..1).
        sr_feature: weight of the random-feature "perceptual" loss (0 = off).
        sr_gan: weight of the relativistic GAN generator loss (0 = off).
        seg_bce: weight of the BCE term; seg_dice: weight of the soft Dice term.
        w_sr, w_seg: joint weights: total = w_sr * L_sr + w_seg * L_seg.
        sr_weighting: ``gradnorm`` (default), ``fixed`` (w_sr as given) or ``balanced``.
            ``gradnorm`` (GradNorm, Chen et al. 2018, simplified to one fixed ratio): in
            the joint phase the SR term is scaled so that its gradient norm on the shared
            parameters (the RRDB trunk the segmentation consumes) is ``w_sr`` x the
            segmentation term's (``w_seg * L_seg``); the scale is re-measured every
            ``gradnorm_every`` steps and smoothed by an EMA of ``gradnorm_ema``.
            ``balanced``: the SR term is rescaled every step by L_seg / L_sr (values, no
            gradient), so it weighs ``w_sr / w_seg`` as much as the segmentation term.
            With ``w_sr`` = 0 every mode gives exactly no SR loss.
        gradnorm_every: steps between gradient-norm measurements (``gradnorm``).
        gradnorm_ema: EMA factor of the measured scale (0 = last measurement only).
        sr_warmup_epochs: epochs that train the SR loss only (jointseg arch).
        gan_start_epoch: first epoch (0-based) with the GAN terms on.
        d_lr: discriminator learning rate.  d_nf: discriminator base channels.
    """

    sr_l1: float = 1.0
    sr_feature: float = 0.0
    sr_gan: float = 0.0
    seg_bce: float = 1.0
    seg_dice: float = 1.0
    w_sr: float = 1.0
    w_seg: float = 1.0
    sr_weighting: str = "gradnorm"
    gradnorm_every: int = 10
    gradnorm_ema: float = 0.9
    sr_warmup_epochs: int = 1
    gan_start_epoch: int = 1
    d_lr: float = 1e-4
    d_nf: int = 32

    def __post_init__(self) -> None:
        if self.sr_weighting not in SR_WEIGHTINGS:
            raise ConfigError(f"model.loss.sr_weighting: {self.sr_weighting!r} is not one of "
                             f"{SR_WEIGHTINGS}")
        if self.gradnorm_every < 1 or not 0 <= self.gradnorm_ema < 1 or self.w_sr < 0:
            raise ConfigError("model.loss: gradnorm_every must be >= 1, gradnorm_ema in "
                              "[0, 1), w_sr >= 0")


SR_WEIGHTINGS = ("gradnorm", "fixed", "balanced")


def joint_loss(cfg: LossConfig, l_sr: torch.Tensor, l_seg: torch.Tensor,
               sr_scale: float = 1.0) -> torch.Tensor:
    """The joint-phase total ``w_sr' * L_sr + w_seg * L_seg`` (``w_sr'`` per
    ``sr_weighting``; ``gradnorm``: ``w_sr * sr_scale``, the scale from
    :func:`gradnorm_scale`; ``w_sr`` as given while ``sr_scale`` is nan).
    ``w_sr`` = 0: ``w_seg * L_seg`` exactly, no SR term."""
    if cfg.w_sr == 0:
        return cfg.w_seg * l_seg
    w_sr = cfg.w_sr
    if cfg.sr_weighting == "balanced":
        w_sr = cfg.w_sr * (l_seg.detach() / l_sr.detach().clamp(min=1e-6))
    elif cfg.sr_weighting == "gradnorm" and math.isfinite(sr_scale):
        # before the first measurement (a fresh SR head is zero, so the SR loss has no
        # gradient on the trunk yet) the scale is nan and w_sr stands as given
        w_sr = cfg.w_sr * sr_scale
    return w_sr * l_sr + cfg.w_seg * l_seg


def gradnorm_scale(l_sr: torch.Tensor, l_seg: torch.Tensor, shared: list[torch.Tensor],
                   w_seg: float = 1.0) -> float:
    """``||d(w_seg L_seg)/d shared|| / ||d L_sr/d shared||``: the factor that gives the SR
    loss the segmentation loss's gradient norm on the ``shared`` parameters (the graph
    is kept for the step's backward); nan when either norm is 0 or not finite."""
    def norm(loss: torch.Tensor) -> float:
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        sq = [g.float().pow(2).sum() for g in grads if g is not None]
        return float(torch.stack(sq).sum().sqrt()) if sq else 0.0

    g_sr, g_seg = norm(l_sr), norm(w_seg * l_seg)
    ratio = g_seg / g_sr if g_sr > 0 else float("nan")
    return ratio if math.isfinite(ratio) and ratio > 0 else float("nan")


def masked_l1(sr: torch.Tensor, hr: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean |sr - hr| over the targets ``mask`` marks (all when None); 0 with none."""
    if mask is None:
        return F.l1_loss(sr, hr)
    m = mask.to(sr.dtype)
    return ((sr - hr).abs() * m).sum() / m.sum().clamp(min=1.0)


def bce_dice_loss(logit: torch.Tensor, label: torch.Tensor, w_bce: float = 1.0,
                  w_dice: float = 1.0) -> torch.Tensor:
    """BCE + soft Dice on (N,1,H,W) logits vs (N,H,W) uint8 labels; 255 is ignored."""
    target = label.unsqueeze(1).float()
    valid = (target != NODATA_U8).float()
    target = target * valid
    n_valid = valid.sum().clamp(min=1.0)
    bce = (F.binary_cross_entropy_with_logits(logit, target, reduction="none") * valid).sum()
    bce = bce / n_valid
    prob = torch.sigmoid(logit) * valid
    dice = 1.0 - (2.0 * (prob * target).sum() + 1.0) / (prob.sum() + target.sum() + 1.0)
    return w_bce * bce + w_dice * dice


class FeatureLoss(nn.Module):
    """L1 between features of a fixed random conv net (seeded, frozen, no pretrained weights)."""

    def __init__(self, in_ch: int = 4, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        chans = [in_ch, 16, 32, 32]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            conv = nn.Conv2d(a, b, 3, padding=1, stride=2 if a != in_ch else 1)
            with torch.no_grad():
                std = (2 / (a * 9)) ** 0.5
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * std)
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
        self.net = nn.Sequential(*layers)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.net(sr * 10.0), self.net(hr * 10.0))


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm (per-pixel logits)."""

    def __init__(self, in_ch: int = 4, nf: int = 32) -> None:
        super().__init__()
        sn = spectral_norm
        self.c0 = nn.Conv2d(in_ch, nf, 3, padding=1)
        self.c1 = sn(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.c2 = sn(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.c3 = sn(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.c4 = sn(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.c5 = sn(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.c6 = sn(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.c7 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.c8 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.c9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        up = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode="bilinear",  # noqa: E731
                                          align_corners=False)
        x0 = a(self.c0(x))
        x1 = a(self.c1(x0))
        x2 = a(self.c2(x1))
        x3 = a(self.c3(x2))
        x4 = a(self.c4(up(x3, x2))) + x2
        x5 = a(self.c5(up(x4, x1))) + x1
        x6 = a(self.c6(up(x5, x0))) + x0
        return self.c9(a(self.c8(a(self.c7(x6)))))


def relativistic_g_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN relativistic average generator loss."""
    return 0.5 * (
        F.binary_cross_entropy_with_logits(d_real - d_fake.mean(), torch.zeros_like(d_real))
        + F.binary_cross_entropy_with_logits(d_fake - d_real.mean(), torch.ones_like(d_fake))
    )


def relativistic_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN relativistic average discriminator loss (``d_fake`` from detached SR)."""
    return 0.5 * (
        F.binary_cross_entropy_with_logits(d_real - d_fake.mean(), torch.ones_like(d_real))
        + F.binary_cross_entropy_with_logits(d_fake - d_real.mean(), torch.zeros_like(d_fake))
    )


class SRLoss(nn.Module):
    """Weighted SR loss: L1 + random-feature loss + relativistic GAN (generator side).

    ``mask`` (bool, like ``hr``) marks the targets; elsewhere (a 3-band HR's NIR, HR
    nodata) L1 ignores the pixel and the feature / GAN terms see the SR value itself
    in place of the target (neutral per pixel; the feature net mixes bands, so a
    missing band can still shift the feature term slightly through the others).
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature = FeatureLoss() if cfg.sr_feature > 0 else None

    def forward(self, sr: torch.Tensor, hr: torch.Tensor,
                disc: UNetDiscriminatorSN | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        loss = self.cfg.sr_l1 * masked_l1(sr, hr, mask)
        if mask is not None:
            hr = torch.where(mask, hr, sr.detach())
        if self.feature is not None:
            loss = loss + self.cfg.sr_feature * self.feature(sr, hr)
        if disc is not None and self.cfg.sr_gan > 0:
            loss = loss + self.cfg.sr_gan * relativistic_g_loss(disc(hr).detach(), disc(sr))
        return loss
