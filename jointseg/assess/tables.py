"""The paper's tables, filled from whatever report and change files a run produced.

Inputs are the ``report.json`` files of :func:`jointseg.assess.report.build.accuracy_report`
(schema ``jointseg.accuracy_report/1``) and the ``change.json`` files of
:func:`jointseg.assess.change.biennial_change` (schema ``jointseg.assess.change/1``).
Tables, in the layout of the paper's:

1. ``table1_products``: product comparison, P/R/F1 (ISA-1, WorldCover and any other
   product, against each reference: the truth, WorldCover, the labelled sample);
2. ``table2_baseline``: JointSeg vs the bilinear baseline, P/R/F1/IoU on the same
   reference and grid, with the F1 gain in points;
3. ``table3_cities``: per-city comparisons;

   (:mod:`jointseg.assess.product_tables`, from the reports)

4. ``table4_isa_area``: ISA area per city per year;
5. ``table5_growth``: growth by region, zone and city between years;

and ``change_accuracy``: F1 of new ISA per period against the reference and the
change sample's new-ISA area (from change files with a reference)
(:mod:`jointseg.assess.area_tables`, from reports and change files).

Every row carries ``source`` (the JSON file it came from) and ``simulated``; each
table's caption says what was measured on what (:class:`~jointseg.assess.table.Table`).
A table without data says "no data in this run". Numbers are copied, not recomputed,
except growth rates from report areas (:func:`jointseg.assess.change.growth`) when no
change file exists.

This module is the entrance: it reads and sorts the inputs (:func:`sort_inputs`),
builds the set (:func:`build_tables`) and writes it (:func:`write_tables`).

A set of tables names the **epochs** it holds (the years of its reports and change
files): a line under each Markdown title, an ``epochs`` column in each CSV, and
``index.json``. A folder of tables is never replaced by tables of other epochs
(:func:`write_tables` refuses); the workflow writes one folder per set of years,
``results/paper_tables/<y1>-<y2>-.../``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from jointseg.assess.area_tables import area_table, change_accuracy_table, growth_table
from jointseg.assess.product_tables import baseline_table, cities_table, products_table
from jointseg.assess.table import NO_DATA, Table, epochs_line, table_markdown
from jointseg.io import atomic_path, write_json

log = logging.getLogger(__name__)

REPORT_SCHEMA = "jointseg.accuracy_report"
CHANGE_SCHEMA = "jointseg.assess.change"
#: Schema of the ``index.json`` of a set of tables.
INDEX_SCHEMA = "jointseg.paper_tables/1"
#: The file stems of the paper's tables, in order (and
#: :data:`~jointseg.assess.area_tables.CHANGE_ACCURACY_TABLE`).
PAPER_TABLES = ("table1_products", "table2_baseline", "table3_cities", "table4_isa_area",
                "table5_growth")


class TableError(ValueError):
    """An input JSON cannot be read or is not a report/change file."""


# ---------------------------------------------------------------------- inputs


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file as a dict with ``_source`` = its path.

    Raises:
        TableError: if it cannot be read or parsed.
    """
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(d, dict):
        raise TableError(f"{path}: expected a JSON object")
    d["_source"] = str(path)
    return d


def sort_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[dict], list[dict]]:
    """Read JSON files and split them into (reports, changes) by their ``schema`` key.

    Raises:
        TableError: for a file with another or no schema (names the file).
    """
    reports, changes = [], []
    for p in dict.fromkeys(str(p) for p in paths):
        d = read_json(p)
        schema = str(d.get("schema", ""))
        if schema.startswith(REPORT_SCHEMA):
            reports.append(d)
        elif schema.startswith(CHANGE_SCHEMA):
            changes.append(d)
        else:
            raise TableError(f"{p}: schema {schema or 'missing'!r}; expected "
                             f"{REPORT_SCHEMA}/1 (report.json) or {CHANGE_SCHEMA}/1 (change.json)")
    reports.sort(key=lambda r: (str(r.get("region")), int(r.get("year", 0))))
    return reports, changes


def epochs_of(reports: Sequence[Mapping], changes: Sequence[Mapping] = ()) -> list[int]:
    """The years the inputs hold: each report's ``year`` and each change file's ``years``."""
    years = {int(r["year"]) for r in reports if r.get("year") is not None}
    years.update(int(y) for ch in changes for y in ch.get("years", []))
    return sorted(years)


def epochs_label(epochs: Sequence[int]) -> str:
    """``2017-2019-2021-2023``: the name of a set of years (a folder name in the DAG)."""
    return "-".join(str(y) for y in sorted(epochs)) or "none"


# ---------------------------------------------------------------------- tables


def build_tables(reports: Sequence[Mapping], changes: Sequence[Mapping] = ()) -> list[Table]:
    """The five paper tables and the change-accuracy table (a table may have no rows),
    each naming the epochs of all the inputs (:func:`epochs_of`)."""
    tables = [products_table(reports), baseline_table(reports), cities_table(reports),
              area_table(reports, changes), growth_table(reports, changes),
              change_accuracy_table(changes)]
    epochs = epochs_of(reports, changes)
    for t in tables:
        t.epochs = epochs
    return tables


# ---------------------------------------------------------------------- output


def _csv_value(v: object) -> object:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v


def _change_links(changes: Sequence[Mapping], out_dir: Path) -> list[str]:
    """``index.md`` lines linking each region's change report and plots."""
    lines = []
    for ch in changes:
        files = {"change report": str(Path(ch["_source"]).with_name("change.md")),
                 **ch.get("plots", {})}
        lines.append(f"- {ch['region']} {ch['years'][0]}-{ch['years'][-1]}"
                     + (" (simulated)" if ch["simulated"] else "") + ": "
                     + ", ".join(f"[{k}]({os.path.relpath(v, out_dir)})"
                                 for k, v in files.items()))
    return ["", "## Change reports and plots", "", *lines] if lines else []


def check_epochs(out_dir: Path, epochs: Sequence[int]) -> None:
    """Refuse to write tables of ``epochs`` over a folder holding tables of other epochs.

    Raises:
        TableError: naming both sets of years, when ``out_dir/index.json`` names others.
    """
    index = out_dir / "index.json"
    if not index.exists():
        return
    try:
        held = [int(y) for y in json.loads(index.read_text())["epochs"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TableError(f"{index}: cannot read the epochs of the tables there ({exc}); "
                         "write to another folder or remove it") from exc
    if sorted(held) != sorted(epochs):
        raise TableError(f"{out_dir} holds the paper tables of {epochs_label(held)}; these "
                         f"inputs are of {epochs_label(epochs)}: write them to another folder "
                         f"(e.g. {out_dir.parent / epochs_label(epochs)})")


def _index_json(tables: Sequence[Table], epochs: Sequence[int]) -> dict:
    """``index.json``: the epochs, regions and every table's rows, files and sources."""
    regions = sorted({str(r["region"]) for t in tables for r in t.rows if r.get("region")})
    return {"schema": INDEX_SCHEMA, "epochs": list(epochs), "regions": regions,
            "simulated": any(r.get("simulated") for t in tables for r in t.rows),
            "tables": [{"name": t.name, "title": t.title, "epochs": list(t.epochs),
                        "rows": len(t.rows), "files": [f"{t.name}.csv", f"{t.name}.md"],
                        "sources": t.sources() if t.rows else []} for t in tables]}


def write_tables(tables: Sequence[Table], out_dir: str | os.PathLike,
                 changes: Sequence[Mapping] = ()) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.md`` per table, ``index.md`` and ``index.json``,
    atomically.

    CSV floats are written with full precision (``repr``); empty cells are None; each
    row's ``epochs`` names the years of the inputs (``2017 2019``). ``index.md`` links the
    change reports and plots of ``changes``; ``index.json`` (:data:`INDEX_SCHEMA`)
    names the epochs, regions and each table's rows and sources.

    Raises:
        TableError: when ``out_dir`` holds tables of other epochs (:func:`check_epochs`).
    """
    out_dir = Path(out_dir)
    epochs = sorted({y for t in tables for y in t.epochs})
    check_epochs(out_dir, epochs)
    written = []
    index = [f"# Paper tables: {epochs_label(epochs)}", "", epochs_line(epochs), "",
             "Reproduced from this run's data; each table names the files it came from.", ""]
    for t in tables:
        buf = io.StringIO()
        cols = [*t.columns, "epochs"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in t.rows:
            w.writerow({**{c: _csv_value(r.get(c)) for c in t.columns},
                        "epochs": " ".join(str(y) for y in t.epochs)})
        with atomic_path(out_dir / f"{t.name}.csv") as tmp:
            tmp.write_text(buf.getvalue())
        with atomic_path(out_dir / f"{t.name}.md") as tmp:
            tmp.write_text(table_markdown(t))
        written += [out_dir / f"{t.name}.csv", out_dir / f"{t.name}.md"]
        sim = any(r.get("simulated") for r in t.rows)
        index += [f"- [{t.title}]({t.name}.md) ([csv]({t.name}.csv)): "
                  + (f"{len(t.rows)} rows" if t.rows else NO_DATA)
                  + (" — includes simulated data" if sim else ""),
                  *[f"  - source: `{s}`" for s in t.sources()]]
        log.info("table %s: %d rows", t.name, len(t.rows))
    index += _change_links(changes, out_dir)
    with atomic_path(out_dir / "index.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    write_json(out_dir / "index.json", _index_json(tables, epochs))
    return [*written, out_dir / "index.md", out_dir / "index.json"]
