"""Table 1 rows from the ``products.json`` beside an accuracy report.

``assess_products`` (rules/products.smk) writes ``results/{region}/{year}/accuracy/
products.json`` next to that year's ``report.json``; :func:`products_rows` turns it
into rows of :func:`jointseg.assess.product_tables.products_table` (the baseline is left to
Table 2). A missing file gives no rows; a file of another schema is an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from jointseg.assess.otherproducts.assess import SCHEMA

FILE_NAME = "products.json"
GRID = "10 m assessment grid (same pixels for every product)"


class ProductsFileError(ValueError):
    """A products.json cannot be read or has another schema."""


def products_rows(report_source: str | os.PathLike) -> list[dict]:
    """Rows (product, reference, grid, precision, recall, f1, oa, iou, n, f1_gain_points,
    simulated, source) from the products.json beside ``report_source``.

    Raises:
        ProductsFileError: naming the file, if it is unreadable or not :data:`SCHEMA`.
    """
    path = Path(report_source).parent / FILE_NAME
    if not path.is_file():
        return []
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProductsFileError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ProductsFileError(f"{path}: expected schema {SCHEMA}")
    ref = d["reference"]
    reference = (f"{'simulated ' if ref['simulated'] else ''}{ref['kind']} {ref['path']} "
                 f"(10 m cells >= {d['threshold']:g} ISA)")
    rows = []
    for r in d["rows"]:
        if r["kind"] == "baseline":
            continue
        name = r["name"]
        if r["simulated"] and r["kind"] != "jointseg":
            name = f"{name} {r['product_year']} (simulated stand-in)"
        rows.append({"product": name, "reference": reference, "grid": GRID,
                     "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
                     "oa": r["oa"], "iou": r["iou"], "n": r["n_pixels"],
                     "f1_gain_points": r["f1_gain_points"],
                     "simulated": bool(r["simulated"] or ref["simulated"]),
                     "source": str(path)})
    return rows
