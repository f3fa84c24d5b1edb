"""Paired training chips: reader for the chip directory format (docs/architecture.md).

A chip directory holds ``index.csv`` (``chip_id,split,crs,xmin,ymin,size_m``) and,
per chip, ``s2_10m.tif`` (uint16 B02 B03 B04 B08 COUNT, 10 m), ``s2_20m.tif``
(uint16 B05 B06 B07 B8A B11 B12, 20 m), ``hr.tif`` (uint16 R G B NIR reflectance
x 10000, 1 m) and ``label.tif`` (uint8 1 impervious / 0 not / 255 ignore, 1 m).
Any CRS; the four files must share exact bounds. No torch here: arrays are numpy.

Missing HR targets: an ``hr.tif`` value of 0 means "no target" for that band and
pixel. An HR source without NIR (3-band imagery) is written with the GDAL tag
``JOINTSEG_HR_BANDS=R,G,B`` and band 4 all 0; the reader zeroes every band the tag
does not list, and :func:`hr_target_mask` gives the per-band, per-pixel mask the SR
loss uses, so such a chip still trains RGB super-resolution. ``index.csv`` may hold
more columns than :data:`INDEX_COLUMNS`, and chip folders more files (``truth.tif``,
``landcover.tif``). Training reads ``truth.tif`` (uint8 clean 0/1, 255 nodata; simulated
chips carry it, and chips cut with ``jointseg chips --reference``) only to validate on,
through :func:`with_truth_labels`; chips without it validate on their labels.

Training-data provenance: a chip directory may hold ``provenance.json``,
``{"training_data_id": "<str>", "simulated": true|false}``, written by whatever made the
chips (:func:`write_chips_provenance`). Training records it in the checkpoint, the
training summary and the ONNX metadata as ``training_data`` (:func:`training_data_record`),
so a model says which data it learnt from and whether they were simulated.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from jointseg.bands import BANDS_10M, BANDS_20M, COUNT, MODEL_INPUT_10M, SR_BANDS
from jointseg.io import IntegrityError, sha256_file, verify_file, write_json
from jointseg.products import NODATA_U8
from jointseg.provenance import is_simulated

CHIP_FILES = {  # name -> (bands, resolution in CRS units, dtype)
    "s2_10m.tif": (len(MODEL_INPUT_10M), 10.0, "uint16"),
    "s2_20m.tif": (len(BANDS_20M), 20.0, "uint16"),
    "hr.tif": (len(SR_BANDS), 1.0, "uint16"),
    "label.tif": (1, 1.0, "uint8"),
}
INDEX_COLUMNS = ("chip_id", "split", "crs", "xmin", "ymin", "size_m")
#: GDAL metadata tag of hr.tif listing the bands that carry targets (default: all four).
HR_BANDS_TAG = "JOINTSEG_HR_BANDS"
#: Names of the hr.tif bands, in order, as the tag spells them.
HR_BAND_NAMES = ("R", "G", "B", "NIR")
#: The chip directory's training-data provenance file (:func:`read_chips_provenance`).
PROVENANCE_FILE = "provenance.json"


class ChipError(ValueError):
    """A chip directory or one of its files does not follow the chip format."""


@dataclass
class Chip:
    """One paired chip in memory.

    Attributes:
        chip_id: folder name.
        split: train | val | test.
        s2_10m: uint16 (5, h, w); s2_20m: uint16 (6, h/2, w/2);
        hr: uint16 (4, 10h, 10w) R G B NIR x 10000, 0 = no target; label: uint8 (10h, 10w).
        crs: CRS string of the files; bounds: (left, bottom, right, top).
        hr_bands: the hr bands that carry targets (``JOINTSEG_HR_BANDS``).
    """

    chip_id: str
    split: str
    s2_10m: np.ndarray
    s2_20m: np.ndarray
    hr: np.ndarray
    label: np.ndarray
    crs: str
    bounds: tuple[float, float, float, float]
    hr_bands: tuple[str, ...] = HR_BAND_NAMES

    @property
    def hr_mask(self) -> np.ndarray:
        """bool (4, 10h, 10w): True where ``hr`` holds a target (see :func:`hr_target_mask`)."""
        return hr_target_mask(self.hr)


def hr_target_mask(hr: np.ndarray) -> np.ndarray:
    """bool mask of HR targets, same shape as ``hr`` (bands first): value 0 = no target."""
    return np.asarray(hr) != 0


def _hr_bands(tags: dict[str, str], path: Path) -> tuple[str, ...]:
    """The ``JOINTSEG_HR_BANDS`` tag of hr.tif parsed (all four bands when absent)."""
    raw = tags.get(HR_BANDS_TAG)
    if raw is None:
        return HR_BAND_NAMES
    bands = tuple(b.strip().upper() for b in raw.split(",") if b.strip())
    bad = [b for b in bands if b not in HR_BAND_NAMES]
    if bad or not bands:
        raise ChipError(f"{path}: {HR_BANDS_TAG}={raw!r} names unknown bands {bad}; "
                        f"expected a subset of {','.join(HR_BAND_NAMES)}")
    return bands


def read_index(root: str | Path) -> list[dict[str, str]]:
    """Rows of ``<root>/index.csv`` as dicts.

    Raises:
        ChipError: if the index is missing or lacks a column.
    """
    path = Path(root) / "index.csv"
    if not path.is_file():
        raise ChipError(f"{path}: chip index not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ChipError(f"{path}: missing columns {missing}")
        return list(reader)


@contextlib.contextmanager
def _open_chip_file(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open a chip file after checking it against its ``.sha256`` sidecar (a chip changed
    after it was written is refused in one line); ChipError when it does not open."""
    try:
        verify_file(path, remedy="rebuild the chips (jointseg chips)")
        ds = rasterio.open(path)
    except (IntegrityError, rasterio.errors.RasterioIOError) as exc:
        raise ChipError(str(exc).strip().splitlines()[0]) from None
    with ds:
        yield ds


def _read(ds: rasterio.io.DatasetReader, path: Path) -> np.ndarray:
    """All bands of ``ds``; a file that does not decode is a one-line ChipError."""
    try:
        return ds.read()
    except rasterio.errors.RasterioError as exc:
        raise ChipError(f"{path}: corrupt or truncated ({str(exc).strip().splitlines()[0]}); "
                        "rebuild the chips (jointseg chips)") from None


def load_chip(root: str | Path, chip_id: str, split: str = "train") -> Chip:
    """Read and check one chip's four files.

    Raises:
        ChipError: naming the chip and file, if a file is missing, has the wrong
            band count, dtype or resolution, or its bounds/CRS differ from s2_10m.tif.
    """
    folder = Path(root) / chip_id
    arrays: dict[str, np.ndarray] = {}
    ref_bounds = ref_crs = None
    for name, (bands, res, dtype) in CHIP_FILES.items():
        path = folder / name
        if not path.is_file():
            raise ChipError(f"chip {chip_id}: {name} not found in {folder}")
        with _open_chip_file(path) as ds:
            if ds.count != bands or ds.dtypes[0] != dtype:
                raise ChipError(f"chip {chip_id}: {name} has {ds.count} x {ds.dtypes[0]} bands, "
                                f"expected {bands} x {dtype}")
            if abs(ds.res[0] - res) > 1e-6 * res or abs(ds.res[1] - res) > 1e-6 * res:
                raise ChipError(f"chip {chip_id}: {name} resolution {ds.res}, expected {res}")
            bounds = tuple(float(v) for v in ds.bounds)
            crs = ds.crs.to_string() if ds.crs else None
            if ref_bounds is None:
                ref_bounds, ref_crs = bounds, crs
            elif crs != ref_crs:
                raise ChipError(f"chip {chip_id}: {name} CRS {crs} != s2_10m.tif CRS {ref_crs}")
            elif max(abs(a - b) for a, b in zip(bounds, ref_bounds, strict=True)) > 1e-3:
                raise ChipError(f"chip {chip_id}: {name} bounds {bounds} != "
                                f"s2_10m.tif bounds {ref_bounds}")
            arrays[name] = _read(ds, path)
            if name == "hr.tif":
                hr_bands = _hr_bands(ds.tags(), path)
    h, w = arrays["s2_10m.tif"].shape[1:]
    if h % 2 or w % 2:
        raise ChipError(f"chip {chip_id}: size {h} x {w} px at 10 m is not a multiple of 20 m")
    hr = arrays["hr.tif"]
    for i, band in enumerate(HR_BAND_NAMES):
        if band not in hr_bands:
            hr[i] = 0  # not a target, whatever the file holds
    return Chip(chip_id, split, arrays["s2_10m.tif"], arrays["s2_20m.tif"], hr,
                arrays["label.tif"][0], ref_crs or "", ref_bounds, hr_bands)


def load_chips(root: str | Path, split: str | None = None) -> list[Chip]:
    """All chips of ``split`` (or every chip when None) listed in the index.

    Raises:
        ChipError: if the index or a chip is malformed, or no chip has that split.
    """
    rows = read_index(root)
    chips = [load_chip(root, r["chip_id"], r["split"]) for r in rows
             if split is None or r["split"] == split]
    if not chips:
        raise ChipError(f"{Path(root) / 'index.csv'}: no chips with split {split!r}")
    return chips


def with_truth_labels(root: str | Path, chips: list[Chip]) -> tuple[list[Chip], bool]:
    """``chips`` with ``label`` replaced by each chip's clean ``truth.tif`` when every chip
    has one (simulated chips; ``jointseg chips --reference``) and some of it is labelled,
    else unchanged; returns (chips, True if truth was used).

    Raises:
        ChipError: if a ``truth.tif`` is not one uint8 band of the label's shape.
    """
    paths = [Path(root) / c.chip_id / "truth.tif" for c in chips]
    if not chips or not all(p.is_file() for p in paths):
        return chips, False
    out = []
    for chip, path in zip(chips, paths, strict=True):
        with _open_chip_file(path) as ds:
            truth = _read(ds, path)[0]
        if truth.shape != chip.label.shape or truth.dtype != np.uint8:
            raise ChipError(f"{path}: {truth.dtype} {truth.shape}, expected uint8 "
                            f"{chip.label.shape} like label.tif")
        out.append(dataclasses.replace(chip, label=truth))
    if all((c.label == NODATA_U8).all() for c in out):
        return chips, False
    return out, True


def band_stats(chips: list[Chip]) -> dict[str, list[float] | float]:
    """Per-band mean/std (DN) of valid (non-zero) pixels, and the 99th percentile COUNT."""
    def stats(stack: list[np.ndarray]) -> tuple[list[float], list[float]]:
        means, stds = [], []
        for b in range(stack[0].shape[0]):
            v = np.concatenate([a[b].ravel() for a in stack]).astype(np.float64)
            v = v[v > 0]
            means.append(float(v.mean()) if v.size else 1000.0)
            stds.append(float(max(v.std(), 1.0)) if v.size else 1000.0)
        return means, stds

    m10, s10 = stats([c.s2_10m[:len(BANDS_10M)] for c in chips])
    m20, s20 = stats([c.s2_20m for c in chips])
    i_count = MODEL_INPUT_10M.index(COUNT)
    counts = np.concatenate([c.s2_10m[i_count].ravel() for c in chips])
    return {"mean_10m": m10, "std_10m": s10, "mean_20m": m20, "std_20m": s20,
            "count_ref": float(max(np.percentile(counts, 99), 1.0))}


def random_crop(chip: Chip, size_10m: int, rng: np.random.Generator, flip: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random aligned crop (size_10m x size_10m at 10 m, even) with random flips/rot90.

    Offsets are multiples of 2 px at 10 m, so the 20 m and 1 m grids stay aligned.
    Returns (s2_10m, s2_20m, hr, label) arrays (copies).
    """
    if size_10m % 2:
        raise ValueError(f"crop size {size_10m} px at 10 m must be even")
    h, w = chip.s2_10m.shape[1:]
    size = min(size_10m, h - h % 2, w - w % 2)
    i = 2 * int(rng.integers(0, (h - size) // 2 + 1))
    j = 2 * int(rng.integers(0, (w - size) // 2 + 1))
    a = chip.s2_10m[:, i:i + size, j:j + size]
    b = chip.s2_20m[:, i // 2:(i + size) // 2, j // 2:(j + size) // 2]
    c = chip.hr[:, 10 * i:10 * (i + size), 10 * j:10 * (j + size)]
    d = chip.label[10 * i:10 * (i + size), 10 * j:10 * (j + size)]
    out = [a, b, c, d]
    if flip:
        if rng.random() < 0.5:
            out = [x[..., ::-1] for x in out]
        if rng.random() < 0.5:
            out = [x[..., ::-1, :] for x in out]
        k = int(rng.integers(0, 4))
        out = [np.rot90(x, k, axes=(-2, -1)) for x in out]
    return tuple(np.ascontiguousarray(x) for x in out)  # type: ignore[return-value]


def write_chips_provenance(chips_dir: Path, training_data_id: str, simulated: bool) -> Path:
    """Write ``chips_dir/provenance.json`` (``training_data_id``, ``simulated``) atomically.

    Args:
        chips_dir: the chip directory (created if missing).
        training_data_id: a stable name of the data the chips were cut from (non-empty).
        simulated: True for chips of the simulator, False for real imagery and labels.

    Returns:
        The path written.

    Raises:
        ValueError: if ``training_data_id`` is not a non-empty string or ``simulated``
            not a bool.
    """
    if not isinstance(training_data_id, str) or not training_data_id.strip():
        raise ValueError(f"training_data_id must be a non-empty string, got {training_data_id!r}")
    if not isinstance(simulated, bool):
        raise ValueError(f"simulated must be true or false, got {simulated!r}")
    path = Path(chips_dir) / PROVENANCE_FILE
    write_json(path, {"training_data_id": training_data_id, "simulated": simulated})
    return path


def read_chips_provenance(chips_dir: str | Path) -> dict | None:
    """``chips_dir/provenance.json`` as ``{"training_data_id": str, "simulated": bool}``,
    or None when the directory has none (chips made before it existed, a user's own).

    Raises:
        ChipError: if the file is not JSON or its keys are missing or of the wrong type.
    """
    path = Path(chips_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChipError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ChipError(f"{path}: expected a JSON object")
    tid, sim = raw.get("training_data_id"), raw.get("simulated")
    if not isinstance(tid, str) or not tid.strip():
        raise ChipError(f"{path}: 'training_data_id' must be a non-empty string, got {tid!r}")
    if not isinstance(sim, bool):
        raise ChipError(f"{path}: 'simulated' must be true or false, got {sim!r}")
    return {"training_data_id": tid, "simulated": sim}


def index_training_data_id(index_sha256: str) -> str:
    """The training-data id of a chip set without ``provenance.json``: ``sha256:`` and
    the first 16 hex digits of its ``index.csv``'s sha256."""
    return f"sha256:{index_sha256[:16]}"


def training_data_record(chips_dir: str | Path, index_sha256: str | None = None) -> dict:
    """``{"id": str, "simulated": bool | None}``: what a model trained on ``chips_dir``
    records as its ``training_data``.

    From ``provenance.json`` when there is one. Without it the id is
    :func:`index_training_data_id` of the index (``index_sha256``, else hashed here) and
    ``simulated`` is True when a chip's ``s2_10m.tif`` carries ``JOINTSEG_SIMULATED=true``
    (the simulator's tag), else None: unknown, since an untagged chip is not proof of
    real data.

    Raises:
        ChipError: if ``provenance.json`` is malformed or the index missing.
    """
    prov = read_chips_provenance(chips_dir)
    if prov is not None:
        return {"id": prov["training_data_id"], "simulated": prov["simulated"]}
    root = Path(chips_dir)
    rows = read_index(root)
    sha = index_sha256 or sha256_file(root / "index.csv")
    return {"id": index_training_data_id(sha),
            "simulated": True if any(_tagged_simulated(root / r["chip_id"] / "s2_10m.tif")
                                     for r in rows) else None}


def _tagged_simulated(path: Path) -> bool:
    """True when ``path`` exists and carries ``JOINTSEG_SIMULATED=true``."""
    return path.is_file() and is_simulated(path)
