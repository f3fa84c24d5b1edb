"""Per-class error rates: the share of each land-cover class that a binary ISA map calls ISA.

Given a land-cover reference raster (class codes, by default those of
:mod:`jointseg.landcover`, as in the demo's simulated ``truth/landcover_1m.tif``)
and a :class:`ClassTable` saying which codes are impervious, the reference is read onto
the map's grid (nearest neighbour) and, per class,

* ``isa_share`` = pixels of the class the map calls ISA / pixels of the class where the
  map has data;
* for a **non-ISA** class that share is its **commission** rate (the share wrongly
  mapped impervious, e.g. water mapped as asphalt);
* for an **ISA** class, **omission** = 1 - ``isa_share`` (the share of e.g. roads missed).

Pixel counts, not a design-based estimate: the reference's own errors and the
non-random pixels are not accounted for (see docs/accuracy.md, "Per-class rates").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import yaml

from jointseg.assess.compare import CompareError, read_map, read_on_grid
from jointseg.landcover import ISA_CODES, LANDCOVER_CLASSES
from jointseg.landcover import NODATA as LANDCOVER_NODATA
from jointseg.products import NODATA_U8


class ClassTableError(ValueError):
    """A class table file cannot be read or is malformed (the message names the file)."""


@dataclass(frozen=True)
class ClassTable:
    """Land-cover class codes of a reference raster.

    Attributes:
        names: code -> class name (codes of the raster, uint8/uint16).
        isa: the codes that are impervious (a subset of ``names``).
        nodata: codes that are no reference at all (skipped, like the raster's nodata).
    """

    names: Mapping[int, str]
    isa: tuple[int, ...]
    nodata: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.isa) - set(self.names))
        if unknown:
            raise ClassTableError(f"ISA codes {unknown} are not among the classes "
                                  f"{sorted(self.names)}")


def default_classes() -> ClassTable:
    """The land-cover table of :mod:`jointseg.landcover` (the demo's truth uses it)."""
    return ClassTable({k: v for k, v in LANDCOVER_CLASSES.items() if k != LANDCOVER_NODATA},
                      ISA_CODES, (LANDCOVER_NODATA,))


def load_class_table(path: str | os.PathLike) -> ClassTable:
    """A class table from a JSON or YAML file::

        {"classes": {"1": "road", "2": "building", "8": "water"}, "isa": [1, 2],
         "nodata": [0]}

    Raises:
        ClassTableError: naming the file, if it is unreadable or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        names = {int(k): str(v) for k, v in data["classes"].items()}
        return ClassTable(names, tuple(int(c) for c in data["isa"]),
                          tuple(int(c) for c in data.get("nodata", [])))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:
        raise ClassTableError(f"{path}: not a class table ({{classes: {{code: name}}, "
                              f"isa: [codes], nodata: [codes]}}): {exc}") from exc


def class_counts(map_path: str | os.PathLike, landcover_path: str | os.PathLike,
                 table: ClassTable) -> dict[int, tuple[int, int]]:
    """code -> (pixels of the class with map data, of those mapped ISA), on the map's grid.

    Raises:
        CompareError: if the map or the reference cannot be read, or the map is not binary.
    """
    geobox, isa = read_map(map_path)
    try:
        with rasterio.open(landcover_path) as ds:
            nod = ds.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise CompareError(f"{landcover_path}: cannot open land cover ({exc})") from exc
    fill = int(nod) if nod is not None else next(
        v for v in (NODATA_U8, 0, 65535) if v not in table.names)
    codes, nodata = read_on_grid(landcover_path, geobox, fill=fill)
    skip = {fill, *table.nodata} | ({nodata} if nodata is not None else set())
    valid = (isa != NODATA_U8) & ~np.isin(codes, list(skip))
    c = codes[valid].astype(np.int64)
    n_all = np.bincount(c, minlength=max(table.names, default=0) + 1)
    n_isa = np.bincount(c, weights=isa[valid] == 1, minlength=n_all.size).astype(np.int64)
    return {code: (int(n_all[code]), int(n_isa[code])) if code < n_all.size else (0, 0)
            for code in table.names}


def per_class_rates(
    map_path: str | os.PathLike,
    landcover_path: str | os.PathLike,
    table: ClassTable,
    *,
    baseline_path: str | os.PathLike | None = None,
) -> dict:
    """The per-class table of ``report.json``: one row per class, for the map and the
    baseline when given (each on its own grid).

    Returns:
        ``{"reference": path, "products": [...], "rows": [{"code", "name", "isa",
        "<product>": {"pixels", "mapped_isa", "isa_share", "commission" | "omission"}}]}``
        with shares None where a class has no pixel.
    """
    products = {"map": map_path, **({"baseline": baseline_path} if baseline_path else {})}
    counts = {k: class_counts(p, landcover_path, table) for k, p in products.items()}
    rows = []
    for code, name in sorted(table.names.items()):
        row: dict = {"code": code, "name": name, "isa": code in table.isa}
        for product, by_code in counts.items():
            n, n_isa = by_code[code]
            share = n_isa / n if n else None
            key, value = (("omission", None if share is None else 1.0 - share)
                          if code in table.isa else ("commission", share))
            row[product] = {"pixels": n, "mapped_isa": n_isa, "isa_share": share, key: value}
        rows.append(row)
    return {"reference": str(landcover_path), "products": list(products), "rows": rows}


def markdown_table(per_class: Mapping, simulated: bool, labels: Sequence[str] = ()) -> list[str]:
    """``report.md`` lines: share of each class mapped as ISA, per product."""
    products = list(per_class["products"])
    names = list(labels) or [{"map": "ISA-1 (JointSeg)", "baseline": "bilinear baseline"}
                             .get(p, p) for p in products]
    L = [f"## Per-class rates (vs land cover `{per_class['reference']}`, 1 m"
         f"{', simulated' if simulated else ''})", "",
         "Share of each reference class mapped as ISA: the commission rate of a non-ISA "
         "class, 1 - omission of an ISA class. Pixel counts, not a design-based estimate.", "",
         "| class | ISA class | " + " | ".join(names) + " | pixels |",
         "|---|---|" + "---|" * len(names) + "---|"]
    for r in per_class["rows"]:
        if not any(r[p]["pixels"] for p in products):
            continue  # a class absent from the reference (kept in report.json)
        shares = [r[p]["isa_share"] for p in products]
        cells = ["n/a" if s is None else f"{s:.3f}" for s in shares]
        L.append(f"| {r['name']} | {'yes' if r['isa'] else 'no'} | " + " | ".join(cells)
                 + f" | {r[products[0]]['pixels']} |")
    return L + [""]
