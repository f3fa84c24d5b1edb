"""The full JointSeg model, the bilinear baseline, and their size presets.

Both models share one interface (the ONNX contract in ``docs/model.md``):

    forward(s2_10m, s2_20m) -> (isa_logit, sr)

* ``s2_10m``: float32 (N, 5, H, W), B02 B03 B04 B08 as harmonised DN
  (reflectance x 10000) and COUNT (clear observations), on the 10 m grid.
* ``s2_20m``: float32 (N, 6, H/2, W/2), B05 B06 B07 B8A B11 B12 DN, 20 m grid.
* ``isa_logit``: float32 (N, 1, 10H, 10W) impervious-surface logits at 1 m.
* ``sr``: float32 (N, 4, 10H, 10W) R G B NIR reflectance (0..1) at 1 m.

H and W must be multiples of :data:`MULTIPLE_10M`. Normalisation statistics are
buffers of the model, so callers pass raw DN.

JointSeg's segmentation branch sees the original multispectral evidence as well as
the SR output (architecture version 2): the 11 normalised bands (B02 B03 B04 B08
COUNT and the 20 m B05 B06 B07 B8A B11 B12, bilinearly aligned to 10 m) are fused
into the encoder at 10 m beside the SR features, and go in bilinearly upsampled at
1 m beside the SR reflectance. SWIR (B11, B12) is what separates water from dark
asphalt, and the SR branch, trained for RGBN, need not keep it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from jointseg.bands import BANDS_10M, BANDS_20M, MODEL_INPUT_10M, SR_BANDS, SR_FROM_S2
from jointseg.model.blocks import conv3, upsample
from jointseg.model.seg import SegNet
from jointseg.model.sr import ProgSR

SCALE_FACTOR = 10
MULTIPLE_10M = 2
DN_SCALE = 10000.0
#: ``bilinear-wide``: the bilinear baseline with its segmentation widths scaled so its
#: parameter count matches JointSeg's at the same preset (:func:`bilinear_width_multiplier`)
ARCHS = ("jointseg", "bilinear", "bilinear-wide")
#: Version of the network layout; checkpoints and ONNX metadata record it, and a
#: checkpoint of another version does not load. 2: the segmentation branch sees the
#: original 10/20 m bands (10 m fusion + 1 m input); the x5 SR stage is a pixel shuffle.
ARCH_VERSION = 2
# indices in s2_10m of the S2 bands behind the SR bands (B04 B03 B02 B08 for R G B NIR)
_RGBN = [MODEL_INPUT_10M.index(SR_FROM_S2[b]) for b in SR_BANDS]
# s2_10m channels: reflectance bands first, then COUNT
_N_REFL_10M = len(BANDS_10M)
# the multispectral evidence the segmentation branch sees: s2_10m (5) + s2_20m (6)
_N_MS = len(MODEL_INPUT_10M) + len(BANDS_20M)


@dataclass(frozen=True)
class ModelSize:
    """Size of a preset. Channels (nf, gc, nf_1m) and block counts of the SR branch;
    ``seg_widths`` at the 1, 5, 10, 20 m levels; ``stem`` channels per input grid."""

    stem: int
    nf: int
    gc: int
    n_rrdb_10m: int
    n_rrdb_5m: int
    nf_1m: int
    seg_widths: tuple[int, int, int, int]
    window: int = 7


PRESETS: dict[str, ModelSize] = {
    # trains on 2 CPU cores within minutes (demo, CI)
    "tiny": ModelSize(stem=16, nf=16, gc=8, n_rrdb_10m=1, n_rrdb_5m=1, nf_1m=8,
                      seg_widths=(8, 16, 32, 48)),
    # ESRGAN scale (23 RRDB, nf 64, gc 32) split 16 + 7 over the two stages; for GPUs
    "paper": ModelSize(stem=64, nf=64, gc=32, n_rrdb_10m=16, n_rrdb_5m=7, nf_1m=32,
                       seg_widths=(32, 64, 128, 256)),
}


class Normaliser(nn.Module):
    """Standardise raw DN inputs with statistics stored as buffers (always float32).

    Reflectance bands: ``(DN - mean) / std``. COUNT: ``log1p(count) / log1p(count_ref)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_10m", torch.tensor([900.0, 1100.0, 1200.0, 2600.0]))
        self.register_buffer("std_10m", torch.tensor([600.0, 600.0, 700.0, 900.0]))
        self.register_buffer(
            "mean_20m", torch.tensor([1500.0, 2200.0, 2500.0, 2700.0, 2300.0, 1600.0])
        )
        self.register_buffer("std_20m", torch.tensor([700.0, 800.0, 900.0, 900.0, 900.0, 800.0]))
        self.register_buffer("count_ref", torch.tensor(20.0))

    def forward(self, s2_10m: torch.Tensor, s2_20m: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Raw DN -> (normalised (N,5,H,W), normalised (N,6,H/2,W/2))."""
        n = _N_REFL_10M
        refl = (s2_10m[:, :n] - self.mean_10m.view(1, -1, 1, 1)) / self.std_10m.view(1, -1, 1, 1)
        count = torch.log1p(s2_10m[:, n:n + 1].clamp(min=0)) / torch.log1p(self.count_ref)
        x20 = (s2_20m - self.mean_20m.view(1, -1, 1, 1)) / self.std_20m.view(1, -1, 1, 1)
        return torch.cat([refl, count], 1), x20

    def set_stats(self, mean_10m: Sequence[float], std_10m: Sequence[float],
                  mean_20m: Sequence[float], std_20m: Sequence[float], count_ref: float) -> None:
        """Overwrite the statistics (sequences of floats, DN units)."""
        for name, value in (("mean_10m", mean_10m), ("std_10m", std_10m),
                            ("mean_20m", mean_20m), ("std_20m", std_20m),
                            ("count_ref", count_ref)):
            buf = getattr(self, name)
            buf.copy_(torch.as_tensor(value, dtype=buf.dtype).reshape(buf.shape))

    def to_dict(self) -> dict:
        """JSON-able statistics (the ``jointseg.normalisation`` metadata)."""
        return {
            "bands_10m": list(BANDS_10M),
            "mean_10m": [round(float(v), 3) for v in self.mean_10m],
            "std_10m": [round(float(v), 3) for v in self.std_10m],
            "bands_20m": list(BANDS_20M),
            "mean_20m": [round(float(v), 3) for v in self.mean_20m],
            "std_20m": [round(float(v), 3) for v in self.std_20m],
            "count": {"transform": "log1p(count)/log1p(count_ref)",
                      "count_ref": float(self.count_ref)},
            "formula": "(DN - mean) / std",
        }


def bilinear_rgbn(s2_10m: torch.Tensor) -> torch.Tensor:
    """B04 B03 B02 B08 DN at 10 m -> bilinear R G B NIR reflectance (0..1) at 1 m."""
    return upsample(s2_10m[:, _RGBN] / DN_SCALE, SCALE_FACTOR, "bilinear")


class JointSeg(nn.Module):
    """Prog-ESRGAN super-resolution + segmentation with cross-scale fusion."""

    arch = "jointseg"

    def __init__(self, size: ModelSize) -> None:
        super().__init__()
        self.size = size
        self.norm = Normaliser()
        self.stem_10m = conv3(len(MODEL_INPUT_10M), size.stem)
        self.stem_20m = conv3(len(BANDS_20M), size.stem)
        self.stem_fuse = conv3(2 * size.stem, size.nf)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.sr = ProgSR(size.nf, size.gc, size.n_rrdb_10m, size.n_rrdb_5m, size.nf_1m)
        f10, f5, f1 = self.sr.channels
        # 1 m input: SR RGBN, NDVI and the 11 bands (COUNT among them), bilinear
        self.seg = SegNet(len(SR_BANDS) + 1 + _N_MS, size.seg_widths, (f1, f5, f10 + _N_MS),
                          size.window)

    def forward(self, s2_10m: torch.Tensor, s2_20m: torch.Tensor, sr_only: bool = False
                ) -> tuple[torch.Tensor, ...] | torch.Tensor:
        """(isa_logit, sr); with ``sr_only`` just ``sr`` (the segmentation branch is not
        run: SR pre-training, :func:`jointseg.model.train.pretrain_sr`)."""
        dtype = self.stem_10m.weight.dtype  # float16 in the fp16 twin; inputs stay float32
        x10, x20 = (x.to(dtype) for x in self.norm(s2_10m.float(), s2_20m.float()))
        # align the 20 m grid to 10 m inside the network: learned 20 m features,
        # bilinear x2 with half-pixel centres (20 m pixel = 2 x 2 10 m pixels).
        f20 = upsample(self.act(self.stem_20m(x20)), 2, "bilinear")
        feat = self.act(self.stem_fuse(torch.cat([self.act(self.stem_10m(x10)), f20], 1)))
        residual, (f10, f5, f1) = self.sr(feat)
        sr = bilinear_rgbn(s2_10m.float()).to(dtype) + residual
        if sr_only:
            return sr.float()
        ms_10m = torch.cat([x10, upsample(x20, 2, "bilinear")], 1)  # the 11 bands at 10 m
        ms_1m = upsample(ms_10m, SCALE_FACTOR, "bilinear")
        ndvi = (sr[:, 3:4] - sr[:, 0:1]) / (sr[:, 3:4] + sr[:, 0:1]).abs().clamp(min=1e-3)
        seg_in = torch.cat([(sr - 0.1) * 10.0, ndvi, ms_1m], 1)
        fuse = [torch.cat([f10, ms_10m], 1), f5, f1]
        return self.seg(seg_in, fuse).float(), sr.float()


class BilinearSeg(nn.Module):
    """Baseline: bilinear upsampling of all inputs to 1 m + the same SegNet, no SR."""

    arch = "bilinear"

    def __init__(self, size: ModelSize, arch: str = "bilinear") -> None:
        super().__init__()
        self.arch = arch
        self.size = size
        self.norm = Normaliser()
        self.seg = SegNet(_N_MS, size.seg_widths, (0, 0, 0), size.window)

    def forward(self, s2_10m: torch.Tensor, s2_20m: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dtype = self.seg.head.weight.dtype
        x10, x20 = (x.to(dtype) for x in self.norm(s2_10m.float(), s2_20m.float()))
        x = torch.cat([x10, upsample(x20, 2, "bilinear")], 1)
        x_1m = upsample(x, SCALE_FACTOR, "bilinear")
        return self.seg(x_1m).float(), bilinear_rgbn(s2_10m.float())


def build_model(arch: str = "jointseg", preset: str = "tiny") -> JointSeg | BilinearSeg:
    """A fresh model of ``arch`` (jointseg|bilinear) at size ``preset`` (tiny|paper).

    Raises:
        ValueError: on an unknown arch or preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    if arch == "jointseg":
        return JointSeg(PRESETS[preset])
    if arch == "bilinear":
        return BilinearSeg(PRESETS[preset])
    if arch == "bilinear-wide":
        return BilinearSeg(widened(PRESETS[preset], bilinear_width_multiplier(preset)),
                           "bilinear-wide")
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")


def widened(size: ModelSize, mult: float) -> ModelSize:
    """``size`` with its segmentation widths x ``mult`` (rounded, at least 1)."""
    widths = tuple(max(1, round(w * mult)) for w in size.seg_widths)
    return replace(size, seg_widths=widths)  # type: ignore[arg-type]


@functools.cache
def bilinear_width_multiplier(preset: str) -> float:
    """The multiplier of the bilinear baseline's segmentation widths (``bilinear-wide``)
    whose parameter count is nearest JointSeg's at ``preset`` (bisection, 1e-3)."""
    target = count_params(JointSeg(PRESETS[preset]))
    size = PRESETS[preset]
    lo, hi = 1.0, 16.0
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        n = count_params(BilinearSeg(widened(size, mid)))
        lo, hi = (mid, hi) if n < target else (lo, mid)
    pick = min((lo, hi), key=lambda m: abs(count_params(BilinearSeg(widened(size, m))) - target))
    return round(pick, 4)


def check_input_shapes(s2_10m: torch.Tensor, s2_20m: torch.Tensor) -> None:
    """Raise ValueError unless the inputs follow the contract's shapes."""
    if s2_10m.ndim != 4 or s2_10m.shape[1] != len(MODEL_INPUT_10M):
        raise ValueError(f"s2_10m must be (N, 5, H, W), got {tuple(s2_10m.shape)}")
    n, _, h, w = s2_10m.shape
    if h % MULTIPLE_10M or w % MULTIPLE_10M:
        raise ValueError(f"s2_10m H, W = {h}, {w} must be multiples of {MULTIPLE_10M}")
    if tuple(s2_20m.shape) != (n, len(BANDS_20M), h // 2, w // 2):
        raise ValueError(
            f"s2_20m must be (N, 6, H/2, W/2) = {(n, 6, h // 2, w // 2)}, "
            f"got {tuple(s2_20m.shape)}"
        )


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gflops_per_km2(model: nn.Module, size_10m: int = 20) -> float:
    """Forward GFLOPs per km^2 of 1 m output, counted with FlopCounterMode.

    Runs one (1, 5, size_10m, size_10m) input (size_10m x 10 m on a side) and scales
    by area; convolution/matmul FLOPs (2 per multiply-add), elementwise ops excluded.
    """
    from torch.utils.flop_counter import FlopCounterMode

    s10 = torch.full((1, len(MODEL_INPUT_10M), size_10m, size_10m), 1000.0)
    s20 = torch.full((1, len(BANDS_20M), size_10m // 2, size_10m // 2), 1500.0)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(s10, s20)
    model.train(was_training)
    km2 = (size_10m * 10.0 / 1000.0) ** 2
    return counter.get_total_flops() / 1e9 / km2


def model_summary(arch: str, preset: str) -> dict:
    """Parameters and GFLOPs/km^2 of a fresh ``arch`` model at ``preset``."""
    m = build_model(arch, preset)
    return {"arch": arch, "preset": preset, "params": count_params(m),
            "gflops_per_km2": round(gflops_per_km2(m), 1), "size": asdict(PRESETS[preset])}


