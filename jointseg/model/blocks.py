"""Building blocks: RRDB (ESRGAN) and local attention (CBAM-style, tiling-safe).

Every block here is translation-equivariant away from the input border: convolutions
use zero padding, and attention pools over a *fixed local window*
(``avg_pool2d`` with stride 1) instead of the whole image, so a tiled predictor
with a halo reproduces the untiled output (no seams). Tensors are (N, C, H, W)
float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    """3 x 3 convolution, stride 1, zero padding 1 (keeps H, W)."""
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


class ConvBNAct(nn.Sequential):
    """conv3 -> BatchNorm -> ReLU (BatchNorm is per-channel only in eval: tiling-safe)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(conv3(cin, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualDenseBlock(nn.Module):
    """ESRGAN residual dense block: 5 densely connected convs, residual scaled by 0.2.

    Receptive-field radius: 5 pixels at the block's resolution.
    """

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv3(nf + i * gc, gc) for i in range(4))
        self.last = conv3(nf + 4 * gc, nf)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        for conv in [*self.convs, self.last]:  # ESRGAN init: kaiming x 0.1
            nn.init.kaiming_normal_(conv.weight, a=0.2)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(self.act(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.last(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block (3 RDBs), as in ESRGAN / Real-ESRGAN."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(ResidualDenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.body(x)


class LocalChannelAttention(nn.Module):
    """Squeeze-and-excitation over a local ``window`` x ``window`` neighbourhood.

    The usual SE squeezes with a global average pool, which makes every output
    depend on the whole input window (seams when tiling); here the squeeze is a
    stride-1 average pool with a fixed kernel, so the gate varies smoothly in space.
    """

    def __init__(self, channels: int, window: int = 7, reduction: int = 4) -> None:
        super().__init__()
        if window % 2 == 0:
            raise ValueError(f"attention window must be odd, got {window}")
        hidden = max(channels // reduction, 4)
        self.window = window
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.window
        s = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
        return x * torch.sigmoid(self.fc(s))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel mean and max -> k x k conv -> sigmoid gate."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(s))


class LocalCBAM(nn.Sequential):
    """CBAM with a local channel gate: LocalChannelAttention then SpatialAttention."""

    def __init__(self, channels: int, window: int = 7) -> None:
        super().__init__(LocalChannelAttention(channels, window), SpatialAttention(7))


@torch.no_grad()
def icnr_(weight: torch.Tensor, factor: int) -> None:
    """ICNR init of a conv feeding ``PixelShuffle(factor)``: every group of ``factor**2``
    output channels gets the same kaiming kernel, so the shuffle starts as a nearest
    upsample of one conv (no checkerboard). ``weight``: (cout * factor**2, cin, k, k)."""
    cout = weight.shape[0] // factor**2
    base = torch.empty(cout, *weight.shape[1:])
    nn.init.kaiming_normal_(base)
    weight.copy_(base.repeat_interleave(factor**2, dim=0))


def upsample(x: torch.Tensor, factor: int, mode: str = "nearest") -> torch.Tensor:
    """Upsample by an integer ``factor`` (``nearest`` or ``bilinear``, half-pixel centres)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=float(factor), mode="nearest")
    return F.interpolate(x, scale_factor=float(factor), mode=mode, align_corners=False)
