"""HR sources: checks (one-line errors naming the file) and warping in any CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from jointseg.trainingdata.hr import open_hr, read_hr
from jointseg.trainingdata.settings import TrainingDataError
from tests.trainingdata_factory import make_scene, write_hr


@pytest.fixture(scope="module")
def scene():
    return make_scene(320, seed=5, n_dates=2)


def _plain(path: Path, count: int = 4, dtype: str = "uint8", crs: str | None = "EPSG:32650",
           res: float = 1.0) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=count,
                       dtype=dtype, crs=crs,
                       transform=Affine(res, 0, 660000, 0, -res, 3540320)) as ds:
        ds.write(np.ones((count, 40, 50), dtype))
    return path


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(TrainingDataError, match=r"broken\.tif: cannot read HR image"):
        open_hr(bad, 4)
    with pytest.raises(TrainingDataError, match=r"nocrs\.tif: HR image has no CRS"):
        open_hr(_plain(tmp_path / "nocrs.tif", crs=None), 4)
    with pytest.raises(TrainingDataError, match=r"three\.tif: HR image has 3 bands"):
        open_hr(_plain(tmp_path / "three.tif", count=3), 4)
    with pytest.raises(TrainingDataError, match=r"float\.tif: HR image is float32"):
        open_hr(_plain(tmp_path / "float.tif", dtype="float32"), 4)
    with pytest.raises(TrainingDataError, match=r"coarse\.tif: HR resolution 10\.00 m"):
        open_hr(_plain(tmp_path / "coarse.tif", res=10.0), 4)
    assert open_hr(_plain(tmp_path / "ok.tif"), 4).res_m == pytest.approx(1.0)


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32651"])
def test_warp_from_other_crs_recovers_the_image(scene, tmp_path: Path, crs: str) -> None:
    """HR in lon/lat and in the next UTM zone east, warped back onto the 1 m grid."""
    path = write_hr(tmp_path / "hr.tif", scene, crs=crs, res_m=0.75, gain=20.0, offset=100.0,
                    dtype="uint16")
    src = open_hr(path, 4)
    assert src.res_m == pytest.approx(0.75, rel=0.1)
    dn = read_hr(src, scene.grid_1m)
    inner = np.s_[:, 20:-20, 20:-20]
    assert np.isfinite(dn[inner]).all()
    refl = dn * 20.0 + 100.0
    r = np.corrcoef(refl[inner][0].ravel(), scene.hr[inner][0].ravel().astype(float))[0, 1]
    assert r > 0.9
    assert abs(refl[inner].mean() / scene.hr[inner].mean() - 1) < 0.02


def test_shift_is_corrected(scene, tmp_path: Path) -> None:
    """A feature displaced by (+6 m east, -4 m north) comes back when read with that shift."""
    path = write_hr(tmp_path / "hr.tif", scene, crs="EPSG:32650", res_m=1.0, shift_m=(6, -4),
                    gain=1.0, offset=0.0, dtype="uint16")
    src = open_hr(path, 4)
    inner = np.s_[30:-30, 30:-30]
    back = read_hr(src, scene.grid_1m, (6.0, -4.0))[0][inner]
    as_is = read_hr(src, scene.grid_1m)[0][inner]
    truth = scene.hr[0][inner].astype(np.float32)
    assert np.abs(back - truth).mean() < 0.05 * truth.mean()
    assert np.abs(as_is - truth).mean() > 3 * np.abs(back - truth).mean()
