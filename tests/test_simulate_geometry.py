"""Scene geometry of the simulator (issue 21): street bearings per district, curved narrow
village roads, irregular small village houses, HR building lean, determinism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from jointseg.simulate.hr import HrView, lean, render_hr
from jointseg.simulate.landcover import Landscape, simulate_landscape
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import MATERIAL_TO_CLASS, M

KIND = {"core": ((800.0, 800.0), 800.0), "rural": ((4800.0, -1600.0), 1280.0)}


def _landscape(kind: str, seed: int, size: int = 1600) -> Landscape:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 21]))
    centre, radius = KIND[kind]
    layout = LayoutParams.default((size, size), rng, centre_xy=centre, core_radius_m=radius)
    return simulate_landscape((size, size), rng, layout)


@pytest.fixture(scope="module")
def core() -> Landscape:
    return _landscape("core", 1)


@pytest.fixture(scope="module")
def rural() -> Landscape:
    return _landscape("rural", 2)


def _bearing_deg(line: shapely.Geometry) -> float:
    """Bearing of a line's chord, modulo 90 degrees (a grid's two axes are one bearing)."""
    xy = shapely.get_coordinates(line)
    dx, dy = xy[-1] - xy[0]
    return float(np.degrees(np.arctan2(dy, dx)) % 90.0)


def test_street_bearings_are_not_one_angle(core):
    streets = [r.geom for r in core.vectors.roads if r.highway == "residential"]
    assert len(streets) > 30
    b = np.array([_bearing_deg(g) for g in streets])
    # circular spread on the 90-degree circle
    z = np.exp(4j * np.radians(b))
    spread = np.degrees(np.sqrt(-2 * np.log(abs(z.mean())))) / 4
    assert spread > 3.0, spread
    assert len(np.unique(np.round(b / 5))) >= 3


def _chord_deviation(line: shapely.Geometry) -> float:
    """Largest distance (m) of a line's vertices from the chord between its ends."""
    xy = shapely.get_coordinates(line)
    chord = shapely.LineString([xy[0], xy[-1]])
    return float(max(chord.distance(shapely.Point(p)) for p in xy))


def test_village_roads_are_curved_and_narrow(rural):
    village = [r for r in rural.vectors.roads if r.highway in ("service", "unclassified")]
    assert len(village) >= 4
    assert all(3.0 <= r.width_m <= 4.5 for r in village)
    parts = [p for r in village for p in shapely.get_parts(r.geom) if p.length > 60]
    curved = [_chord_deviation(p) > 2.0 for p in parts]
    assert np.mean(curved) > 0.6, np.mean(curved)


def test_rural_houses_small_and_off_lattice(rural):
    b = rural.vectors.buildings
    assert len(b) > 30
    area = np.array([g.area for g in b])
    assert np.median(area) < 150 and (area < 100).sum() >= 10
    xy = np.array([g.centroid.coords[0] for g in b])
    d, _ = cKDTree(xy).query(xy, k=2)
    nn = d[:, 1]
    assert nn.std() / nn.mean() > 0.3  # a jittered lattice gives ~0.1
    # orientations vary (lane-facing and south-facing houses)
    rect_deg = [_bearing_deg(shapely.LineString(shapely.get_coordinates(g)[:2])) for g in b]
    assert len(np.unique(np.round(np.array(rect_deg) / 5))) >= 4


def _one_building(height: int) -> Landscape:
    shape = (120, 120)
    material = np.full(shape, M["grass"], dtype=np.uint8)
    material[55:65, 55:65] = M["roof_bright"]
    h = np.zeros(shape, dtype=np.uint8)
    h[55:65, 55:65] = height
    layout = LayoutParams.default(shape, np.random.default_rng(0))
    return Landscape(material, MATERIAL_TO_CLASS[material], h, np.zeros(shape, np.int32),
                     np.zeros(shape, np.float32), layout)


def test_hr_roof_leans_by_height_times_tan_zenith():
    ls = _one_building(40)
    tex = np.ones(ls.material.shape, dtype=np.float32)
    view = HrView(zenith_deg=20.0, azimuth_deg=90.0)  # satellite to the east: lean west
    mat, t = lean(ls.material, tex, ls.height_m, view)
    roof = (mat == M["roof_bright"]) & (t == 1.0)
    rows, cols = np.nonzero(roof)
    expect = 40 * np.tan(np.radians(20.0))
    assert abs((59.5 - cols.mean()) - expect) < 1.0
    assert abs(rows.mean() - 59.5) < 0.5
    # the wall between footprint and roof is visible (darker), the truth is unchanged
    assert ((mat == M["roof_bright"]) & (t == np.float32(0.7))).sum() > 50
    assert ls.isa[55:65, 55:65].all() and ls.isa.sum() == 100
    hr = render_hr(ls, tex, dt.date(2021, 7, 20), view)
    nadir = render_hr(ls, tex, dt.date(2021, 7, 20), HrView(0.0, 0.0))
    assert not np.array_equal(hr, nadir)
    assert np.array_equal(nadir[:, 55:65, 55:65], hr[:, 55:65, 55 - 15:65 - 15]) or \
        np.array_equal(nadir[:, 55:65, 55:65], hr[:, 55:65, 55 - 14:65 - 14])


def test_geometry_deterministic_per_seed():
    a, b, c = (_landscape("rural", s, 800) for s in (5, 5, 6))
    assert np.array_equal(a.material, b.material) and np.array_equal(a.height_m, b.height_m)
    assert not np.array_equal(a.material, c.material)
    tex = np.ones(a.material.shape, dtype=np.float32)
    view = HrView.draw(np.random.default_rng(1))
    d = dt.date(2021, 7, 20)
    assert np.array_equal(render_hr(a, tex, d, view), render_hr(b, tex, d, view))
