"""Per-class rates (jointseg.assess.perclass): counts on the map's grid, class tables,
the report table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from jointseg.assess.perclass import (
    ClassTable,
    ClassTableError,
    default_classes,
    load_class_table,
    markdown_table,
    per_class_rates,
)
from jointseg.grid import GeoBox
from jointseg.io import write_cog

GRID = GeoBox("EPSG:32650", Affine(1, 0, 660000, 0, -1, 3550000), 40, 20)


def landcover() -> np.ndarray:
    """Left half water (8), right half: top road (1), bottom grass (6); a nodata strip."""
    lc = np.full((20, 40), 8, np.uint8)
    lc[:10, 20:] = 1
    lc[10:, 20:] = 6
    lc[:, 38:] = 0
    return lc


def write(path: Path, a: np.ndarray, grid: GeoBox = GRID, nodata: int | None = 255) -> Path:
    write_cog(path, a, grid, nodata=nodata)
    return path


def test_rates_per_class_for_map_and_baseline(tmp_path: Path) -> None:
    lc = write(tmp_path / "lc.tif", landcover(), nodata=None)
    m = np.zeros((20, 40), np.uint8)
    m[:5, :20] = 1            # a quarter of the water mapped ISA (commission 0.25)
    m[:10, 20:30] = 1         # half the road's pixels (omission 0.5 of the valid ones)
    m[0, :] = 255             # map nodata: not counted
    base = np.zeros((10, 20), np.uint8)  # baseline on a 2 m grid: only the road found
    base[:5, 10:] = 1
    base_grid = GeoBox("EPSG:32650", Affine(2, 0, 660000, 0, -2, 3550000), 20, 10)
    rates = per_class_rates(write(tmp_path / "m.tif", m), lc, default_classes(),
                            baseline_path=write(tmp_path / "b.tif", base, base_grid))
    rows = {r["name"]: r for r in rates["rows"]}
    assert rates["products"] == ["map", "baseline"]
    water, road, grass = rows["water"], rows["road"], rows["grass"]
    assert water["map"]["pixels"] == 19 * 20 and water["map"]["mapped_isa"] == 4 * 20
    assert water["map"]["commission"] == pytest.approx(80 / 380)
    assert road["isa"] and road["map"]["pixels"] == 9 * 18
    assert road["map"]["omission"] == pytest.approx(1 - 90 / 162)
    assert grass["map"]["commission"] == 0.0
    assert water["baseline"]["commission"] == 0.0 and road["baseline"]["omission"] == 0.0
    assert rows["tree"]["map"]["isa_share"] is None  # a class with no pixel
    assert "nodata" not in rows  # code 0 is not a class
    md = "\n".join(markdown_table(rates, simulated=True))
    assert "| water | no | 0.211 | 0.000 | 380 |" in md and "simulated" in md
    assert "| tree |" not in md  # no pixel: in report.json only


def test_class_table_files(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"classes": {"1": "built", "2": "water"}, "isa": [1],
                             "nodata": [0]}))
    assert load_class_table(p) == ClassTable({1: "built", 2: "water"}, (1,), (0,))
    y = tmp_path / "t.yaml"
    y.write_text("classes: {10: tree, 50: built}\nisa: [50]\n")
    assert load_class_table(y).isa == (50,)
    y.write_text("classes: {10: tree}\nisa: [50]\n")
    with pytest.raises(ClassTableError, match=r"ISA codes \[50\]"):
        load_class_table(y)
    y.write_text("isa: [1]\n")
    with pytest.raises(ClassTableError, match="t.yaml: not a class table"):
        load_class_table(y)
