"""The simulator: determinism, plausible structure, physics of the rendering, formats."""

import json

import numpy as np
import pytest
import rasterio

from jointseg.simulate.chips import simulate_chips
from jointseg.simulate.landcover import CLASSES, ISA_CLASSES, LayoutParams, simulate_landscape
from jointseg.simulate.region import mgrs_square, simulate_region
from jointseg.simulate.sentinel2 import BOA_OFFSET_DN, Acquisition, integrate
from jointseg.simulate.spectra import material_spectra
from jointseg.stac import scene_info_from_item

BBOX = (663000, 3543000, 664200, 3544200)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    meta = simulate_region(out, BBOX, year=2021, seed=7, n_dates=4, progress=False)
    return out, meta


class Info:
    """What the tests need of a closed dataset."""

    def __init__(self, ds):
        self.res, self.transform, self.crs = ds.res, ds.transform, ds.crs
        self.count, self.descriptions, self._tags = ds.count, ds.descriptions, ds.tags()

    def tags(self):
        return self._tags


def read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band), Info(ds)


def test_same_seed_same_bytes_other_seed_differs():
    a = simulate_landscape((400, 400), np.random.default_rng(3))
    b = simulate_landscape((400, 400), np.random.default_rng(3))
    c = simulate_landscape((400, 400), np.random.default_rng(4))
    assert np.array_equal(a.landcover, b.landcover) and np.array_equal(a.material, b.material)
    assert not np.array_equal(a.landcover, c.landcover)


def test_core_region_has_many_classes_and_plausible_isa():
    land = simulate_landscape((1500, 1500), np.random.default_rng(11),
                              LayoutParams.default((1500, 1500), np.random.default_rng(1),
                                                   core_radius_m=700))
    present = {CLASSES[k] for k in np.unique(land.landcover)}
    assert {"road", "building", "paved", "tree", "grass", "crop", "water"} <= present
    assert 0.15 < land.isa.mean() < 0.6


def test_roads_of_several_widths():
    land = simulate_landscape((1500, 1500), np.random.default_rng(5))
    from scipy import ndimage

    road = land.landcover == 1
    # distance to the road edge, at road centre lines = half width
    half = ndimage.distance_transform_edt(road)
    widths = 2 * half[road & (half >= ndimage.maximum_filter(half, 3))]
    assert widths.min() <= 6 and np.percentile(widths, 99) >= 14


def test_truth_grids_aligned_and_tagged(sim):
    out, meta = sim
    isa, ds1 = read(out / "truth" / "isa_1m.tif")
    b02, ds10 = read(out / "s2" / meta["scenes"][0]["id"] / "B02.tif")
    b05, ds20 = read(out / "s2" / meta["scenes"][0]["id"] / "B05.tif")
    assert ds1.res == (1, 1) and ds10.res == (10, 10) and ds20.res == (20, 20)
    for ds in (ds1, ds10, ds20):
        assert (ds.transform.c, ds.transform.f) == (BBOX[0], BBOX[3])
        assert ds.crs.to_epsg() == 32650
        assert ds.tags()["JOINTSEG_SIMULATED"] == "true"
    assert meta["simulated"] is True and set(np.unique(isa)) <= {0, 1}
    hr, dshr = read(out / "hr" / "hr_1m.tif")
    assert dshr.count == 4 and dshr.descriptions == ("R", "G", "B", "NIR")


def test_reflectance_physics(sim):
    out, meta = sim
    lc, _ = read(out / "truth" / "landcover_1m.tif")
    clear = min(meta["scenes"], key=lambda s: s["cloud_fraction"])
    b04, _ = read(out / "s2" / clear["id"] / "B04.tif")
    b08, _ = read(out / "s2" / clear["id"] / "B08.tif")
    blocks = lc.reshape(120, 10, 120, 10)
    water = (blocks == 8).all(axis=(1, 3))
    if water.any():  # mixed with banks by the PSF, but still dark in the NIR
        assert (b08[water] / 1e4).mean() < 0.06
    table = material_spectra(200)
    assert table[10, 6] > 0.3 > table[14, 6]  # tree NIR bright, river NIR dark
    summer = material_spectra(200)
    ndvi = (summer[10, 6] - summer[10, 2]) / (summer[10, 6] + summer[10, 2])
    assert ndvi > 0.5


def test_psf_integration_conserves_mean_and_blurs():
    field = np.zeros((200, 200), np.float32)
    field[:, 100:] = 1.0
    px = integrate(field, 10, (0.0, 0.0))
    assert abs(px.mean() - 0.5) < 1e-3
    assert 0 < px[5, 9] < 1 and 0 < px[5, 10] < 1  # the edge is spread over pixels


def test_boa_offset_from_2022_only():
    import datetime as dt

    a = Acquisition("x", dt.date(2021, 12, 30), "sentinel-2a", 0, 0, (0, 0), False)
    b = Acquisition("x", dt.date(2022, 1, 25), "sentinel-2a", 0, 0, (0, 0), False)
    assert a.boa_offset_dn == 0 and b.boa_offset_dn == BOA_OFFSET_DN
    assert b.processing_baseline >= "04.00" > a.processing_baseline


def test_scl_marks_clouds_with_errors(sim):
    out, meta = sim
    cloudy = max(meta["scenes"], key=lambda s: s["cloud_fraction"])
    truth, _ = read(out / "truth" / "clouds" / f"{cloudy['id']}.tif")
    scl, _ = read(out / "s2" / cloudy["id"] / "SCL.tif")
    flagged = np.isin(scl, (3, 8, 9, 10))
    cloud = truth == 1
    assert cloud.mean() > 0.2
    assert (flagged & cloud).sum() / cloud.sum() > 0.8  # most cloud is flagged
    assert not np.array_equal(flagged, truth > 0)  # but not perfectly


def test_stac_items_follow_earth_search(sim):
    out, meta = sim
    items = sorted((out / "stac" / "items").glob("*.json"))
    assert len(items) == len(meta["scenes"])
    d = json.loads(items[0].read_text())
    assert {"blue", "green", "red", "nir", "rededge1", "nir08", "swir16", "swir22",
            "scl"} <= set(d["assets"])
    p = d["properties"]
    assert {"eo:cloud_cover", "s2:processing_baseline", "earthsearch:boa_offset_applied",
            "proj:code"} <= set(p)
    assert d["assets"]["blue"]["raster:bands"][0]["scale"] == 0.0001
    info = scene_info_from_item(d)
    assert info.boa_offset_dn == 0 and info.simulated
    assert info.bands["B02"].endswith(f"s2/{d['id']}/B02.tif")


def test_2022_scenes_carry_offset_and_say_so(tmp_path):
    meta = simulate_region(tmp_path, (663000, 3543000, 663600, 3543600), year=2022, seed=1,
                           n_dates=2, progress=False)
    late = [s for s in meta["scenes"] if s["date"] >= "2022-01-25"]
    assert late
    d = json.loads((tmp_path / "stac" / "items" / f"{late[0]['id']}.json").read_text())
    assert d["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    assert scene_info_from_item(d).boa_offset_dn == -1000
    b08, _ = read(tmp_path / "s2" / late[0]["id"] / "B08.tif")
    assert b08[b08 > 0].min() > 1000  # stored DN include the +1000


def test_worldcover_map_misses_thin_roads(sim):
    out, meta = sim
    wc_path = out / meta["worldcover"]
    assert wc_path.name == "ESA_WorldCover_10m_2021_v200_N30E117_Map.tif"
    wc, ds = read(wc_path)
    assert ds.crs.to_epsg() == 4326 and abs(ds.res[0] - 1 / 12000) < 1e-12
    assert 50 in np.unique(wc) and set(np.unique(wc)) <= {0, 10, 20, 30, 40, 50, 60, 80, 90}
    # reproject the truth's ISA fraction onto the WorldCover grid: built-up misses
    # low-fraction (thin-road) pixels and includes some mixed ones
    from rasterio.warp import Resampling, reproject

    isa, ds1 = read(out / "truth" / "isa_1m.tif")
    frac = np.zeros(wc.shape, np.float32)
    reproject(isa.astype(np.float32), frac, src_transform=ds1.transform, src_crs=ds1.crs,
              dst_transform=ds.transform, dst_crs=ds.crs, resampling=Resampling.average)
    valid = wc > 0
    thin = valid & (frac > 0.05) & (frac < 0.2)
    assert thin.any() and (wc[thin] == 50).mean() < 0.3
    assert (wc[valid & (frac > 0.8)] == 50).mean() > 0.8


def test_mgrs_square_of_nanjing():
    assert mgrs_square(32650, 666000, 3546000) == "50SPA"


def test_chips_format_and_split_separation(tmp_path):
    from jointseg.chips import load_chips, read_index

    index = simulate_chips(tmp_path, seed=2000, n_regions=3, region_size_m=640,
                           chip_size_m=320, progress=False)
    rows = read_index(tmp_path)
    assert index.name == "index.csv" and len(rows) == 12
    by_region = {}
    for r in rows:
        by_region.setdefault(r["chip_id"].split("_")[0], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_region.values())  # a region is in one split
    chips = load_chips(tmp_path, "train")
    c = chips[0]
    assert c.s2_10m.shape == (5, 32, 32) and c.s2_20m.shape == (6, 16, 16)
    assert c.hr.shape == (4, 320, 320) and c.label.shape == (320, 320)
    lab = np.concatenate([ch.label.ravel() for ch in chips])
    red = np.concatenate([ch.hr[0].ravel() for ch in chips]) / 1e4
    nir = np.concatenate([ch.hr[3].ravel() for ch in chips]) / 1e4
    ndvi = (nir - red) / (nir + red)
    assert np.median(ndvi[lab == 1]) < 0.2 < np.median(ndvi[lab == 0])
    assert set(ISA_CLASSES) == {1, 2, 3, 4}
