"""make_chips end to end on simulated inputs (all SIMULATED): the chip-format contract,
other CRSs, 3-band HR, partial / missing HR, a rejected shift, bad input, idempotence."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from jointseg.cli import main
from jointseg.trainingdata import ChipSettings, TrainingDataError, make_chips
from jointseg.trainingdata.settings import RefineSettings
from tests.trainingdata_factory import (
    isa_polygons,
    make_scene,
    write_composite,
    write_hr,
    write_labels,
)

# label refinement on, with a short teacher (tests/test_trainingdata_refine.py tests it)
SETTINGS = ChipSettings(chip_size_m=320, split_block_m=320, refine=RefineSettings(steps=20))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("inputs")
    scene = make_scene(640, seed=11, n_dates=8)
    return {"dir": d, "scene": scene, "c10": write_composite(scene, d),
            "hr": write_hr(d / "hr.tif", scene, shift_m=(5.0, -3.0)),
            "labels": write_labels(d / "labels.gpkg", isa_polygons(scene), "EPSG:4326")}


def _files(chip: Path) -> dict[str, tuple]:
    out = {}
    for name in ("s2_10m", "s2_20m", "hr", "label"):
        with rasterio.open(chip / f"{name}.tif") as ds:
            out[name] = (ds.count, ds.dtypes[0], ds.res[0], tuple(ds.bounds), ds.crs.to_epsg())
    return out


def test_contract_and_rerun(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "chips"
    rep = make_chips([inputs["hr"]], [inputs["labels"]], [inputs["c10"]], out, SETTINGS)
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert list(rows[0])[:6] == ["chip_id", "split", "crs", "xmin", "ymin", "size_m"]
    assert len(rows) == 4 == len(rep.chips) and {r["split"] for r in rows} <= {
        "train", "val", "test"}
    for r in rows:
        f = _files(out / r["chip_id"])
        assert {v[3] for v in f.values()} == {(int(r["xmin"]), int(r["ymin"]),
                                               int(r["xmin"]) + 320, int(r["ymin"]) + 320)}
        assert [v[:3] for v in f.values()] == [(5, "uint16", 10), (6, "uint16", 20),
                                               (4, "uint16", 1), (1, "uint8", 1)]
        assert {v[4] for v in f.values()} == {32650}
        assert (out / r["chip_id"] / "label_map.tif").exists()  # the map label as cut
    qa = json.loads((out / "qa.json").read_text())
    for chip in qa["chips"]:
        assert np.hypot(chip["hr_shift_m"][0] - 5.0, chip["hr_shift_m"][1] + 3.0) < 3.0
        assert set(chip["radiometry"]) == {"R", "G", "B", "NIR"}
        assert 0.2 < chip["isa_fraction"] < 0.8 and chip["label_coverage"] > 0.9
    # 0.66 since the simulator has per-object ISA variability, L2A error and HR lean
    assert qa["hr_files"][0]["fit"]["G"]["r"] > 0.6
    assert (out / "qa.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: p.read_bytes() for p in (out / "index.csv", out / "qa.json")}
    make_chips([inputs["hr"]], [inputs["labels"]], [inputs["c10"]], out, SETTINGS)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips"]  # no staging left


def test_three_band_hr_in_another_utm_zone(inputs: dict, tmp_path: Path) -> None:
    hr = write_hr(tmp_path / "hr3.tif", inputs["scene"], crs="EPSG:32651", res_m=0.5,
                  bands=(2, 1, 0), shift_m=(-4.0, 2.0))  # file order B, G, R
    rep = make_chips([hr], [inputs["labels"]], [inputs["c10"]], tmp_path / "c",
                     ChipSettings(hr_bands=("B", "G", "R"), chip_size_m=320, split_block_m=320))
    assert len(rep.chips) == 4
    with rasterio.open(tmp_path / "c" / rep.chips[0]["chip_id"] / "hr.tif") as ds:
        assert ds.tags()["JOINTSEG_HR_BANDS"] == "R,G,B"
        hr_arr = ds.read()
    assert hr_arr[3].max() == 0 and (hr_arr[:3] > 0).all()
    assert np.hypot(rep.chips[0]["hr_shift_m"][0] + 4, rep.chips[0]["hr_shift_m"][1] - 2) < 3


def test_partial_missing_and_shifted_hr(inputs: dict, tmp_path: Path) -> None:
    """HR 1 covers the west half; HR 2 the east half, 36 m off (rejected); HR 3 lies
    outside the composite (skipped)."""
    scene = inputs["scene"]
    west = write_hr(tmp_path / "west.tif", scene, window=(slice(None), slice(0, 330)))
    east = write_hr(tmp_path / "east.tif", scene, window=(slice(None), slice(310, None)),
                    shift_m=(30.0, 20.0))
    far = write_hr(tmp_path / "far.tif", scene, shift_m=(5000.0, 0.0))
    rep = make_chips([west, east, far], [inputs["labels"]], [inputs["c10"]], tmp_path / "c",
                     SETTINGS)
    status = {Path(f["path"]).name: f["status"] for f in rep.hr_files}
    assert status["west.tif"] == "ok"
    assert status["east.tif"] == "rejected: every block rejected"
    block = rep.hr_files[1]["blocks"][0]
    assert re.fullmatch(r"rejected: shift 3\d\.\d m > max 30 m", block["status"])
    assert status["far.tif"] == "skipped: does not overlap any composite"
    assert sorted(c["xmin"] for c in rep.chips) == [660000, 660000]
    assert len(rep.rejected) == 2
    assert all(r["reason"].startswith("hr: rejected: shift 3") for r in rep.rejected)


def test_bad_inputs_name_the_file_and_write_nothing(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    c10, hr, labels = inputs["c10"], inputs["hr"], inputs["labels"]
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage")
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(hr) as src, rasterio.open(nocrs, "w", driver="GTiff", width=src.width,
                                                 height=src.height, count=4,
                                                 dtype="uint8") as dst:
        dst.write(src.read())
    far = write_labels(tmp_path / "far.gpkg",
                       isa_polygons(inputs["scene"]).translate(50_000, 0))
    csv_labels = tmp_path / "labels.csv"
    csv_labels.write_text("x,y\n")
    lone = tmp_path / "lone"
    lone.mkdir()
    lone10 = write_composite(inputs["scene"], lone, twin=False)
    cases = [
        ([broken], [labels], [c10], r"broken\.tif: cannot read HR image"),
        ([nocrs], [labels], [c10], r"nocrs\.tif: HR image has no CRS"),
        ([hr], [csv_labels], [c10], r"labels\.csv: unknown label format"),
        ([hr], [far], [c10], r"far\.gpkg: labels do not overlap any HR image"),
        ([hr], [labels], [lone10], r"_10m\.tif: its 20 m twin .*_20m\.tif is missing"),
    ]
    for h, lab, comp, message in cases:
        with pytest.raises(TrainingDataError, match=message):
            make_chips(h, lab, comp, out, SETTINGS)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    result = CliRunner().invoke(main, ["chips", "--hr", str(nocrs), "--labels", str(labels),
                                       "--composite", str(c10), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {nocrs}: HR image has no CRS (georeference it first)"]


def test_cli(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "chips"
    result = CliRunner().invoke(main, [
        "chips", "--hr", str(inputs["hr"]), "--labels", str(inputs["labels"]),
        "--composite", str(inputs["c10"]), "--out", str(out), "--chip-size-m", "320",
        "--split-block-m", "640", "--ignore-edge-m", "1", "--highway-widths",
        '{"residential": 9}', "--refine-steps", "20", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "4 chips" in result.output
    qa = json.loads((out / "qa.json").read_text())
    assert qa["settings"]["highway_widths"]["residential"] == 9.0
    assert qa["settings"]["ignore_edge_m"] == 1.0
    assert qa["settings"]["refine"]["steps"] == 20 and qa["summary"]["label_refine"]["c"] > 0
    with rasterio.open(out / qa["chips"][0]["chip_id"] / "label.tif") as ds:
        assert (ds.read(1) == 255).mean() > 0.02  # the 1 m band each side of every edge


def test_reference_labels_become_truth(inputs: dict, tmp_path: Path) -> None:
    """--reference: each chip gets truth.tif (the checked labels, 255 where they do not
    reach), qa.json their coverage, and training validates on them, not on the labels."""
    from jointseg.io import write_cog
    from jointseg.model.chips import load_chips, with_truth_labels

    scene, g1 = inputs["scene"], inputs["scene"].grid_1m
    ref = tmp_path / "reference.tif"
    west = g1[:, : g1.width // 2]  # the western half: the east chips get no reference
    write_cog(ref, scene.isa[:, : g1.width // 2], west, nodata=255)
    out = tmp_path / "chips"
    rep = make_chips([inputs["hr"]], [inputs["labels"]], [inputs["c10"]], out, SETTINGS,
                     reference=[ref])
    assert rep.reference_sources[0]["kind"] == "raster"
    qa = json.loads((out / "qa.json").read_text())
    assert sorted(c["reference_coverage"] for c in qa["chips"]) == [0.0, 0.0, 1.0, 1.0]
    for chip in qa["chips"]:
        with rasterio.open(out / chip["chip_id"] / "truth.tif") as ds:
            truth, bounds = ds.read(1), ds.bounds
        if chip["reference_coverage"] == 1.0:
            r0, c0 = (g1.height - round(bounds.top - g1.bounds[1]),
                      round(bounds.left - g1.bounds[0]))
            assert (truth == scene.isa[r0:r0 + 320, c0:c0 + 320]).all()
        else:
            assert (truth == 255).all()
    chips = load_chips(out)
    validated, used = with_truth_labels(out, chips)
    assert used and not all((a.label == b.label).all() for a, b in zip(chips, validated,
                                                                           strict=True))
    result = CliRunner().invoke(main, [
        "chips", "--hr", str(inputs["hr"]), "--labels", str(inputs["labels"]),
        "--reference", str(tmp_path / "missing.tif"), "--composite", str(inputs["c10"]),
        "--out", str(tmp_path / "cli"), "--chip-size-m", "320", "--refine", "none",
        "--no-progress"])
    assert result.exit_code != 0 and "missing.tif" in result.output
    assert not (tmp_path / "cli").exists()
