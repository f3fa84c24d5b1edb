"""Composite tiles and chip cutting: the chips' grid, and writing one chip.

A composite tile is the DAG's ``<tile>_10m.tif`` (uint16 ``B02 B03 B04 B08 COUNT QA``)
with its ``<tile>_20m.tif`` twin beside it (``B05 B06 B07 B8A B11 B12``). Chips tile
the composite from its upper-left corner in squares of ``chip_size_m`` (a multiple of
20 m, so each chip is whole 20 m pixels of the twin); their id is
``<epsg>_<xmin>_<ymin>`` like the tiles'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from pyproj import CRS

from jointseg.bands import BANDS_20M, COMPOSITE_10M, COUNT, MODEL_INPUT_10M, QA, SR_BANDS
from jointseg.grid import GeoBox
from jointseg.io import IntegrityError, verify_file, write_cog
from jointseg.products import NODATA_U8, QA_FILLED, QA_NO_OBSERVATION
from jointseg.trainingdata.settings import TrainingDataError


@dataclass
class Composite:
    """One composite tile in memory.

    Attributes:
        path_10m, path_20m: the two files.
        grid_10m, grid_20m: their grids (same CRS and bounds).
        s2_10m: uint16 (6, rows, cols) ``COMPOSITE_10M``; s2_20m: uint16 (6, rows/2,
            cols/2) ``BANDS_20M``.
        tags: the 10 m file's dataset tags.
    """

    path_10m: Path
    path_20m: Path
    grid_10m: GeoBox
    grid_20m: GeoBox
    s2_10m: np.ndarray
    s2_20m: np.ndarray
    tags: dict[str, str]

    @property
    def valid_10m(self) -> np.ndarray:
        """bool (rows, cols): composited or filled, not "never observed"."""
        count = self.s2_10m[COMPOSITE_10M.index(COUNT)]
        qa = self.s2_10m[COMPOSITE_10M.index(QA)]
        return ((count > 0) | (qa & QA_FILLED > 0)) & (qa & QA_NO_OBSERVATION == 0)

    def band(self, name: str) -> np.ndarray:
        """One 10 m band (uint16 rows, cols) by id."""
        return self.s2_10m[COMPOSITE_10M.index(name)]


def twin_path(path_10m: Path) -> Path:
    """The ``_20m`` file beside a ``_10m`` composite.

    Raises:
        TrainingDataError: if the name does not end in ``_10m.tif`` or the twin is missing.
    """
    name = path_10m.name
    if not name.endswith("_10m.tif"):
        raise TrainingDataError(f"{path_10m}: composite name must end in _10m.tif")
    twin = path_10m.with_name(name[: -len("_10m.tif")] + "_20m.tif")
    if not twin.is_file():
        raise TrainingDataError(f"{path_10m}: its 20 m twin {twin} is missing")
    return twin


def _read(path: Path, names: tuple[str, ...]) -> tuple[np.ndarray, GeoBox, dict[str, str]]:
    try:
        verify_file(path, remedy="rerun composite for this tile")
    except IntegrityError as exc:
        raise TrainingDataError(str(exc)) from None
    try:
        with rasterio.open(path) as ds:
            desc = tuple(ds.descriptions)
            if ds.crs is None or ds.count != len(names) or desc != names:
                raise TrainingDataError(
                    f"{path}: expected a composite with bands {' '.join(names)}, got "
                    f"{ds.count} bands {' '.join(str(d) for d in desc)}")
            return ds.read(), GeoBox.of(ds), ds.tags()
    except (rasterio.errors.RasterioError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingDataError(f"{path}: cannot read composite ({first})") from None


def open_composite(path_10m: Path) -> Composite:
    """Read and check a composite tile and its 20 m twin.

    Raises:
        TrainingDataError: missing twin, unreadable, wrong bands, grids that disagree.
    """
    path_10m = Path(path_10m)
    if not path_10m.is_file():
        raise TrainingDataError(f"{path_10m}: composite not found")
    twin = twin_path(path_10m)
    s10, g10, tags = _read(path_10m, COMPOSITE_10M)
    s20, g20, _ = _read(twin, BANDS_20M)
    if g10.crs != g20.crs or not np.allclose(g10.bounds, g20.bounds) or g20.res_m != 20:
        raise TrainingDataError(f"{twin}: 20 m grid does not match {path_10m.name}'s")
    if not CRS.from_user_input(g10.crs).is_projected or abs(g10.res_m - 10) > 1e-6:
        raise TrainingDataError(f"{path_10m}: composite must be 10 m in a projected CRS")
    return Composite(path_10m, twin, g10, g20, s10, s20, tags)


def chip_grids(comp: Composite, chip_size_m: int) -> list[GeoBox]:
    """The 10 m grids of the whole chips that tile the composite from its upper-left
    corner, row by row."""
    k = chip_size_m // 10
    out = []
    for r in range(comp.grid_10m.height // k):
        for c in range(comp.grid_10m.width // k):
            out.append(comp.grid_10m[r * k:(r + 1) * k, c * k:(c + 1) * k])
    return out


def chip_id(grid: GeoBox) -> str:
    """``<epsg>_<xmin>_<ymin>`` of a chip grid."""
    epsg = CRS.from_user_input(grid.crs).to_epsg()
    x0, y0 = grid.bounds[:2]
    return f"{epsg}_{round(x0)}_{round(y0)}"


def write_chip(chip_dir: Path, comp: Composite, g10: GeoBox, hr: np.ndarray,
               label: np.ndarray, hr_bands: tuple[str, ...], hr_source: str,
               truth: np.ndarray | None = None) -> None:
    """Write ``s2_10m.tif``, ``s2_20m.tif``, ``hr.tif``, ``label.tif`` and, given
    ``truth``, ``truth.tif`` of one chip.

    Args:
        g10: the chip's 10 m grid (a window of the composite's).
        hr: uint16 (4, rows, cols) R G B NIR x 10000 on ``g10.zoom_in(10)``; band NIR
            all 0 for a 3-band HR.
        label: uint8 (rows, cols) 1/0/255 on the same 1 m grid.
        hr_bands: the HR bands present (tag ``JOINTSEG_HR_BANDS``).
        hr_source: the HR file name(s) (tag ``SOURCE``).
        truth: optional uint8 (rows, cols) 1/0/255 reference labels on the 1 m grid.
    """
    w10 = comp.grid_10m.window_of(g10)
    g20 = g10.zoom_out(2)
    w20 = comp.grid_20m.window_of(g20)
    s10 = comp.s2_10m[[COMPOSITE_10M.index(b) for b in MODEL_INPUT_10M]]
    s10 = s10[:, w10.row_off:w10.row_off + w10.height, w10.col_off:w10.col_off + w10.width]
    s20 = comp.s2_20m[:, w20.row_off:w20.row_off + w20.height,
                      w20.col_off:w20.col_off + w20.width]
    keep = {k: v for k, v in comp.tags.items() if k.startswith("JOINTSEG_") or k == "SCENES"}
    src = {"SOURCE_COMPOSITE": comp.path_10m.name}
    n_refl = len(MODEL_INPUT_10M) - 1
    write_cog(chip_dir / "s2_10m.tif", s10, g10, nodata=0, band_names=list(MODEL_INPUT_10M),
              tags={**keep, **src, "JOINTSEG_PRODUCT": "composite"},
              scales=[1e-4] * n_refl + [1.0])
    write_cog(chip_dir / "s2_20m.tif", s20, g20, nodata=0, band_names=list(BANDS_20M),
              tags={**keep, **src, "JOINTSEG_PRODUCT": "composite"},
              scales=[1e-4] * len(BANDS_20M))
    g1 = g10.zoom_in(10)
    hr_tags = {"JOINTSEG_HR_BANDS": ",".join(b for b in SR_BANDS if b in hr_bands),
               "SOURCE": hr_source, "JOINTSEG_PRODUCT": "chip_hr"}
    if "JOINTSEG_SIMULATED" in comp.tags:
        hr_tags["JOINTSEG_SIMULATED"] = comp.tags["JOINTSEG_SIMULATED"]
    write_cog(chip_dir / "hr.tif", hr, g1, nodata=0, band_names=list(SR_BANDS), tags=hr_tags,
              scales=[1e-4] * len(SR_BANDS))
    write_cog(chip_dir / "label.tif", label, g1, nodata=NODATA_U8, band_names=["isa"],
              tags={"JOINTSEG_PRODUCT": "chip_label"})
    if truth is not None:
        write_cog(chip_dir / "truth.tif", truth, g1, nodata=NODATA_U8, band_names=["isa"],
                  tags={"JOINTSEG_PRODUCT": "chip_reference"})
