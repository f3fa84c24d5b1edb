"""One table of the paper: :class:`Table` (a file stem, a title, a caption stating its data,
columns, rows and the epochs it holds) and its Markdown.

Every row carries ``source`` (the JSON file it came from) and ``simulated``; a table
without rows says "no data in this run" (:data:`NO_DATA`). The tables themselves are
:mod:`jointseg.assess.product_tables` (Tables 1-3, from accuracy reports) and
:mod:`jointseg.assess.area_tables` (Tables 4-5 and change accuracy, from reports and
change files); :mod:`jointseg.assess.tables` builds and writes the set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NO_DATA = "no data in this run"


@dataclass
class Table:
    """One table: a file stem, a title, a caption stating its data, columns and rows."""

    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[dict] = field(default_factory=list)
    #: the years of the inputs the table was built from (all of them, not only its rows')
    epochs: list[int] = field(default_factory=list)

    def sources(self) -> list[str]:
        """Distinct ``source`` values of the rows, in order."""
        return list(dict.fromkeys(str(r.get("source")) for r in self.rows))


def report_row(rep: Mapping, **kv: object) -> dict:
    """A row of a table from one accuracy report: its ``region`` and ``year``, then ``kv``."""
    return {"region": rep.get("region"), "year": rep.get("year"), **kv}


def _md_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def epochs_line(epochs: Sequence[int]) -> str:
    """The line that names a table's epochs."""
    return (f"Epochs: {', '.join(str(y) for y in epochs)} (the years of this run's reports "
            "and change files)." if epochs else "Epochs: none (no report or change file).")


def table_markdown(t: Table) -> str:
    """A table as Markdown: title, epochs, caption, sources, rows (or "no data in this
    run")."""
    lines = [f"## {t.title}", "", f"**{epochs_line(t.epochs)}**", "", t.caption, ""]
    if not t.rows:
        return "\n".join(lines + [f"*{NO_DATA}.*", ""])
    if any(r.get("simulated") for r in t.rows):
        lines += ["**Rows with simulated = True come from simulated data: they are not "
                  "real-world accuracy.**", ""]
    cols = [c for c in t.columns if c != "source"]
    lines += ["| " + " | ".join(cols) + " | source |", "|" + "---|" * (len(cols) + 1)]
    for r in t.rows:
        src = str(r.get("source", ""))
        lines.append("| " + " | ".join(_md_value(r.get(c)) for c in cols)
                     + f" | `{src}` |")
    return "\n".join(lines + [""])

