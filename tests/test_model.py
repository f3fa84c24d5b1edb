"""Tests for jointseg.model: shapes at every scale, tiling safety, losses, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointseg.metrics import binary_counts, binary_metrics
from jointseg.model.blocks import RRDB, LocalChannelAttention, SpatialAttention
from jointseg.model.jointseg import (
    MULTIPLE_10M,
    BilinearSeg,
    JointSeg,
    bilinear_rgbn,
    build_model,
    check_input_shapes,
    count_params,
    gflops_per_km2,
)
from jointseg.model.losses import (
    FeatureLoss,
    LossConfig,
    SRLoss,
    UNetDiscriminatorSN,
    bce_dice_loss,
    relativistic_d_loss,
    relativistic_g_loss,
)
from jointseg.model.metrics import best_threshold, prob_histograms, psnr, ssim

torch.set_num_threads(2)


def inputs(n: int = 2, h: int = 8, w: int = 10, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    s10 = torch.rand(n, 5, h, w, generator=g) * 3000 + 200
    s10[:, 4] = torch.randint(0, 20, (n, h, w), generator=g).float()
    s20 = torch.rand(n, 6, h // 2, w // 2, generator=g) * 3000 + 200
    return s10, s20


@pytest.mark.parametrize("arch", ["jointseg", "bilinear"])
def test_output_shapes(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, "tiny").eval()
    s10, s20 = inputs(2, 8, 10)
    with torch.no_grad():
        logit, sr = model(s10, s20)
    assert logit.shape == (2, 1, 80, 100) and logit.dtype == torch.float32
    assert sr.shape == (2, 4, 80, 100) and sr.dtype == torch.float32
    assert torch.isfinite(logit).all() and torch.isfinite(sr).all()


def test_sr_branch_scales() -> None:
    """Features at 10 m, 5 m and 1 m, and the residual at 1 m."""
    torch.manual_seed(0)
    model: JointSeg = build_model("jointseg", "tiny").eval()
    feat = torch.randn(1, model.size.nf, 6, 8)
    with torch.no_grad():
        res, (f10, f5, f1) = model.sr(feat)
    assert f10.shape == (1, model.size.nf, 6, 8)
    assert f5.shape == (1, model.size.nf, 12, 16)
    assert f1.shape == (1, model.size.nf_1m, 60, 80)
    assert res.shape == (1, 4, 60, 80)


def test_baseline_sr_is_bilinear_reflectance() -> None:
    model: BilinearSeg = build_model("bilinear", "tiny").eval()
    s10, s20 = inputs(1, 4, 4)
    s10[:, :4] = torch.tensor([100.0, 200.0, 300.0, 400.0]).view(1, 4, 1, 1)  # constant bands
    with torch.no_grad():
        _, sr = model(s10, s20)
    # R G B NIR = B04 B03 B02 B08 / 10000
    expect = torch.tensor([0.03, 0.02, 0.01, 0.04]).view(1, 4, 1, 1).expand_as(sr)
    torch.testing.assert_close(sr, expect, atol=1e-6, rtol=0)
    assert bilinear_rgbn(s10).shape == (1, 4, 40, 40)


def test_normalisation_is_in_buffers() -> None:
    model = build_model("jointseg", "tiny")
    model.norm.set_stats([1, 2, 3, 4], [5, 6, 7, 8], [1] * 6, [2] * 6, 12.0)
    state = model.state_dict()
    assert state["norm.mean_10m"].tolist() == [1, 2, 3, 4]
    assert float(state["norm.count_ref"]) == 12.0
    x10, x20 = model.norm(torch.full((1, 5, 2, 2), 11.0), torch.full((1, 6, 1, 1), 5.0))
    assert torch.allclose(x10[0, 0], torch.tensor(2.0))  # (11 - 1) / 5
    assert torch.allclose(x20[0, 0], torch.tensor(2.0))  # (5 - 1) / 2
    assert torch.allclose(x10[0, 4], torch.log1p(torch.tensor(11.0)) / torch.log1p(
        torch.tensor(12.0)))
    assert model.norm.to_dict()["mean_10m"] == [1, 2, 3, 4]


def test_band_names_come_from_bands_py() -> None:
    from jointseg import bands

    norm = build_model("jointseg", "tiny").norm.to_dict()
    assert norm["bands_10m"] == list(bands.BANDS_10M)
    assert norm["bands_20m"] == list(bands.BANDS_20M)
    n10, n20 = len(bands.MODEL_INPUT_10M), len(bands.BANDS_20M)
    check_input_shapes(torch.zeros(1, n10, 4, 4), torch.zeros(1, n20, 2, 2))
    with pytest.raises(ValueError, match="s2_10m must be"):
        check_input_shapes(torch.zeros(1, len(bands.BANDS_10M), 4, 4),
                           torch.zeros(1, n20, 2, 2))


def test_input_shape_check() -> None:
    s10, s20 = inputs(1, 8, 8)
    check_input_shapes(s10, s20)
    with pytest.raises(ValueError, match="multiples of 2"):
        check_input_shapes(s10[..., :7], s20)
    with pytest.raises(ValueError, match="s2_20m"):
        check_input_shapes(s10, s20[..., :3])
    assert MULTIPLE_10M == 2


def test_local_attention_has_bounded_support() -> None:
    """A change far away must not change the gate: no global pooling (no tiling seams)."""
    torch.manual_seed(0)
    for module in (LocalChannelAttention(8, window=7), SpatialAttention(7)):
        x = torch.randn(1, 8, 40, 40)
        y = x.clone()
        y[..., 30:, 30:] += 5.0
        with torch.no_grad():
            a, b = module(x), module(y)
        assert torch.equal(a[..., :20, :20], b[..., :20, :20])
        assert not torch.equal(a, b)


@pytest.mark.parametrize("arch", ["jointseg", "bilinear"])
def test_tiling_with_halo_matches_full_run(arch: str) -> None:
    """A crop with a generous even margin reproduces the full output in its centre."""
    from jointseg.model.export import measure_halo

    torch.manual_seed(1)
    model = build_model(arch, "tiny").eval()
    halo = measure_halo(model, max_halo_10m=24, centre_10m=4)
    assert halo % MULTIPLE_10M == 0 and 0 < halo <= 24
    s10, s20 = inputs(1, 40, 40, seed=3)
    with torch.no_grad():
        full = model(s10, s20)
        a, b = 10 - halo, 20 + halo  # centre block 10..20 at 10 m
        a = max(a, 0)
        crop = model(s10[..., a:b, a:b], s20[..., a // 2:b // 2, a // 2:b // 2])
    for f, c in zip(full, crop, strict=True):
        diff = (f[..., 100:200, 100:200] - c[..., (10 - a) * 10:(20 - a) * 10,
                                            (10 - a) * 10:(20 - a) * 10]).abs().max()
        assert float(diff) < 2e-3


def test_presets_sizes_and_flops() -> None:
    tiny = build_model("jointseg", "tiny")
    paper = build_model("jointseg", "paper")
    base = build_model("bilinear", "tiny")
    assert count_params(tiny) < 500_000
    assert count_params(paper) > 10_000_000
    assert count_params(base) < count_params(tiny)
    g = gflops_per_km2(tiny, size_10m=10)
    assert 1.0 < g < 100.0
    # FLOPs scale with area: per-km2 figure is size independent
    assert abs(gflops_per_km2(tiny, size_10m=20) - g) / g < 0.05
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("jointseg", "huge")
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("unet", "tiny")


def test_rrdb_keeps_shape_and_residual() -> None:
    block = RRDB(8, 4)
    x = torch.randn(1, 8, 5, 5)
    assert block(x).shape == x.shape


def test_bce_dice_ignores_255() -> None:
    logit = torch.randn(1, 1, 6, 6)
    label = torch.randint(0, 2, (1, 6, 6), dtype=torch.uint8)
    label[:, :2] = 255
    other = logit.clone()
    other[..., :2, :] = 50.0  # changes only ignored pixels
    assert torch.allclose(bce_dice_loss(logit, label), bce_dice_loss(other, label))
    perfect = (label.float().unsqueeze(1) * 2 - 1) * 20
    assert float(bce_dice_loss(perfect, label)) < 1e-3
    assert float(bce_dice_loss(-perfect, label)) > 1.0


def test_sr_losses() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 4, 32, 32) * 0.3
    feat = FeatureLoss()
    assert float(feat(hr, hr)) == 0.0
    assert float(feat(hr + 0.05 * torch.randn_like(hr), hr)) > 0
    assert not any(p.requires_grad for p in feat.parameters())
    disc = UNetDiscriminatorSN(nf=8)
    d = disc(hr)
    assert d.shape == (2, 1, 32, 32)
    fake = hr.flip(-1)
    assert torch.isfinite(relativistic_g_loss(disc(hr), disc(fake)))
    assert torch.isfinite(relativistic_d_loss(disc(hr), disc(fake)))
    loss = SRLoss(LossConfig(sr_l1=1.0, sr_feature=0.1, sr_gan=0.01))
    sr = (hr + 0.1).requires_grad_(True)
    total = loss(sr, hr, disc)
    total.backward()
    assert float(total.detach()) > 0.1 - 1e-6 and sr.grad is not None


def test_metrics() -> None:
    pred = np.array([[1, 1, 0, 0]], bool)
    label = np.array([[1, 0, 1, 255]], np.uint8)
    c = binary_counts(pred, label)
    s = binary_metrics(c)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 0)
    assert s["f1"] == pytest.approx(0.5) and s["iou"] == pytest.approx(1 / 3)
    assert psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)
    img = np.random.default_rng(0).random((2, 20, 20))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, np.random.default_rng(1).random((2, 20, 20))) < 0.2


def test_icnr_pixel_shuffle_starts_as_nearest_upsample() -> None:
    """The x5 SR stage (conv at 5 m + PixelShuffle) starts equal to nearest x5 of one conv."""
    from jointseg.model.blocks import conv3, icnr_, upsample

    torch.manual_seed(0)
    conv = conv3(6, 3 * 25)
    icnr_(conv.weight, 5)
    torch.nn.init.zeros_(conv.bias)
    x = torch.randn(1, 6, 4, 5)
    with torch.no_grad():
        shuffled = torch.nn.PixelShuffle(5)(conv(x))
        ref = upsample(torch.nn.functional.conv2d(x, conv.weight[::25], padding=1), 5)
    assert shuffled.shape == (1, 3, 20, 25)
    assert torch.allclose(shuffled, ref, atol=1e-6)


def test_segmentation_branch_sees_swir() -> None:
    """Architecture v2: the 11 bands enter the segmentation encoder at 1 m and at 10 m,
    so B11/B12 reach the ISA logit without passing through the SR trunk."""
    from jointseg.model.jointseg import ARCH_VERSION

    torch.manual_seed(0)
    model: JointSeg = build_model("jointseg", "tiny").eval()
    assert ARCH_VERSION >= 2
    nf_1m, nf = model.size.nf_1m, model.size.nf
    assert model.seg.enc1[0][0].in_channels == 4 + 1 + 11 + nf_1m
    assert model.seg.enc10[0].in_channels == model.size.seg_widths[2] + nf + 11
    # cut the SR trunk out: the logit must still respond to SWIR alone
    model.sr.trunk_10m = torch.nn.Identity()
    for p in model.stem_20m.parameters():
        p.data.zero_()
    s10, s20 = inputs(1, 6, 6)
    s20b = s20.clone()
    s20b[:, 4:6] += 2000.0  # B11, B12
    with torch.no_grad():
        a, _ = model(s10, s20)
        b, sr_b = model(s10, s20b)
    assert not torch.allclose(a, b)


def test_best_threshold_matches_brute_force() -> None:
    """The histogram sweep finds the same F1-maximising cut as thresholding the pixels at
    every candidate; 255 is ignored; no ISA pixel gives (0.5, nan)."""
    from jointseg.metrics import binary_counts, binary_metrics

    rng = np.random.default_rng(4)
    label = (rng.random(20000) < 0.3).astype(np.uint8)
    label[:500] = 255
    prob = np.clip(np.where(label == 1, rng.normal(0.35, 0.12, label.size),
                            rng.normal(0.12, 0.1, label.size)), 0, 1)
    thr, f1 = best_threshold(prob_histograms(prob, label))
    brute = {k / 100: float(binary_metrics(binary_counts(prob >= k / 100, label))["f1"])
             for k in range(5, 96)}
    assert f1 == pytest.approx(max(brute.values()), abs=1e-9)
    assert brute[thr] == pytest.approx(f1, abs=1e-9) and thr < 0.5
    empty = prob_histograms(prob, np.zeros_like(label))
    assert best_threshold(empty)[0] == 0.5 and np.isnan(best_threshold(empty)[1])
