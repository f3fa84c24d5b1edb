"""Label refinement against the HR (jointseg.trainingdata.refine) on small SIMULATED chips:
map labels with omissions and offsets, HR that separates impervious spectrally. The
refined labels match the (moved away, never read) truth better; label_map.tif keeps the
map labels; sidecars verify; a rerun is identical; ``none`` changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.grid import GeoBox
from jointseg.identity import training_data_id
from jointseg.io import sha256_file, verify_file, write_cog
from jointseg.trainingdata.refine import LABEL_MAP_NAME, decide, refine_chips
from jointseg.trainingdata.settings import RefineSettings, TrainingDataError

SIZE = 64
SETTINGS = RefineSettings(steps=60, margin=0.1, seed=0)
#: Reflectance x 10000, R G B NIR: impervious (grey) and vegetation.
ISA, VEG = np.array([1800, 1700, 1600, 2200]), np.array([500, 800, 400, 3800])


def _chip(d: Path, i: int, rng: np.random.Generator) -> None:
    """One 64 m chip: truth rectangles, map label = truth offset 1 px (any direction) with half the
    rectangles missing, HR = the truth's spectra plus noise."""
    truth = np.zeros((SIZE, SIZE), np.uint8)
    label = np.zeros_like(truth)
    for k in range(6):
        r, c = rng.integers(1, SIZE - 13, 2)
        h, w = rng.integers(6, 12, 2)
        truth[r:r + h, c:c + w] = 1
        if k % 2 == 0:
            dr, dc = rng.choice([-1, 1], 2)  # offsets in no learnable direction
            label[r + 1 + dr:r + 1 + dr + h, c + 1 + dc:c + 1 + dc + w] = 1
    label[:2] = 255  # a map gap stays a gap
    hr = np.where(truth[None] == 1, ISA[:, None, None], VEG[:, None, None]).astype(float)
    hr = np.clip(hr * rng.normal(1, 0.08, hr.shape), 1, None).astype(np.uint16)
    g = GeoBox.from_bounds("EPSG:32650", (660000 + 64 * i, 3540000, 660064 + 64 * i, 3540064), 1)
    chip = d / f"32650_{660000 + 64 * i}_3540000"
    write_cog(chip / "hr.tif", hr, g, nodata=0)
    write_cog(chip / "label.tif", label, g, nodata=255)
    write_cog(chip / "truth.tif", truth, g, nodata=255)


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    d = tmp_path / "chips"
    for i in range(10):
        _chip(d, i, rng)
    return d


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _iou(d: Path, truth_dir: Path) -> float:
    tp = fp = fn = 0
    for chip in sorted(d.iterdir()):
        lab, t = _read(chip / "label.tif"), _read(truth_dir / chip.name / "truth.tif")
        m = lab != 255
        tp += int(((lab == 1) & (t == 1) & m).sum())
        fp += int(((lab == 1) & (t == 0) & m).sum())
        fn += int(((lab == 0) & (t == 1) & m).sum())
    return tp / (tp + fp + fn)


def _hide_truth(d: Path, away: Path) -> None:
    """Move every truth.tif out of the chips, so refinement cannot read it."""
    for t in d.glob("*/truth.tif"):
        (away / t.parent.name).mkdir(parents=True)
        shutil.move(t, away / t.parent.name / "truth.tif")
        t.with_name("truth.tif.sha256").unlink()


def test_refine_improves_labels_without_truth(chips: Path, tmp_path: Path) -> None:
    away = tmp_path / "truth"
    _hide_truth(chips, away)
    maps = {c.name: _read(c / "label.tif") for c in chips.iterdir()}
    before = _iou(chips, away)
    stats = refine_chips(chips, SETTINGS)
    after = _iou(chips, away)
    assert before < 0.45 and after > before + 0.25, (before, after)
    assert 0 < stats["c"] < 1 and stats["fit_chips"] + stats["holdout_chips"] == 10
    assert stats["added_px"] > 0 and set(stats["chips"]) == set(maps)
    for chip in chips.iterdir():
        assert np.array_equal(_read(chip / LABEL_MAP_NAME), maps[chip.name])
        assert (_read(chip / "label.tif")[:2] == 255).all()  # the map's gap is kept
        for name in ("label.tif", LABEL_MAP_NAME):
            verify_file(chip / name)
        assert not (chip / "truth.tif").exists()
    # a rerun refines the map labels again (label_map.tif), not the refined ones
    digests = {c.name: sha256_file(c / "label.tif") for c in chips.iterdir()}
    assert refine_chips(chips, SETTINGS) == stats
    assert digests == {c.name: sha256_file(c / "label.tif") for c in chips.iterdir()}


def test_disabled_changes_nothing(chips: Path) -> None:
    digests = {c.name: sha256_file(c / "label.tif") for c in chips.iterdir()}
    assert refine_chips(chips, RefineSettings(method="none")) == {"method": "none", "chips": {}}
    assert digests == {c.name: sha256_file(c / "label.tif") for c in chips.iterdir()}
    assert not list(chips.glob(f"*/{LABEL_MAP_NAME}"))


def test_decide_keeps_map_label_where_unsure() -> None:
    label = np.array([[0, 1, 0, 1, 255]], np.uint8)
    p = np.array([[0.9, 0.1, 0.55, 0.45, 0.9]], np.float32)
    valid = np.ones_like(label, bool)
    assert decide(label, p, valid, 0.1).tolist() == [[1, 0, 0, 1, 255]]
    assert decide(label, p, valid, 0.0).tolist() == [[1, 0, 1, 0, 255]]
    assert decide(label, p, ~valid, 0.0).tolist() == label.tolist()


def test_bad_settings_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="--refine"):
        RefineSettings(method="sam")
    with pytest.raises(TrainingDataError, match="margin"):
        RefineSettings(margin=0.5)
    with pytest.raises(TrainingDataError, match="no chip folder"):
        refine_chips(tmp_path, SETTINGS)


def test_refine_settings_are_part_of_the_training_data_id() -> None:
    from jointseg.config import load_config

    demo = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"

    def tid(refine: dict) -> str:
        return training_data_id(load_config(demo, {"training_data.chips.refine": refine}),
                                "training_data")

    assert len({tid({}), tid({"method": "none"}), tid({"steps": 300})}) == 3
    assert tid({}) == tid({"method": "pu-teacher"})


def test_make_chips_refines_and_records(tmp_path: Path) -> None:
    """make_chips refines the cut labels (label_map.tif kept) and qa.json records it."""
    import json

    from jointseg.trainingdata import ChipSettings, make_chips
    from tests.trainingdata_factory import (
        isa_polygons,
        make_scene,
        write_composite,
        write_hr,
        write_labels,
    )

    scene = make_scene(320, seed=11, n_dates=4)
    c10 = write_composite(scene, tmp_path)
    hr = write_hr(tmp_path / "hr.tif", scene)
    labels = write_labels(tmp_path / "labels.gpkg", isa_polygons(scene), "EPSG:4326")
    settings = ChipSettings(chip_size_m=160, split_block_m=160, min_correlation=0.2,
                            refine=RefineSettings(steps=20))
    rep = make_chips([hr], [labels], [c10], tmp_path / "chips", settings)
    qa = json.loads((tmp_path / "chips" / "qa.json").read_text())
    assert qa["summary"]["label_refine"]["c"] == rep.refine["c"] > 0
    assert qa["settings"]["refine"] == {"method": "pu-teacher", "steps": 20, "margin": 0.1,
                                        "seed": 0}
    for chip in qa["chips"]:
        d = tmp_path / "chips" / chip["chip_id"]
        assert chip["isa_fraction"] == chip["label_refine"]["isa_fraction"]
        assert (d / LABEL_MAP_NAME).exists() and verify_file(d / "label.tif") is not None
