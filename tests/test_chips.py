"""Tests for the model's chip reader: 3-band HR targets, extra index columns and files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from jointseg.model.chips import (
    HR_BANDS_TAG,
    ChipError,
    hr_target_mask,
    load_chip,
    load_chips,
)
from jointseg.model.losses import LossConfig, SRLoss, masked_l1

CHIPS = Path(__file__).parent / "data" / "chips"


def three_band_copy(tmp_path: Path, tag: str = "R,G,B", zero_nir: bool = True) -> Path:
    """tests/data/chips with chip00's hr.tif made 3-band (NIR 0, tagged), an extra index
    column and extra files in the chip folders."""
    root = tmp_path / "chips"
    shutil.copytree(CHIPS, root)
    with rasterio.open(root / "chip00" / "hr.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        if zero_nir:
            ds.write(np.zeros((ds.height, ds.width), np.uint16), 4)
        ds.update_tags(**{HR_BANDS_TAG: tag})
    rows = list(csv.DictReader((root / "index.csv").open()))
    with (root / "index.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "hr_shift_m", "isa_fraction"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "hr_shift_m": "[0.5, -1.0]", "isa_fraction": 0.3})
    for chip in ("chip00", "chip01"):
        shutil.copy(root / chip / "label.tif", root / chip / "truth.tif")
        shutil.copy(root / chip / "label.tif", root / chip / "landcover.tif")
    return root


def test_three_band_hr_masks_nir(tmp_path: Path) -> None:
    root = three_band_copy(tmp_path)
    chip = load_chip(root, "chip00")
    assert chip.hr_bands == ("R", "G", "B")
    mask = chip.hr_mask
    assert mask.shape == chip.hr.shape and mask.dtype == bool
    assert not mask[3].any() and mask[:3].all()
    four = load_chip(root, "chip01")
    assert four.hr_bands == ("R", "G", "B", "NIR") and four.hr_mask.all()


def test_untagged_bands_are_not_targets_even_if_nonzero(tmp_path: Path) -> None:
    root = three_band_copy(tmp_path, zero_nir=False)
    chip = load_chip(root, "chip00")
    assert not chip.hr[3].any() and not chip.hr_mask[3].any()


def test_bad_hr_bands_tag_is_named(tmp_path: Path) -> None:
    root = three_band_copy(tmp_path, tag="R,G,SWIR")
    with pytest.raises(ChipError, match=r"hr.tif: JOINTSEG_HR_BANDS='R,G,SWIR'"):
        load_chip(root, "chip00")


def test_extra_index_columns_and_files_are_ignored(tmp_path: Path) -> None:
    root = three_band_copy(tmp_path)
    chips = load_chips(root, "train")
    assert [c.chip_id for c in chips] == ["chip00", "chip01", "chip02", "chip04"]


def test_zero_means_no_target() -> None:
    hr = np.array([[[0, 5], [7, 0]]], np.uint16)
    assert hr_target_mask(hr).tolist() == [[[False, True], [True, False]]]


def test_sr_loss_skips_masked_targets() -> None:
    torch.manual_seed(0)
    sr = torch.rand(2, 4, 10, 10, requires_grad=True)
    hr = torch.rand(2, 4, 10, 10)
    hr[:, 3] = 0.0
    mask = hr != 0
    loss = SRLoss(LossConfig())
    a = loss(sr, hr, mask=mask)
    sr2 = sr.detach().clone()
    sr2[:, 3] += 0.5  # NIR has no target: changing it changes nothing
    assert torch.allclose(a, loss(sr2, hr, mask=mask))
    a.backward()
    assert sr.grad[:, 3].abs().max() == 0 and sr.grad[:, :3].abs().max() > 0
    expected = (sr[:, :3] - hr[:, :3]).abs().mean()
    assert torch.allclose(masked_l1(sr, hr, mask), expected)
    assert float(masked_l1(sr, hr, torch.zeros_like(mask))) == 0.0
    feat = SRLoss(LossConfig(sr_feature=0.5))(sr, hr, mask=mask)  # fills NIR with the SR
    assert torch.isfinite(feat) and float(feat) > float(a)
