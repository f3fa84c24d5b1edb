"""Tests for model.chips and model.train: reader checks, crops, loss, resume, CLI."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from jointseg.config import ConfigError
from jointseg.model.chips import ChipError, band_stats, load_chip, load_chips, random_crop
from jointseg.model.jointseg import build_model
from jointseg.model.losses import bce_dice_loss
from jointseg.model.train import (
    TrainConfig,
    _to_batch,
    config_from_dict,
    load_checkpoint,
    load_train_settings,
    train,
)

CHIPS = Path(__file__).parent / "data" / "chips"
torch.set_num_threads(2)


def test_load_chips_any_crs() -> None:
    chips = load_chips(CHIPS)
    assert len(chips) == 6
    assert {c.crs for c in chips} == {"EPSG:32650", "EPSG:3035"}
    c = chips[0]
    assert c.s2_10m.shape == (5, 16, 16) and c.s2_10m.dtype == np.uint16
    assert c.s2_20m.shape == (6, 8, 8)
    assert c.hr.shape == (4, 160, 160) and c.label.shape == (160, 160)
    assert set(np.unique(c.label)) <= {0, 1, 255}
    assert [x.split for x in load_chips(CHIPS, "val")] == ["val", "val"]


def test_bounds_mismatch_names_chip_and_file(tmp_path: Path) -> None:
    shutil.copytree(CHIPS / "chip00", tmp_path / "chip00")
    path = tmp_path / "chip00" / "label.tif"
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile.update(driver="GTiff", transform=src.transform @ rasterio.Affine.translation(10, 0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(ChipError, match=r"chip chip00: label\.tif bounds"):
        load_chip(tmp_path, "chip00")
    (tmp_path / "chip00" / "hr.tif").unlink()
    with pytest.raises(ChipError, match=r"chip chip00: hr\.tif not found"):
        load_chip(tmp_path, "chip00")
    with pytest.raises(ChipError, match="index.csv"):
        load_chips(tmp_path)


def test_random_crop_keeps_grids_aligned() -> None:
    """After flips/rotations the 1 m crop still averages to the 10 m crop (fixture relation)."""
    chip = load_chips(CHIPS, "train")[0]
    rng = np.random.default_rng(0)
    for _ in range(6):
        s10, s20, hr, label = random_crop(chip, 8, rng)
        assert s10.shape == (5, 8, 8) and s20.shape == (6, 4, 4)
        assert hr.shape == (4, 80, 80) and label.shape == (80, 80)
        red_10m = hr[0].astype(float).reshape(8, 10, 8, 10).mean(axis=(1, 3))
        assert np.abs(red_10m - s10[2]).max() < 200  # B04 = box mean of R + noise
        wrong = np.rot90(red_10m)
        assert np.abs(wrong - s10[2]).max() > 200 or np.allclose(wrong, red_10m, atol=200)
    with pytest.raises(ValueError, match="even"):
        random_crop(chip, 7, rng)


def test_band_stats() -> None:
    stats = band_stats(load_chips(CHIPS, "train"))
    assert len(stats["mean_10m"]) == 4 and len(stats["std_20m"]) == 6
    assert 2500 < stats["mean_10m"][3] < 3500  # NIR of a vegetated toy town
    assert 8 <= stats["count_ref"] <= 15


@pytest.mark.parametrize("arch", ["jointseg", "bilinear"])
def test_training_steps_lower_the_loss(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, "tiny")
    model.norm.set_stats(**band_stats(load_chips(CHIPS, "train")))
    chips = load_chips(CHIPS, "train")
    rng = np.random.default_rng(0)
    s10, s20, hr, label = _to_batch([random_crop(c, 8, rng, False) for c in chips[:2]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn() -> torch.Tensor:
        logit, sr = model(s10, s20)
        seg = bce_dice_loss(logit, label)
        return seg + (torch.nn.functional.l1_loss(sr, hr) if arch == "jointseg" else 0)

    first = float(loss_fn().detach())
    for _ in range(10):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert float(loss_fn().detach()) < 0.8 * first


def test_train_writes_outputs_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, batch_size=4, crops_per_chip=1, seed=3, threads=2, crop_10m=8)
    full = train(CHIPS, tmp_path / "full", cfg, progress=False)
    for name in ("last.pt", "best.pt", "history.csv", "loss.png", "summary.json"):
        assert (tmp_path / "full" / name).is_file(), name
    rows = list(csv.DictReader((tmp_path / "full" / "history.csv").open()))
    assert [r["phase"] for r in rows] == ["sr_warmup", "joint"]
    assert 0 <= float(rows[-1]["val_f1"]) <= 1 and float(rows[-1]["val_psnr"]) > 10
    assert full["epochs"] == 2 and full["data"]["n_train"] == 4
    # best.pt = the epoch of the highest F1 at its calibrated cut, which the summary keeps
    cal = [float(r["val_f1_cal"]) for r in rows]
    assert full["best"]["epoch"] == int(np.argmax(cal))
    assert full["threshold"] == float(rows[int(np.argmax(cal))]["val_threshold"])
    fixed = train(CHIPS, tmp_path / "fixed", TrainConfig(**{**cfg.__dict__, "epochs": 1,
                                                           "calibrate": False}),
                  progress=False)
    assert (fixed["threshold"], fixed["threshold_source"]) == (0.5, "fixed")

    train(CHIPS, tmp_path / "part", TrainConfig(**{**cfg.__dict__, "epochs": 1}),
          progress=False)
    train(CHIPS, tmp_path / "part", cfg, resume=True, progress=False)
    a, _ = load_checkpoint(tmp_path / "full" / "last.pt")
    b, ckpt = load_checkpoint(tmp_path / "part" / "last.pt")
    assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 2
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(va.float(), vb.float(), atol=1e-6), k
    # the normalisation was fitted on the training chips
    assert float(a.norm.mean_10m[3]) > 2500


def test_resume_on_other_chips_starts_afresh(tmp_path: Path) -> None:
    """A last.pt left by a run on another chip set is not "resumed" (it could be a finished
    run whose best.pt is gone): training starts from epoch 0 and writes best.pt again."""
    cfg = TrainConfig(epochs=1, batch_size=4, crops_per_chip=1, seed=3, threads=2, crop_10m=8)
    train(CHIPS, tmp_path / "run", cfg, progress=False)
    other = tmp_path / "other"
    shutil.copytree(CHIPS, other)
    rows = (other / "index.csv").read_text().splitlines()
    (other / "index.csv").write_text("\n".join(rows[:-2] + rows[-1:]) + "\n")  # no chip04
    (tmp_path / "run" / "best.pt").unlink()
    s = train(other, tmp_path / "run", cfg, resume=True, progress=False)
    assert (tmp_path / "run" / "best.pt").is_file()
    _, ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert len(ckpt["history"]) == 1 and s["data"]["n_train"] == 3


def test_resume_rebuilds_a_removed_best_and_ignores_other_settings(tmp_path: Path) -> None:
    """Snakemake removes best.pt before rerunning train_model: a resume of a finished run
    rebuilds it from last.pt's copy of the best epoch (same weights); a last.pt trained
    with another seed is not resumed, the run starts afresh."""
    cfg = TrainConfig(epochs=2, batch_size=4, crops_per_chip=1, seed=3, threads=2, crop_10m=8)
    run = tmp_path / "run"
    train(CHIPS, run, cfg, progress=False)
    want, want_ckpt = load_checkpoint(run / "best.pt")
    (run / "best.pt").unlink()
    train(CHIPS, run, cfg, resume=True, progress=False)
    got, got_ckpt = load_checkpoint(run / "best.pt")
    assert got_ckpt["epoch"] == want_ckpt["epoch"]
    assert got_ckpt["history"] == want_ckpt["history"]
    for (k, va), vb in zip(want.state_dict().items(), got.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    (run / "best.pt").unlink()
    s = train(CHIPS, run, TrainConfig(**{**cfg.__dict__, "seed": 4}), resume=True,
              progress=False)
    assert s["seed"] == 4 and s["epochs"] == 2 and (run / "best.pt").is_file()
    _, ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["seed"] == 4 and len(ckpt["history"]) == 2


def test_baseline_and_gan_paths_train(tmp_path: Path) -> None:
    cfg = config_from_dict({"model": {"arch": "bilinear", "epochs": 1, "batch_size": 4,
                                      "crop_10m": 8}})
    s = train(CHIPS, tmp_path / "b", cfg, progress=False)
    assert s["arch"] == "bilinear"
    gan = config_from_dict({"epochs": 2, "batch_size": 4, "crop_10m": 8, "loss": {
        "sr_gan": 0.01, "sr_feature": 0.1, "gan_start_epoch": 1, "sr_warmup_epochs": 1,
        "d_nf": 8}})
    train(CHIPS, tmp_path / "g", gan, progress=False)
    ckpt = torch.load(tmp_path / "g" / "last.pt", weights_only=False)
    assert ckpt["disc"] is not None
    with pytest.raises(Exception, match="checkpoint is jointseg/tiny"):
        train(CHIPS, tmp_path / "g", TrainConfig(arch="bilinear", epochs=3), resume=True,
              progress=False)


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown keys \['epoch'\]"):
        config_from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match=r"model.loss: unknown keys \['l1'\]"):
        config_from_dict({"loss": {"l1": 1}})
    with pytest.raises(ConfigError, match="crop_10m"):
        TrainConfig(crop_10m=15)
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  epochs: 4\n  loss:\n    sr_warmup_epochs: 2\n")
    cfg = config_from_dict(load_train_settings(p))
    assert cfg.epochs == 4 and cfg.loss.sr_warmup_epochs == 2
    p.write_text("model:\n  name: m\n  chips: {seed: 3}\n  train:\n    epochs: 7\n")
    assert config_from_dict(load_train_settings(p)).epochs == 7  # workflow config layout
    p.write_text("model: [1, 2]\n")
    with pytest.raises(ConfigError):  # the project's one ConfigError (jointseg.config)
        config_from_dict(load_train_settings(p))
    p.write_text("model: {epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_settings(p)


def test_cli_train(tmp_path: Path) -> None:
    from jointseg.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  epochs: 5\n  crop_10m: 8\n  loss:\n    sr_warmup_epochs: 0\n")
    res = CliRunner().invoke(main, ["train", "--chips", str(CHIPS), "--out", str(tmp_path / "o"),
                                    "--config", str(cfg), "--epochs", "1",
                                    "--train-json", '{"batch_size": 4, "epochs": 3}',
                                    "--arch", "jointseg", "--threads", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    ckpt = torch.load(tmp_path / "o" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 0 and ckpt["history"][0]["phase"] == "joint"
    assert ckpt["config"]["batch_size"] == 4 and ckpt["config"]["epochs"] == 1
    bad = CliRunner().invoke(main, ["train", "--chips", str(tmp_path), "--out",
                                    str(tmp_path / "x")])
    assert bad.exit_code != 0 and "index.csv" in bad.output
    bad = CliRunner().invoke(main, ["train", "--chips", str(CHIPS), "--out", str(tmp_path / "y"),
                                    "--train-json", '{"epoch": 1}'])
    assert bad.exit_code != 0 and "unknown keys ['epoch']" in bad.output


def test_validation_uses_clean_truth_when_every_chip_has_it(tmp_path: Path) -> None:
    """Chips with truth.tif (simulated) validate on it; a chip set without it, on labels;
    a truth.tif of the wrong shape is an error naming the file."""
    from jointseg.model.chips import with_truth_labels

    shutil.copytree(CHIPS, tmp_path / "c")
    val = load_chips(tmp_path / "c", "val")
    assert with_truth_labels(tmp_path / "c", val)[1] is False
    for chip in val:
        with rasterio.open(tmp_path / "c" / chip.chip_id / "label.tif") as src:
            profile = src.profile
        flipped = np.where(chip.label == 255, 255, 1 - np.minimum(chip.label, 1)).astype(np.uint8)
        with rasterio.open(tmp_path / "c" / chip.chip_id / "truth.tif", "w", **profile) as dst:
            dst.write(flipped[None])
    out, clean = with_truth_labels(tmp_path / "c", val)
    assert clean
    for o, v in zip(out, val, strict=True):
        known = v.label != 255
        assert np.array_equal(o.label[known], 1 - v.label[known])
    with rasterio.open(tmp_path / "c" / "chip03" / "truth.tif", "w",
                       **{**profile, "width": 8, "height": 8}) as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(ChipError, match="chip03/truth.tif"):
        with_truth_labels(tmp_path / "c", val)
