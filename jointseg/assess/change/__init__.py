"""Biennial ISA change of a region: areas per year and group, growth, change maps.

Input: one binary 1 m ISA map per year (the ``isa_1m.tif`` of each year, encoded as
in :mod:`jointseg.products`: uint8 1 = ISA, 0 = not, 255 = nodata), all on **one grid**
(same CRS, transform and shape; checked), optionally the ISA probability of each year
(``isa_prob_1m.tif``) on the same grid, the accuracy report of each year and a
reference (truth) raster per year. Band 1 of each file is read.

* **Areas**: ISA area (km²) = ISA pixel count x pixel area (m², from the projected
  map grid) / 1e6, for the whole region and per polygon group
  (:mod:`jointseg.assess.groups`: cities / districts with a name field, zones). With
  the accuracy report of a year (``report.json`` of ``jointseg accuracy-report``), its
  design-based error-adjusted ISA area ± 95 % CI from the stratified reference sample
  (Olofsson et al. 2014) is added for the region and each city; without one the area
  is the pixel count only (``area_method`` says which).
* **Growth** between two years y0 < y1: absolute ``A1 - A0`` km² and annualised
  ``((A1 / A0) ** (1 / (y1 - y0)) - 1) x 100`` % (undefined when ``A0 = 0``).
* **Temporal consistency** (optional): :mod:`jointseg.assess.consistency`; its effect
  is measured (pixels changed per year; with a reference, change F1 with and without).
* **Change maps**: :mod:`jointseg.assess.change.maps` (classes per consecutive pair and
  the year of first ISA, as GAIA).
* **Change accuracy** against a reference per year: :mod:`jointseg.assess.change.accuracy`;
  **stratified change sample**: :mod:`jointseg.assess.change.sample`.

Modules, one concept each: :mod:`~jointseg.assess.change.biennial` (the entrance),
:mod:`~jointseg.assess.change.scan` (one pass over the maps),
:mod:`~jointseg.assess.change.maps`, :mod:`~jointseg.assess.change.accuracy`,
:mod:`~jointseg.assess.change.sample`, :mod:`~jointseg.assess.change.report` (CSV and
Markdown) and :mod:`~jointseg.assess.change.plots`.
"""

from jointseg.assess.change.biennial import (
    SCHEMA,
    ChangeError,
    annual_growth_pct,
    biennial_change,
    check_same_grid,
    growth,
    parse_year_paths,
    read_reports,
)

__all__ = ["SCHEMA", "ChangeError", "annual_growth_pct", "biennial_change", "check_same_grid",
           "growth", "parse_year_paths", "read_reports"]
