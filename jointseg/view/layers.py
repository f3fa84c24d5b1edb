"""The layer manifest of one product folder (``results/<region>/<year>``).

Which products exist there and how each is drawn: the 10 m composite in true colour
with a 2-98 % stretch, the 1 m SR quicklooks, the ISA map, the probability, the
baseline ISA, WorldCover and the reference (simulated truth in the demo). Layers whose
files are missing are left out. File paths are stored relative to the manifest's folder
(``viewer.json`` in the product folder), so the results folder can be moved.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from jointseg.io import write_json
from jointseg.products import PROB_DN_MAX, PROB_SCALE
from jointseg.view import styles
from jointseg.view.tiles import LayerTiles

log = logging.getLogger(__name__)

SCHEMA = "jointseg.viewer/1"
MANIFEST_NAME = "viewer.json"
STRETCH_PERCENTILES = (2.0, 98.0)
RGB_BANDS = ("B04", "B03", "B02")


class ManifestError(ValueError):
    """A product folder or manifest that cannot be shown (message names the file)."""


@dataclass
class Layer:
    """One viewable product: files (a mosaic or per-tile COGs) plus how to draw them.

    ``kind``: "classes" (palette of ``classes``), "ramp" (``ramp`` over ``rescale``) or
    "rgb" (three ``bands`` stretched by ``rescale``, one (min, max) per band).
    ``bounds``: lon/lat (EPSG:4326) west, south, east, north of every file.
    """

    id: str
    title: str
    kind: str
    files: list[str]
    bands: list[int]
    bounds: list[list[float]]
    minzoom: int
    maxzoom: int
    simulated: bool
    attribution: str = ""
    classes: dict[int, tuple[str, str]] = field(default_factory=dict)
    ramp: str = ""
    rescale: list[list[float]] = field(default_factory=list)
    value_scale: float = 1.0
    unit: str = ""

    def legend(self) -> dict:
        """What the page's legend shows: class swatches or a ramp with its range."""
        if self.kind == "classes":
            return {"type": "classes", "entries": styles.class_legend(self.classes)}
        if self.kind == "ramp":
            lo, hi = (v * self.value_scale for v in self.rescale[0])
            return {"type": "ramp", "colours": styles.ramp_stops(self.ramp), "min": lo,
                    "max": hi, "unit": self.unit}
        return {"type": "rgb", "bands": self.bands}

    def public(self) -> dict:
        """The layer as the page sees it (no file paths)."""
        w = min(b[0] for b in self.bounds)
        s = min(b[1] for b in self.bounds)
        e = max(b[2] for b in self.bounds)
        n = max(b[3] for b in self.bounds)
        return {"id": self.id, "title": self.title, "kind": self.kind, "bounds": [w, s, e, n],
                "minzoom": self.minzoom, "maxzoom": self.maxzoom, "simulated": self.simulated,
                "attribution": self.attribution, "legend": self.legend()}


@dataclass
class Manifest:
    """The layers of one region and year; ``root``: folder the file paths are relative to."""

    region: str
    year: int
    root: Path
    layers: list[Layer]

    @property
    def key(self) -> str:
        return f"{self.region}/{self.year}"

    @property
    def simulated(self) -> bool:
        return any(layer.simulated for layer in self.layers)

    def layer(self, layer_id: str) -> Layer:
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(layer_id)

    def path(self, name: str) -> Path:
        """Absolute path of a file named in the manifest."""
        return (self.root / name).resolve()

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "region": self.region, "year": self.year,
                "layers": [asdict(layer) for layer in self.layers]}


def is_simulated(tags: dict[str, str]) -> bool:
    """True when a raster carries ``JOINTSEG_SIMULATED=true``."""
    return tags.get("JOINTSEG_SIMULATED", "").lower() == "true"


def _files_info(files: list[Path]) -> tuple[list[list[float]], int, int, bool]:
    """lon/lat bounds of each file, served web-mercator zoom range, simulated flag.

    ``maxzoom``: the files' native zoom (rio-tiler); ``minzoom``: the coarsest zoom whose
    tiles stay within the read budget (:class:`jointseg.view.tiles.LayerTiles`).
    """
    from rio_tiler.io import Reader

    bounds, maxz, sim = [], 0, False
    for f in files:
        with rasterio.open(f) as ds:
            bounds.append(list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)))
            sim = sim or is_simulated(ds.tags())
        with Reader(str(f)) as src:
            maxz = max(maxz, src.maxzoom)
    minz = LayerTiles.from_files(files, maxz).minzoom
    return bounds, minz, max(minz, maxz), sim


def band_indexes(path: Path, names: tuple[str, ...]) -> list[int]:
    """1-based indexes of bands by description (e.g. B04, B03, B02)."""
    with rasterio.open(path) as ds:
        desc = list(ds.descriptions)
    try:
        return [desc.index(n) + 1 for n in names]
    except ValueError:
        raise ManifestError(f"{path}: bands {names} expected, found {desc}") from None


def percentile_stretch(files: list[Path], bands: list[int], max_px: int = 512) -> list[list[float]]:
    """Per-band 2 and 98 percentiles of the valid pixels, read from overviews."""
    samples: list[list[np.ndarray]] = [[] for _ in bands]
    for f in files:
        with rasterio.open(f) as ds:
            k = max(1.0, max(ds.width, ds.height) / max_px)
            shape = (len(bands), max(1, int(ds.height / k)), max(1, int(ds.width / k)))
            arr = ds.read(bands, out_shape=shape, masked=True, resampling=Resampling.nearest)
        for i in range(len(bands)):
            samples[i].append(arr[i].compressed())
    out = []
    for chunks in samples:
        values = np.concatenate(chunks) if chunks else np.array([])
        if values.size == 0:
            out.append([0.0, 1.0])
            continue
        lo, hi = np.percentile(values, STRETCH_PERCENTILES)
        out.append([float(lo), float(max(hi, lo + 1))])
    return out


def _make(layer_id: str, title: str, kind: str, files: list[Path], root: Path,
          bands: list[int], **style) -> Layer:
    bounds, minz, maxz, sim = _files_info(files)
    rel = [os.path.relpath(f.resolve(), root.resolve()) for f in files]
    return Layer(id=layer_id, title=title, kind=kind, files=rel, bands=bands, bounds=bounds,
                 minzoom=minz, maxzoom=maxz, simulated=sim, **style)


def _reference_inputs(product_dir: Path) -> tuple[Path | None, list[Path]]:
    """Truth raster and WorldCover files the accuracy report of this folder used."""
    report = product_dir / "accuracy" / "report.json"
    if not report.is_file():
        return None, []
    try:
        inputs = json.loads(report.read_text()).get("inputs", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ManifestError(f"{report}: not a JSON accuracy report ({exc})") from None
    bases = [Path.cwd()]
    if len(product_dir.resolve().parents) > 2:
        bases.append(product_dir.resolve().parents[2])  # results/<region>/<year> -> root

    def find(name: str | None) -> Path | None:
        if not name:
            return None
        for base in bases:
            if (base / name).is_file():
                return base / name
        return None

    truth = find((inputs.get("truth") or {}).get("path"))
    wc = [find(f.get("path")) for f in (inputs.get("worldcover") or {}).get("files", [])]
    return truth, [p for p in wc if p is not None]


def build_manifest(product_dir: Path, region: str | None = None, year: int | None = None,
                   truth: Path | None = None, worldcover: list[Path] | None = None) -> Manifest:
    """Discover the products of ``product_dir`` and how to draw each.

    ``truth``/``worldcover`` default to the files the folder's accuracy report used.
    ``region``/``year`` default to the folder names (``results/<region>/<year>``).
    """
    product_dir = Path(product_dir)
    if not product_dir.is_dir():
        raise ManifestError(f"{product_dir}: no such product folder")
    region = region or product_dir.resolve().parent.name
    try:
        year = int(year if year is not None else product_dir.resolve().name)
    except ValueError:
        raise ManifestError(f"{product_dir}: folder name is not a year; pass --year") from None
    ref_truth, ref_wc = _reference_inputs(product_dir)
    truth = truth or ref_truth
    worldcover = worldcover or ref_wc
    root, d, layers = product_dir, product_dir, []

    composite = sorted((d / "composite").glob("*_10m.tif"))
    if composite:
        bands = band_indexes(composite[0], RGB_BANDS)
        layers.append(_make("composite", "Sentinel-2 composite 10 m (true colour)", "rgb",
                            composite, root, bands,
                            rescale=percentile_stretch(composite, bands)))
    sr = sorted((d / "isa").glob("*_sr.tif"))
    if sr:
        layers.append(_make("sr", "Super-resolved 1 m (RGB)", "rgb", sr, root, [1, 2, 3],
                            rescale=[[1.0, 255.0]] * 3))
    for lid, rel, title in (("isa", "isa_1m.tif", "ISA 1 m (JointSeg)"),
                            ("baseline", "baseline/isa_1m.tif", "ISA 1 m (bilinear baseline)")):
        if (d / rel).is_file():
            layers.append(_make(lid, title, "classes", [d / rel], root, [1],
                                classes=styles.ISA_CLASSES))
    if (d / "isa_prob_1m.tif").is_file():
        layers.append(_make("prob", "ISA probability 1 m", "ramp", [d / "isa_prob_1m.tif"],
                            root, [1], ramp=styles.PROB_RAMP, rescale=[[0.0, float(PROB_DN_MAX)]],
                            value_scale=PROB_SCALE, unit="probability"))
    if worldcover:
        wc = _make("worldcover", f"ESA WorldCover {year} (10 m)", "classes",
                   [Path(p) for p in worldcover], root, [1], classes=styles.WORLDCOVER_CLASSES)
        template = (styles.WORLDCOVER_SIMULATED_ATTRIBUTION if wc.simulated
                    else styles.WORLDCOVER_ATTRIBUTION)
        wc.attribution = template.format(year=year)
        layers.append(wc)
    if truth:
        ref = _make("truth", "Reference ISA 1 m", "classes", [Path(truth)], root, [1],
                    classes=styles.ISA_CLASSES)
        if ref.simulated:
            ref.title = "Simulated truth ISA 1 m"
        layers.append(ref)
    if not layers:
        raise ManifestError(f"{product_dir}: no products to show (no isa_1m.tif, composite/...)")
    for layer in layers:
        if layer.id != "worldcover":
            layer.attribution = (styles.SIMULATED_ATTRIBUTION if layer.simulated
                                 else styles.SENTINEL_ATTRIBUTION.format(year=year))
    return Manifest(region=region, year=year, root=root, layers=layers)


def write_manifest(manifest: Manifest, path: Path) -> Path:
    """Write the manifest as JSON; its file paths become relative to ``path``'s folder."""
    path = Path(path)
    doc = manifest.to_dict()
    for layer in doc["layers"]:
        layer["files"] = [os.path.relpath(manifest.path(f), path.parent.resolve())
                          for f in layer["files"]]
    write_json(path, doc)
    return path


def read_manifest(path: Path) -> Manifest:
    """Read a manifest written by ``write_manifest``; layers with missing files are dropped."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the viewer manifest ({exc})") from None
    if doc.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: schema {doc.get('schema')!r}, expected {SCHEMA!r}")
    layers = []
    for raw in doc["layers"]:
        raw["classes"] = {int(k): tuple(v) for k, v in raw.get("classes", {}).items()}
        layer = Layer(**raw)
        missing = [f for f in layer.files if not (path.parent / f).is_file()]
        if missing:
            log.warning("%s: layer %s left out, missing %s", path, layer.id, missing[0])
            continue
        layers.append(layer)
    return Manifest(region=doc["region"], year=int(doc["year"]), root=path.parent, layers=layers)


def load_product_dir(product_dir: Path) -> Manifest:
    """The manifest of a product folder: its ``viewer.json`` if present, else discovered."""
    written = Path(product_dir) / MANIFEST_NAME
    if written.is_file():
        return read_manifest(written)
    return build_manifest(Path(product_dir))
