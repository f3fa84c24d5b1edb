"""Scenes as model input: a composite pair or a directory of per-band GeoTIFFs.

A *scene* gives the model its two inputs on one 10 m grid:

* ``s2_10m``: float32 (5, rows, cols) = B02 B03 B04 B08 COUNT, harmonised DN
  (reflectance x 10000) and COUNT as a number of clear observations;
* ``s2_20m``: float32 (6, rows/2, cols/2) = B05 B06 B07 B8A B11 B12, DN;

and the QA flags of the composite (:data:`jointseg.products.QA_FILLED`,
:data:`~jointseg.products.QA_NO_OBSERVATION`), uint8 on the 10 m grid, 0 for inputs
without a QA band. A pixel is *valid* (predicted, not nodata) where COUNT > 0 or the
QA says it was filled from the best remaining observation (:func:`valid_mask`), and
not snow (:func:`snow_mask_10m`, unless the scene's ``mask_snow`` is False): a snowy
pixel shows the snow, not the surface, and bright snow would read as impervious.

Two layouts are read:

* a **composite** made by the DAG: pass ``<tile>_10m.tif``; the ``<tile>_20m.tif``
  sibling is found by name (see ``docs/architecture.md``). Bands are found by their
  description, so a ``QA`` band is optional (older composites have none);
* a **band directory**: one GeoTIFF per band whose file stem ends with the band id
  (``*_B02.tif``, ``*_B8A.tif``), at native 10 m / 20 m resolution, as Sentinel-2
  products and BigEarthNet ship them. 60 m bands are ignored. Such a directory
  has no COUNT band: COUNT is 1 where every required band is non-zero (valid) at
  that 10 m pixel and 0 elsewhere. A baseline >= 04.00 product's offset (-1000 DN)
  is added to every non-zero DN (:mod:`jointseg.inference.boa` finds it).

Windows are read boundless: rows and columns outside the raster are filled by
reflection about the edge pixels (numpy ``reflect`` mode, edge not repeated), on
each grid separately, so any window of the padded plane is the same whether the
raster is read whole or in pieces.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from jointseg.bands import BANDS_10M, BANDS_20M, MODEL_INPUT_10M, QA
from jointseg.data.cloudmask import SNOW_NDSI_DEFAULTS, ndsi_snow_mask
from jointseg.data.composite import harmonise
from jointseg.grid import GeoBox
from jointseg.inference.boa import OffsetError, band_dir_offset
from jointseg.io import IntegrityError, verify_file
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION

log = logging.getLogger(__name__)

_BAND_RE = re.compile(r"(B0[1-9]|B1[0-2]|B8A)$", re.IGNORECASE)


class SceneError(ValueError):
    """A scene cannot be used as model input (missing band, wrong grid, unreadable file)."""


def valid_mask(count: np.ndarray, qa: np.ndarray) -> np.ndarray:
    """bool: predict here. COUNT > 0 or QA_FILLED, and never where QA_NO_OBSERVATION.

    Args:
        count: the COUNT band (clear observations per 10 m pixel), any numeric dtype.
        qa: uint8 QA flags of the same shape (0 where the input has no QA band).
    """
    return ((count > 0) | ((qa & QA_FILLED) != 0)) & ((qa & QA_NO_OBSERVATION) == 0)


def snow_mask_10m(s2_10m: np.ndarray, s2_20m: np.ndarray) -> np.ndarray:
    """bool (rows, cols): snow by the NDSI test of :func:`jointseg.data.cloudmask.ndsi_snow_mask`
    (defaults), from model input arrays in harmonised DN: (5, rows, cols) B02 B03 B04 B08
    COUNT and (6, ceil(rows/2), ceil(cols/2)) B05 B06 B07 B8A B11 B12 (B11 nearest to 10 m).
    """
    rows, cols = s2_10m.shape[1:]
    swir1 = np.repeat(np.repeat(s2_20m[BANDS_20M.index("B11")], 2, 0), 2, 1)[:rows, :cols]
    return ndsi_snow_mask(s2_10m[BANDS_10M.index("B03")], swir1,
                          s2_10m[BANDS_10M.index("B08")], **SNOW_NDSI_DEFAULTS)


def reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map any integer pixel indices into ``[0, n)`` by mirror reflection (edge not repeated)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m < n, m, period - m)


def read_reflect(
    read: Callable[[Window], np.ndarray],
    shape: tuple[int, int],
    row_off: int,
    col_off: int,
    height: int,
    width: int,
) -> np.ndarray:
    """Read a window that may extend beyond the raster, padding by reflection.

    Args:
        read: reads an in-bounds window, returning (bands, rows, cols).
        shape: (rows, cols) of the raster.
        row_off, col_off, height, width: the wanted window (pixels, may be negative).

    Returns:
        (bands, height, width) array with the dtype ``read`` returns.
    """
    rows = reflect_index(np.arange(row_off, row_off + height), shape[0])
    cols = reflect_index(np.arange(col_off, col_off + width), shape[1])
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    block = read(Window(c0, r0, c1 - c0, r1 - r0))
    return block[:, rows - r0][:, :, cols - c0]


@dataclass
class Scene:
    """One scene on a 10 m grid, read window by window.

    Attributes:
        geobox_10m: the 10 m grid of the model input (rows, cols = raster shape).
        scenes: provenance string (composite ``SCENES`` tag, or the band-file prefix).
        simulated: True when the input carries ``JOINTSEG_SIMULATED=true``.
        source: a one-line description of the input path(s).
        mask_snow: leave snow (:func:`snow_mask_10m`) unpredicted (nodata); default True.
    """

    geobox_10m: GeoBox
    scenes: str
    simulated: bool
    source: str
    _read10: Callable[[Window], np.ndarray] = field(repr=False)
    _read20: Callable[[Window], np.ndarray] = field(repr=False)
    _close: Callable[[], None] = field(repr=False, default=lambda: None)
    _read_qa: Callable[[Window], np.ndarray] | None = field(repr=False, default=None)
    mask_snow: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the 10 m grid."""
        return self.geobox_10m.shape

    def read(
        self, row_off: int, col_off: int, height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read a 10 m window (boundless, reflect-padded) and its 20 m counterpart.

        Offsets and sizes are 10 m pixels and must be even (20 m pixels are 2 x 2).

        Returns:
            ``(s2_10m, s2_20m)``: float32 (5, height, width) and (6, height/2, width/2).
        """
        if row_off % 2 or col_off % 2 or height % 2 or width % 2:
            raise ValueError(
                f"window ({row_off}, {col_off}, {height}, {width}) is not on the 20 m grid"
            )
        rows, cols = self.shape
        x10 = read_reflect(self._read10, (rows, cols), row_off, col_off, height, width)
        x20 = read_reflect(self._read20, ((rows + 1) // 2, (cols + 1) // 2), row_off // 2,
                           col_off // 2, height // 2, width // 2)
        return x10, x20

    def read_qa(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """uint8 (height, width) QA flags of a 10 m window (boundless, reflect-padded);
        zeros when the input has no QA band."""
        if self._read_qa is None:
            return np.zeros((height, width), np.uint8)
        return read_reflect(self._read_qa, self.shape, row_off, col_off, height, width)[0]

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole scene: float32 (5, rows, cols) and (6, ceil(rows/2), ceil(cols/2))."""
        rows, cols = self.shape
        return (
            self._read10(Window(0, 0, cols, rows)),
            self._read20(Window(0, 0, (cols + 1) // 2, (rows + 1) // 2)),
        )

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_scene(path: str | Path) -> Scene:
    """Open a composite (``*_10m.tif`` path) or a band directory as a :class:`Scene`.

    Raises:
        SceneError: with a one-line message naming the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        return _open_band_dir(path)
    if not path.exists():
        raise SceneError(f"{path}: no such file or directory")
    return _open_composite(path)


def from_arrays(
    s2_10m: np.ndarray, s2_20m: np.ndarray, geobox_10m: GeoBox | None = None,
    qa: np.ndarray | None = None,
) -> Scene:
    """A :class:`Scene` over in-memory arrays (5, rows, cols) and (6, rows/2, cols/2),
    with optional uint8 QA flags (rows, cols).

    Raises:
        SceneError: if the shapes do not match the interface.
    """
    if s2_10m.ndim != 3 or s2_10m.shape[0] != 5:
        raise SceneError(f"s2_10m must be (5, rows, cols), got {s2_10m.shape}")
    rows, cols = s2_10m.shape[1:]
    if s2_20m.shape != (6, (rows + 1) // 2, (cols + 1) // 2):
        raise SceneError(
            f"s2_20m must be (6, {(rows + 1) // 2}, {(cols + 1) // 2}), got {s2_20m.shape}"
        )
    if geobox_10m is None:
        from affine import Affine

        geobox_10m = GeoBox("EPSG:32633", Affine(10, 0, 0, 0, -10, 0), cols, rows)
    if qa is not None and qa.shape != (rows, cols):
        raise SceneError(f"qa must be ({rows}, {cols}), got {qa.shape}")
    a10 = s2_10m.astype(np.float32, copy=False)
    a20 = s2_20m.astype(np.float32, copy=False)
    aqa = None if qa is None else qa.astype(np.uint8, copy=False)[None]

    def cut(a: np.ndarray) -> Callable[[Window], np.ndarray]:
        return lambda w: a[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]

    return Scene(geobox_10m, scenes="", simulated=False, source="<arrays>", _read10=cut(a10),
                 _read20=cut(a20), _read_qa=None if aqa is None else cut(aqa))


# --- composite pair ---------------------------------------------------------------


def _open(path: Path) -> rasterio.DatasetReader:
    """Open a raster and read its last pixel, so truncated files fail here, by name; a
    file with a ``.sha256`` sidecar (what the stages write) must still match it."""
    try:
        verify_file(path, remedy="rerun composite for this tile")
    except IntegrityError as exc:
        raise SceneError(str(exc)) from None
    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise SceneError(f"{path}: cannot be read as a raster ({_first_line(exc)})") from exc
    try:
        ds.read(1, window=Window(ds.width - 1, ds.height - 1, 1, 1))
    except RasterioIOError as exc:
        ds.close()
        raise SceneError(f"{path}: corrupt or truncated ({_first_line(exc)})") from exc
    return ds


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _band_order(ds: rasterio.DatasetReader, path: Path, wanted: tuple[str, ...]) -> list[int]:
    """1-based band indexes of ``wanted`` by description, or by position if undescribed."""
    desc = [d.upper() if d else None for d in ds.descriptions]
    if all(d is None for d in desc):
        if ds.count != len(wanted):
            raise SceneError(
                f"{path}: {ds.count} undescribed bands, expected {len(wanted)} ({' '.join(wanted)})"
            )
        return list(range(1, len(wanted) + 1))
    missing = [b for b in wanted if b not in desc]
    if missing:
        raise SceneError(f"{path}: missing band(s) {' '.join(missing)} (has {desc})")
    return [desc.index(b) + 1 for b in wanted]


def _reader(
    ds: rasterio.DatasetReader, indexes: list[int], path: Path, dtype: str = "float32"
) -> Callable[[Window], np.ndarray]:
    def read(window: Window) -> np.ndarray:
        try:
            return ds.read(indexes, window=window, out_dtype=dtype)
        except RasterioIOError as exc:
            raise SceneError(f"{path}: read failed ({_first_line(exc)})") from exc

    return read


def _geobox(ds: rasterio.DatasetReader, path: Path) -> GeoBox:
    if ds.crs is None:
        raise SceneError(f"{path}: has no CRS")
    t = ds.transform
    if t.b != 0 or t.d != 0 or t.e >= 0:
        raise SceneError(f"{path}: grid is not north-up ({t})")
    return GeoBox.of(ds)


def _check_grid(path: Path, gb: GeoBox, ref: GeoBox, res_m: float, ref_path: Path) -> None:
    if gb.crs != ref.crs:
        raise SceneError(f"{path}: CRS {gb.crs} differs from {ref.crs} of {ref_path.name}")
    if abs(gb.res_m - res_m) > 1e-6 or abs(abs(gb.transform.e) - res_m) > 1e-6:
        raise SceneError(
            f"{path}: resolution {gb.res_m:g} x {abs(gb.transform.e):g} m, expected {res_m:g} m"
        )
    if any(abs(a - b) > 1e-3 for a, b in zip(gb.bounds[::3], ref.bounds[::3], strict=True)):
        raise SceneError(
            f"{path}: upper-left corner {gb.bounds[0]}, {gb.bounds[3]} does not match "
            f"{ref.bounds[0]}, {ref.bounds[3]} of {ref_path.name}"
        )
    want = ((ref.height + 1) // 2, (ref.width + 1) // 2) if res_m == 2 * ref.res_m else ref.shape
    if gb.shape != want:
        raise SceneError(f"{path}: shape {gb.shape} does not match the extent of {ref_path.name}")


def _open_composite(path10: Path) -> Scene:
    if not path10.name.endswith("_10m.tif"):
        raise SceneError(f"{path10}: expected a composite '<tile>_10m.tif' or a band directory")
    path20 = path10.with_name(path10.name[: -len("_10m.tif")] + "_20m.tif")
    if not path20.exists():
        raise SceneError(f"{path20}: 20 m composite sibling of {path10.name} not found")
    ds10 = _open(path10)
    try:
        ds20 = _open(path20)
    except SceneError:
        ds10.close()
        raise
    try:
        gb10 = _geobox(ds10, path10)
        if abs(gb10.res_m - 10) > 1e-6:
            raise SceneError(f"{path10}: resolution {gb10.res_m:g} m, expected 10 m")
        _check_grid(path20, _geobox(ds20, path20), gb10, 20.0, path10)
        idx10 = _band_order(ds10, path10, MODEL_INPUT_10M)
        idx20 = _band_order(ds20, path20, BANDS_20M)
        descriptions = [d.upper() if d else None for d in ds10.descriptions]
        idx_qa = descriptions.index(QA) + 1 if QA in descriptions else None
    except SceneError:
        ds10.close()
        ds20.close()
        raise
    tags = ds10.tags()
    log.info("scene %s: composite %s x %s px at 10 m, %s", path10.name, gb10.height,
             gb10.width, "with QA flags" if idx_qa else "no QA band")

    def close() -> None:
        ds10.close()
        ds20.close()

    return Scene(
        gb10,
        scenes=tags.get("SCENES", ""),
        simulated=tags.get("JOINTSEG_SIMULATED", "").lower() == "true",
        source=f"{path10} + {path20.name}",
        _read10=_reader(ds10, idx10, path10),
        _read20=_reader(ds20, idx20, path20),
        _close=close,
        _read_qa=_reader(ds10, [idx_qa], path10, "uint8") if idx_qa else None,
    )


# --- band directory ---------------------------------------------------------------


def find_band_files(directory: Path) -> dict[str, Path]:
    """Band id -> file for ``*_<BAND>.tif`` / ``.tiff`` / ``.jp2`` files in ``directory``.

    Raises:
        SceneError: if two files claim the same band.
    """
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() not in (".tif", ".tiff", ".jp2") or not p.is_file():
            continue
        m = _BAND_RE.search(p.stem)
        if not m:
            continue
        band = m.group(1).upper()
        if band in found:
            raise SceneError(
                f"{directory}: two files for band {band}: {found[band].name}, {p.name}"
            )
        found[band] = p
    return found


def _open_band_files(directory: Path) -> tuple[dict[str, Path], dict, GeoBox]:
    """Open and grid-check the ten band files: (band -> file, band -> dataset, 10 m grid)."""
    files = find_band_files(directory)
    missing = [b for b in (*BANDS_10M, *BANDS_20M) if b not in files]
    if missing:
        raise SceneError(f"{directory}: missing band file(s) {' '.join(missing)} (*_<BAND>.tif)")
    datasets: dict[str, rasterio.DatasetReader] = {}
    try:
        for band in (*BANDS_10M, *BANDS_20M):
            datasets[band] = _open(files[band])
            if datasets[band].count != 1:
                raise SceneError(f"{files[band]}: {datasets[band].count} bands, expected 1")
        ref_path = files["B02"]
        gb10 = _geobox(datasets["B02"], ref_path)
        if abs(gb10.res_m - 10) > 1e-6 or abs(abs(gb10.transform.e) - 10) > 1e-6:
            raise SceneError(f"{ref_path}: resolution {gb10.res_m:g} m, expected 10 m")
        for band in (*BANDS_10M[1:], *BANDS_20M):
            res_m = 10.0 if band in BANDS_10M else 20.0
            _check_grid(files[band], _geobox(datasets[band], files[band]), gb10, res_m, ref_path)
    except SceneError:
        for ds in datasets.values():
            ds.close()
        raise
    return files, datasets, gb10


def _open_band_dir(directory: Path) -> Scene:
    files, datasets, gb10 = _open_band_files(directory)
    try:  # the offset (jointseg.inference.boa), added as composite adds it
        offset, evidence = band_dir_offset(directory, (*BANDS_10M, *BANDS_20M))
    except OffsetError as exc:
        for ds in datasets.values():
            ds.close()
        raise SceneError(str(exc)) from None

    def read_stack(bands: tuple[str, ...], window: Window) -> np.ndarray:
        out = []
        for b in bands:
            try:
                out.append(datasets[b].read(1, window=window, out_dtype="float32"))
            except RasterioIOError as exc:
                raise SceneError(f"{files[b]}: read failed ({_first_line(exc)})") from exc
        x = np.stack(out)
        return harmonise(x, offset).astype(np.float32, copy=False) if offset else x

    def read10(window: Window) -> np.ndarray:
        x10 = read_stack(BANDS_10M, window)
        # COUNT = 1 where all ten bands are non-zero: read the 20 m cover of the window.
        r0, c0 = window.row_off // 2, window.col_off // 2
        r1 = (window.row_off + window.height + 1) // 2
        c1 = (window.col_off + window.width + 1) // 2
        x20 = read_stack(BANDS_20M, Window(c0, r0, c1 - c0, r1 - r0))
        ok20 = np.repeat(np.repeat(np.all(x20 > 0, axis=0), 2, 0), 2, 1)
        ro, co = window.row_off - 2 * r0, window.col_off - 2 * c0
        ok20 = ok20[ro : ro + window.height, co : co + window.width]
        count = (np.all(x10 > 0, axis=0) & ok20).astype(np.float32)
        return np.concatenate([x10, count[None]])

    def close() -> None:
        for ds in datasets.values():
            ds.close()

    prefix = files["B02"].stem[: -len("B02")].rstrip("_-. ")
    log.info("scene %s: band directory %s x %s px at 10 m (COUNT = 1 where valid), "
             "offset %+d DN (%s)", directory.name, gb10.height, gb10.width, offset, evidence)
    return Scene(
        gb10,
        scenes=prefix or directory.name,
        simulated=datasets["B02"].tags().get("JOINTSEG_SIMULATED", "").lower() == "true",
        source=str(directory),
        _read10=read10,
        _read20=lambda w: read_stack(BANDS_20M, w),
        _close=close,
    )
