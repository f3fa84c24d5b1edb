"""Segmentation branch: a 1 m U-Net with local attention and cross-scale fusion.

Encoder levels sit at 1 m, 5 m, 10 m and 20 m (strides 5, 2, 2), so they line up
with the SR branch's feature scales (1 m, 5 m, 10 m), whose features are
concatenated into the encoder at the matching level (cross-scale fusion). The
decoder upsamples back (bilinear) with skip connections and LocalCBAM attention;
the head is one 1 x 1 conv giving ISA logits at 1 m. Total stride 20 px at 1 m,
i.e. 2 px at 10 m: inputs must be a multiple of 2 px at 10 m.
"""

from __future__ import annotations

import torch
from torch import nn

from jointseg.model.blocks import ConvBNAct, LocalCBAM, SpatialAttention, upsample


class SegNet(nn.Module):
    """U-Net over 1 m input with optional per-scale fusion features.

    Args:
        in_ch: channels of the 1 m input.
        widths: channels at the (1 m, 5 m, 10 m, 20 m) levels.
        fuse_ch: channels of the fused SR features at (1 m, 5 m, 10 m); zeros = none.
        window: local attention window (pixels at each level).
    """

    def __init__(
        self,
        in_ch: int,
        widths: tuple[int, int, int, int],
        fuse_ch: tuple[int, int, int] = (0, 0, 0),
        window: int = 7,
    ) -> None:
        super().__init__()
        c1, c5, c10, c20 = widths
        f1, f5, f10 = fuse_ch
        self.fuse_ch = fuse_ch
        self.enc1 = nn.Sequential(ConvBNAct(in_ch + f1, c1), ConvBNAct(c1, c1))
        self.down5 = nn.Sequential(nn.Conv2d(c1, c5, 5, stride=5), nn.ReLU(inplace=True))
        self.enc5 = ConvBNAct(c5 + f5, c5)
        self.down10 = nn.Sequential(nn.Conv2d(c5, c10, 2, stride=2), nn.ReLU(inplace=True))
        self.enc10 = ConvBNAct(c10 + f10, c10)
        self.down20 = nn.Sequential(nn.Conv2d(c10, c20, 2, stride=2), nn.ReLU(inplace=True))
        self.bottleneck = nn.Sequential(ConvBNAct(c20, c20), ConvBNAct(c20, c20), LocalCBAM(c20))
        self.dec10 = nn.Sequential(ConvBNAct(c20 + c10, c10), LocalCBAM(c10, window))
        self.dec5 = nn.Sequential(ConvBNAct(c10 + c5, c5), LocalCBAM(c5, window))
        self.dec1 = nn.Sequential(ConvBNAct(c5 + c1, c1), SpatialAttention(7))
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(
        self, x_1m: torch.Tensor, fuse: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(N, in_ch, 10H, 10W) -> (N, 1, 10H, 10W) logits; ``fuse`` = [f10, f5, f1]."""
        f10, f5, f1 = fuse if fuse is not None else (None, None, None)
        e1 = self.enc1(_cat(x_1m, f1))
        e5 = self.enc5(_cat(self.down5(e1), f5))
        e10 = self.enc10(_cat(self.down10(e5), f10))
        b = self.bottleneck(self.down20(e10))
        d10 = self.dec10(torch.cat([upsample(b, 2, "bilinear"), e10], 1))
        d5 = self.dec5(torch.cat([upsample(d10, 2, "bilinear"), e5], 1))
        d1 = self.dec1(torch.cat([upsample(d5, 5, "bilinear"), e1], 1))
        return self.head(d1)


def _cat(x: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
    return x if f is None else torch.cat([x, f], 1)
