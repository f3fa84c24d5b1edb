"""Urban growth of the SIMULATED demo region across years (jointseg.simulate.growth) and the
multi-year layout: one 1 m grid, ISA that grows (demolitions aside), districts."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from jointseg.simulate.growth import BASE_YEAR, landscape_in, plan_growth
from jointseg.simulate.landcover import simulate_landscape
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import ISA_CLASSES, MATERIAL_TO_CLASS
from jointseg.simulate.region import simulate_region

SIDE = 2400  # m: a town core with farmland around it


@pytest.fixture(scope="module")
def grown():
    rng = np.random.default_rng(5)
    layout = LayoutParams.default((SIDE, SIDE), rng)
    ls = simulate_landscape((SIDE, SIDE), rng, layout)
    return ls, plan_growth(ls, np.random.default_rng(6))


def test_growth_is_monotone_apart_from_demolitions(grown):
    ls, growth = grown
    isa = {y: landscape_in(ls, growth, y).isa for y in (2017, 2019, 2021, 2023)}
    assert np.array_equal(isa[BASE_YEAR], ls.isa)
    gain = (isa[2023] == 1) & (isa[2017] == 0)
    loss = (isa[2023] == 0) & (isa[2017] == 1)
    assert gain.sum() > 20_000  # > 2 ha of new ISA
    assert loss.sum() < 0.1 * gain.sum()
    # every lost ISA pixel is a demolished building, now bare soil
    kinds = np.array(growth.kinds)
    assert set(kinds[growth.event[loss]]) <= {"demolition"}
    assert (MATERIAL_TO_CLASS[landscape_in(ls, growth, 2023).material][loss] == 9).all()
    for a, b in ((2017, 2019), (2019, 2021), (2021, 2023)):
        assert isa[b].sum() > isa[a].sum() - loss.sum()
    # new ISA lies mostly on former farmland (grass, crop, bare soil; roads cross trees)
    assert np.isin(ls.landcover[gain], (6, 7, 9)).mean() > 0.85


def test_growth_kinds_and_construction_phase(grown):
    ls, growth = grown
    events = growth.summary()
    assert {"industrial", "housing", "road", "demolition"} <= set(events)
    assert all(2017 < int(y) <= 2023 for k in events.values() for y in k)
    # a plot under construction is bare soil: some event is cleared before it is done
    slow = np.nonzero(growth.start[1:] < growth.done[1:])[0] + 1
    assert slow.size
    e = int(slow[0])
    mid = landscape_in(ls, growth, int(growth.start[e]))
    assert (mid.landcover[growth.event == e] == 9).all()
    assert not np.isin(mid.landcover[growth.event == e], ISA_CLASSES).any()


def test_growth_deterministic(grown):
    ls, growth = grown
    again = plan_growth(ls, np.random.default_rng(6))
    assert np.array_equal(again.event, growth.event)
    assert np.array_equal(again.done, growth.done)


@pytest.fixture(scope="module")
def years_region(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("years")
    bbox = (663000.0, 3543000.0, 663000.0 + SIDE / 2, 3543000.0 + SIDE / 2)
    sim = simulate_region(out, bbox, "EPSG:32650", [2017, 2023], 42, 2, "http://x",
                          progress=False, workers=2)
    return out, sim


def test_years_side_by_side_on_one_grid(years_region):
    out, sim = years_region
    assert sim["years"] == [2017, 2023]
    profiles = []
    for y in (2017, 2023):
        for name in ("isa", "landcover"):
            with rasterio.open(out / str(y) / "truth" / f"{name}_1m.tif") as ds:
                profiles.append((ds.crs, ds.transform, ds.shape))
                assert ds.tags()["JOINTSEG_SIMULATED"] == "true"
    assert len(set(profiles)) == 1
    # HR of the last year only; scenes of each year in its own dates, in one catalogue
    assert (out / "2023/hr/hr_1m.tif").is_file() and not (out / "2017/hr").exists()
    items = json.loads((out / "stac/items.json").read_text())["features"]
    assert {i["properties"]["datetime"][:4] for i in items} == {"2017", "2023"}
    for item in items:
        offset = item["assets"]["red"]["raster:bands"][0]["offset"]
        assert offset == (-0.1 if item["properties"]["datetime"][:4] == "2023" else 0)
    wc = sorted(p.name for p in (out / "worldcover").glob("*.tif"))
    assert [n[19:28] for n in wc] == ["2020_v100", "2021_v200"]


def test_districts_cover_the_region(years_region):
    out, sim = years_region
    gdf = gpd.read_file(out / "districts.gpkg")
    assert gdf["name"].is_unique and all("simulated" in n for n in gdf["name"])
    assert gdf.crs.to_epsg() == 32650
    x0, y0, x1, y1 = sim["bbox"]
    assert abs(gdf.area.sum() - (x1 - x0) * (y1 - y0)) < 1.0
    assert gdf.union_all().covers(gdf.union_all().envelope)
